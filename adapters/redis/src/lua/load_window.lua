-- A listed storm window: {version, state}, or nil when none is stored (WindowStore::keys).
-- KEYS[1]: the window (hash: v = version, s = state); KEYS[2]: the index of windows.
-- ARGV[1]: the window's name.
-- A window that expired or was deleted leaves the index here, in the same atomic step as the
-- look: a window created again in between keeps its entry.
local stored = redis.call('HMGET', KEYS[1], 'v', 's')
if stored[2] then
  return stored
end
redis.call('SREM', KEYS[2], ARGV[1])
return false
