-- Records one occurrence of a fingerprint: {seen, window_start_ms, count}, where seen is
-- 1 (first: a new window, or an old claim taken over), 0 (duplicate) or 2 (claimed: the first
-- occurrence is still being recorded).
-- KEYS[1]: the fingerprint's window (hash: s = start, c = count, u = claim time while unsettled).
-- ARGV[1]: now (ms); ARGV[2]: TTL (ms), given with the first occurrence only; ARGV[3]: how long
-- a claim holds (ms).
local start = redis.call('HGET', KEYS[1], 's')
if start then
  local count = redis.call('HINCRBY', KEYS[1], 'c', 1)
  local claimed = redis.call('HGET', KEYS[1], 'u')
  if not claimed then
    return {0, tonumber(start), count}
  end
  if tonumber(ARGV[1]) - tonumber(claimed) >= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], 'u', ARGV[1])
    return {1, tonumber(start), count}
  end
  return {2, tonumber(start), count}
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'c', 1, 'u', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tonumber(ARGV[1]), 1}
