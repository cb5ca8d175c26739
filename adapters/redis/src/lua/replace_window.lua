-- Compare-and-set of one storm window: 1 when done, 0 when another writer came first.
-- KEYS[1]: the window (hash: v = version, s = state); KEYS[2]: the index of windows.
-- ARGV: expected version ('' = none stored), new state ('' = delete), TTL (ms), the window's name.
local version = redis.call('HGET', KEYS[1], 'v')
if (ARGV[1] == '' and version) or (ARGV[1] ~= '' and version ~= ARGV[1]) then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[4])
  return 1
end
redis.call('HSET', KEYS[1], 'v', (tonumber(version) or 0) + 1, 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
-- The index outlives every window it lists.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
