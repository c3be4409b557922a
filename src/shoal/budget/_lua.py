"""The shared budget's operations, each one atomic Lua script run inside Redis.

All state of one budget (a provider model on one API key) is one hash; the processes using it are
a sorted set of heartbeats. Time is the Redis server's (`TIME`), so the clocks of the machines
running shoal never matter. Numbers go back as strings: Redis would truncate Lua floats.

Hash fields: `lim:K` the per-minute limit of kind K (absent: unknown), `lvl:K` the bucket level,
`g:K` everything granted of K (running total), `conf:K` the smallest configured K seen, `stamp` the
last refill, `factor`/`fstamp` the AIMD share and its recovery stamp, `paused` pause-until,
`lastdec`/`lastend` the last decrease and the end of the last 429 pause, `n429`/`npause` counters.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "BEAT", "OBSERVE", "RATE_LIMITED", "SETTLE"]

# Shared prelude: load, refill (and AIMD recovery), save, and the reply every script returns.
# ARGV[1..4] of every script: burst_s, recovery_per_s, state TTL (s), heartbeat TTL (s); ARGV[5]
# this process's id.
_PRELUDE = r"""
local KINDS = {'rpm', 'tpm', 'itpm', 'otpm'}
local H, P = KEYS[1], KEYS[2]
local burst, recovery = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl, beat_ttl, me = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local s = {}
local raw = redis.call('HGETALL', H)
for i = 1, #raw, 2 do s[raw[i]] = tonumber(raw[i + 1]) end
s.factor = s.factor or 1.0
s.fstamp = s.fstamp or now
s.stamp = s.stamp or now
s.paused = s.paused or 0
s.lastdec = s.lastdec or -1e9
s.lastend = s.lastend or -1e9
s.n429 = s.n429 or 0
s.npause = s.npause or 0

local function capacity(kind)
  local floor = 0
  if kind == 'rpm' then floor = 1 end
  return math.max(floor, s['lim:' .. kind] / 60 * burst)
end

local function rate(kind)
  return s['lim:' .. kind] / 60 * s.factor
end

-- Refill every known bucket up to now at the current share, then let the share recover.
local elapsed = math.max(0, now - s.stamp)
for _, k in ipairs(KINDS) do
  if s['lim:' .. k] then
    local level = s['lvl:' .. k] or 0
    s['lvl:' .. k] = math.min(capacity(k), level + elapsed * rate(k))
  end
end
s.stamp = math.max(s.stamp, now)
if s.factor < 1 then
  local gained = (now - s.fstamp) * recovery
  if gained > 0 then
    s.factor = math.min(1.0, s.factor + gained)
    s.fstamp = now
  end
else
  s.fstamp = now
end

local function save()
  local flat = {}
  for name, value in pairs(s) do
    flat[#flat + 1] = name
    flat[#flat + 1] = string.format('%.17g', value)
  end
  redis.call('HSET', H, unpack(flat))
  redis.call('EXPIRE', H, ttl)
end

local function beat()
  redis.call('ZADD', P, now, me)
  redis.call('ZREMRANGEBYSCORE', P, '-inf', now - beat_ttl)
  redis.call('EXPIRE', P, ttl)
  return redis.call('ZCARD', P)
end

local function fmt(value)
  if value == nil then return '' end
  return string.format('%.17g', value)
end

-- Every script answers: {granted, wait_s, processes, factor, paused_for_s, n429, npause,
-- lim:rpm, lim:tpm, lim:itpm, lim:otpm, g:rpm}
local function reply(granted, wait)
  local out = {tostring(granted), fmt(wait), tostring(beat()), fmt(s.factor),
    fmt(math.max(0, s.paused - now)), fmt(s.n429), fmt(s.npause)}
  for _, k in ipairs(KINDS) do out[#out + 1] = fmt(s['lim:' .. k]) end
  out[#out + 1] = fmt(s['g:rpm'] or 0)
  return out
end
"""

# ARGV[6..9]: the demand of each kind (rpm, tpm, itpm, otpm). Grants it if it fits every bucket
# and no pause is on; else answers how long to wait.
ACQUIRE = (
    _PRELUDE
    + r"""
local amounts = {}
for i, k in ipairs(KINDS) do amounts[k] = tonumber(ARGV[5 + i]) end
local wait = s.paused - now
for _, k in ipairs(KINDS) do
  if s['lim:' .. k] then
    local need = math.min(amounts[k], capacity(k)) - s['lvl:' .. k]
    if need > 0 then wait = math.max(wait, need / math.max(rate(k), 1e-9)) end
  end
end
if wait > 1e-6 then
  save()
  return reply(0, wait)
end
for _, k in ipairs(KINDS) do
  s['g:' .. k] = (s['g:' .. k] or 0) + amounts[k]
  if s['lim:' .. k] then s['lvl:' .. k] = s['lvl:' .. k] - amounts[k] end
end
save()
return reply(1, 0)
"""
)

# ARGV[6..9]: what to give back (positive) or take (negative) per kind, after the real usage.
SETTLE = (
    _PRELUDE
    + r"""
for i, k in ipairs(KINDS) do
  local delta = tonumber(ARGV[5 + i])
  if s['lim:' .. k] and delta ~= 0 then
    s['lvl:' .. k] = math.min(capacity(k), s['lvl:' .. k] + delta)
  end
end
save()
return reply(0, 0)
"""
)

# ARGV[6..]: per kind, four values: the provider's limit, this process's configured limit, the
# provider's reported deficit, the reading's band ('' where unknown). ARGV[22]: '1' when the
# response told Anthropic's separate input/output limits (a learned combined TPM no longer applies).
OBSERVE = (
    _PRELUDE
    + r"""
for i, k in ipairs(KINDS) do
  local base = 6 + (i - 1) * 4
  local seen, conf = tonumber(ARGV[base]), tonumber(ARGV[base + 1])
  local deficit, band = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]) or 0
  if conf then
    s['conf:' .. k] = math.min(s['conf:' .. k] or conf, conf)
  end
  conf = s['conf:' .. k]
  local current = s['lim:' .. k]
  if seen and seen > 0 and not (conf and seen >= conf) and current ~= seen then
    s['lim:' .. k] = seen
    if current == nil then
      -- First seen in a response: start where the provider stood.
      s['lvl:' .. k] = capacity(k) - (deficit or 0)
    else
      s['lvl:' .. k] = math.min(s['lvl:' .. k], capacity(k))
    end
  end
  if s['lim:' .. k] and deficit then
    -- The restoring force: never more room than the provider says it has.
    s['lvl:' .. k] = math.min(s['lvl:' .. k], capacity(k) - math.max(0, deficit - band))
  end
end
if ARGV[22] == '1' and not s['conf:tpm'] and s['lim:tpm'] then
  s['lim:tpm'] = nil
  s['lvl:tpm'] = nil
  redis.call('HDEL', H, 'lim:tpm', 'lvl:tpm')
end
save()
return reply(0, 0)
"""
)

# ARGV[6]: configured limits, as 'rpm=..,tpm=..' pairs, seeded before the first request.
# (Part of BEAT: a process announces itself and its configured limits; the smallest wins.)
BEAT = (
    _PRELUDE
    + r"""
for pair in string.gmatch(ARGV[6] or '', '[^,]+') do
  local k, v = string.match(pair, '^(%a+)=(.+)$')
  v = tonumber(v)
  if k and v then
    s['conf:' .. k] = math.min(s['conf:' .. k] or v, v)
    local current = s['lim:' .. k]
    if current == nil or v < current then
      s['lim:' .. k] = v
      -- Configured limits start empty: paced from the first request.
      s['lvl:' .. k] = math.min(s['lvl:' .. k] or 0, capacity(k))
    end
  end
end
save()
return reply(0, 0)
"""
)

# ARGV[6]: seconds to pause (retry-after, capped), ARGV[7]: jitter, ARGV[8..12]: decrease,
# min_cut, overshoot_horizon_s, repeat_window_s, min_factor.
RATE_LIMITED = (
    _PRELUDE
    + r"""
local wait, jitter = tonumber(ARGV[6]), tonumber(ARGV[7])
local decrease, min_cut = tonumber(ARGV[8]), tonumber(ARGV[9])
local horizon, repeat_window, min_factor = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
s.n429 = s.n429 + 1
for _, k in ipairs(KINDS) do
  if s['lim:' .. k] then s['lvl:' .. k] = math.min(s['lvl:' .. k], 0) end
end
local till = now + wait + jitter
if till > s.paused then
  s.paused = till
  s.npause = s.npause + 1
end
-- 429s that arrive together (from any process) are one event: decrease at most once per pause.
if now - s.lastdec > 1 then
  local keep
  if now - s.lastend <= repeat_window then
    keep = decrease
  else
    keep = 1 - math.min(1 - decrease, math.max(min_cut, wait / horizon))
  end
  s.factor = math.max(min_factor, s.factor * keep)
  s.fstamp = now
  s.lastdec = s.paused
end
s.lastend = s.paused
save()
return reply(0, 0)
"""
)
