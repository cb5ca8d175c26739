-- Moves a window stored in the layout before Cluster support (`…:storm:window:{<len>:<name>}`,
-- listed in `…:storm:windows`) to its shard's keys, so a window open while the gateway was
-- upgraded is still found and closed. One server only: the keys span slots.
-- KEYS[1]: the old window; KEYS[2]: the old index; KEYS[3]: the window's key now; KEYS[4]: its
-- index now. ARGV[1]: the window's name.
-- Returns 1 when moved (or nothing was left to move), 0 when a window of that name is open in
-- the new layout: the old one waits until that one closes.
local old = redis.call('HMGET', KEYS[1], 'v', 's')
local ttl = redis.call('PTTL', KEYS[1])
if not old[2] or ttl <= 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
local now = redis.call('HMGET', KEYS[3], 'v', 's')
if now[2] then
  return 0
end
-- Past any version the new key gave out, so no writer's version is reused.
local version = math.max(tonumber(old[1]) or 0, tonumber(now[1]) or 0) + 1
redis.call('HSET', KEYS[3], 'v', version, 's', old[2])
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('SADD', KEYS[4], ARGV[1])
if redis.call('PTTL', KEYS[4]) < ttl then
  redis.call('PEXPIRE', KEYS[4], ttl)
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
