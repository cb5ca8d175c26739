-- Compare-and-set of one storm window: 1 when done, 0 when the stored version is not `expected`.
-- KEYS[1]: the window (hash: v = version, s = state); KEYS[2]: the index of windows.
-- ARGV: expected version ('' = no window stored), 'set' or 'delete', TTL (ms), the window's
-- name, the new state (for 'set'; it may be empty).
-- A deleted window leaves its version behind (v without s) until its TTL ends: a window created
-- again continues the versions, so a writer still holding the deleted one's is refused.
local stored = redis.call('HMGET', KEYS[1], 'v', 's')
local last, current = stored[1], stored[2] and stored[1]
if ARGV[1] == '' then
  if current then
    return 0
  end
elseif current ~= ARGV[1] then
  return 0
end
local next_version = (tonumber(last) or 0) + 1
if ARGV[2] == 'delete' then
  if not current then
    return 1
  end
  redis.call('HDEL', KEYS[1], 's')
  redis.call('HSET', KEYS[1], 'v', next_version)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('SREM', KEYS[2], ARGV[4])
  return 1
end
redis.call('HSET', KEYS[1], 'v', next_version, 's', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
-- The index outlives every window it lists.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
