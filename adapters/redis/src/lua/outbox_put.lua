-- Puts one outbox entry: returns its version, greater than any version given out before.
-- KEYS[1]: the entries (hash: field = key, value = '<version>:<entry>'); KEYS[2]: the version
-- counter. One hash tag. Neither has a TTL: an entry stays until its owner removes it.
-- ARGV[1]: the key; ARGV[2]: the entry.
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', version) .. ':' .. ARGV[2])
return version
