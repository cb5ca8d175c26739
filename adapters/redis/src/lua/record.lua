-- Records one occurrence of a fingerprint: {is_first, window_start_ms, count}.
-- KEYS[1]: the fingerprint's window (hash: s = start, c = count).
-- ARGV[1]: now (ms); ARGV[2]: TTL (ms), given with the first occurrence only.
local start = redis.call('HGET', KEYS[1], 's')
if start then
  local count = redis.call('HINCRBY', KEYS[1], 'c', 1)
  return {0, tonumber(start), count}
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'c', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tonumber(ARGV[1]), 1}
