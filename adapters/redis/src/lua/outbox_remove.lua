-- Removes one outbox entry if its version is still the given one: 1 when removed, else 0.
-- KEYS[1]: the entries (hash: field = key, value = '<version>:<entry>').
-- ARGV[1]: the key; ARGV[2]: the version (decimal).
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and string.match(stored, '^(%d+):') == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
