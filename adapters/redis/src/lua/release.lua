-- Ends a fingerprint's window if its first occurrence is still claimed by the given claim:
-- 1 when ended, 0 when left as it is (settled, taken over since, or gone).
-- KEYS[1]: the fingerprint's window (hash: s = start, c = count, u = claim time while unsettled).
-- ARGV[1]: the claim's time (ms), as `record.lua` stored it.
if redis.call('HGET', KEYS[1], 'u') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
