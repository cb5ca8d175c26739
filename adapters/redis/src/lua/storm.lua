-- Records one storm signal and counts: {rate, distinct_resources}, this signal included.
-- KEYS[1]: the alert name's signal log (sorted set: member unique per signal, score its time);
-- KEYS[2]: its resources (sorted set: member the resource, score its last hit). One hash tag.
-- ARGV: now (ms), rate window (ms), pattern window (ms), resource, a member unique to this
-- signal, the most entries kept per set.
local now = tonumber(ARGV[1])
local rate_window = tonumber(ARGV[2])
local pattern_window = tonumber(ARGV[3])
local max_tracked = tonumber(ARGV[6])
redis.call('ZADD', KEYS[1], now, ARGV[5])
-- A signal exactly rate_window old no longer counts.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - rate_window)
if redis.call('ZCARD', KEYS[1]) > max_tracked then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -max_tracked - 1)
end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - pattern_window)
if redis.call('ZCARD', KEYS[2]) > max_tracked then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -max_tracked - 1)
end
-- A name gone quiet leaves nothing behind.
redis.call('PEXPIRE', KEYS[1], rate_window)
redis.call('PEXPIRE', KEYS[2], pattern_window)
return {redis.call('ZCOUNT', KEYS[1], '(' .. (now - rate_window), '+inf'), redis.call('ZCARD', KEYS[2])}
