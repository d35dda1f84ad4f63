"""The breaker's Lua scripts: every transition of a shared circuit is ONE script, decided inside Redis.

Keys: ``<namespace>:<system>:state`` (a hash: state, failures, opened_at in ms, gen) and
``<namespace>:<system>:trial`` (the half-open trial slot, ``SET NX PX`` with the trial's owner: ``u:<unit>`` for a
call made inside a unit of work, :func:`clients.breaker.unit_of_work`, else a token of its own). Every write
refreshes the state key's TTL. ``gen`` counts state changes: an outcome is recorded only in the generation its call
was admitted in.

One clock: ``opened_at`` and every comparison with it are Redis's time (``redis.call('TIME')``, read inside the
script that decides), never the calling worker's, so workers whose wall clocks disagree still agree on when the reset
timeout has passed. Redis 5+ replicates a script's effects rather than the script, so ``TIME`` is allowed in a script
that writes (fakeredis runs it too, with the test process's clock). A test that drives time injects it: the
``now_ms`` argument is then its clock in ms, and ``''`` means "Redis's clock" (:data:`REDIS_TIME`). The lease and the
key TTLs were Redis's clock already (``PX``, ``PEXPIRE``, ``PTTL``).

:class:`clients.breaker.storage.RedisBreakerStorage` registers them and runs them.
"""

from __future__ import annotations

#: The ``now_ms`` argument that means "read Redis's clock" (production); a test's injected clock passes its ms.
REDIS_TIME = ""

# Prepended to the scripts that read the time. ``arg`` is a ``now_ms`` argument: the injected ms, or '' for Redis's
# TIME ({seconds, microseconds}). Ms since the epoch are exact in a Lua number (a double); '%.0f' writes them back
# without an exponent.
_NOW = """
local function now_ms(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms_text(ms) return string.format('%.0f', ms) end
"""

# KEYS[1] = state hash, KEYS[2] = trial slot. ARGV: now_ms ('' = Redis TIME), reset_ms, ttl_ms, trial_ttl_ms, owner,
# unit. ``owner`` is the slot's value if this call wins it: ``u:<unit>`` for a call inside a unit of work, else a
# token. Returns {verdict, gen, failures, opened_at, moved, owner, lease_ms, retry_ms}; verdict closed|open|busy|trial,
# moved=1 for OPEN->HALF_OPEN. A call of the unit that holds the slot is admitted too (moved=0), and renews the lease.
# For ``busy``, lease_ms is what is left of the running trial's lease (PTTL of the slot): when it will be decided or
# given up at the latest, unless renewed. For ``open``, retry_ms is what is left of the reset timeout, on the same
# clock as the decision. The time is read only for an OPEN circuit (the only state that compares it).
ADMIT = _NOW + """
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures', 'opened_at')
local state = h[1] or 'closed'
local gen = h[2] or '0'
local failures = h[3] or '0'
local opened = h[4] or ''
if state == 'closed' then
  return {'closed', gen, failures, opened, 0, '', 0, 0}
end
if state == 'open' and opened ~= '' then
  local left = tonumber(opened) + tonumber(ARGV[2]) - now_ms(ARGV[1])
  if left > 0 then
    return {'open', gen, failures, opened, 0, '', 0, ms_text(left)}
  end
end
if not redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ARGV[4]) then
  if ARGV[6] ~= '' and state == 'half_open' and redis.call('GET', KEYS[2]) == ARGV[5] then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    return {'trial', gen, failures, opened, 0, ARGV[5], 0, 0}
  end
  return {'busy', gen, failures, opened, 0, '', redis.call('PTTL', KEYS[2]), 0}
end
local moved = 0
if state ~= 'half_open' then
  gen = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1))
  redis.call('HSET', KEYS[1], 'state', 'half_open')
  moved = 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'trial', gen, failures, opened, moved, ARGV[5], 0, 0}
"""

# ARGV: now_ms ('' = Redis TIME), fail_max, gen, token, ttl_ms. Returns {verdict, failures}; verdict
# counted|tripped|reopened|ignored. ``opened_at`` (on a trip or a re-open) is the time read here.
# In HALF_OPEN, the failure of any call admitted as the trial in this half-open generation re-opens the circuit,
# whether or not its lease is still held (a trial that outlived its lease still saw the system fail).
FAILURE = _NOW + """
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures')
local state = h[1] or 'closed'
if state == 'closed' then
  if tonumber(h[2] or '0') ~= tonumber(ARGV[3]) then
    return {'ignored', h[3] or '0'}
  end
  local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if n >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ms_text(now_ms(ARGV[1])))
    redis.call('HINCRBY', KEYS[1], 'gen', 1)
    redis.call('DEL', KEYS[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return {'tripped', tostring(n)}
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'counted', tostring(n)}
end
if state == 'half_open' and ARGV[4] ~= '' and tonumber(h[2] or '0') == tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ms_text(now_ms(ARGV[1])))
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'reopened', h[3] or '0'}
end
return {'ignored', h[3] or '0'}
"""

# ARGV: gen, token, ttl_ms. Returns ok|reset|closed|ignored.
# In HALF_OPEN, the success of any call admitted as the trial in this half-open generation closes the circuit, even
# if its lease expired and another trial took the slot: a success from HALF_OPEN always closes.
SUCCESS = """
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures')
local state = h[1] or 'closed'
if state == 'closed' then
  if tonumber(h[2] or '0') == tonumber(ARGV[1]) and tonumber(h[3] or '0') > 0 then
    redis.call('HSET', KEYS[1], 'failures', '0')
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 'reset'
  end
  return 'ok'
end
if state == 'half_open' and ARGV[2] ~= '' and tonumber(h[2] or '0') == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0')
  redis.call('HDEL', KEYS[1], 'opened_at')
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'closed'
end
return 'ignored'
"""

# KEYS[1] = trial slot. ARGV: owner, trial_ttl_ms. Extends the lease of a trial still running (the lease keeper).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] = trial slot. ARGV: token. Gives an undecided trial's slot back (a call of its own whose outcome was
# neutral). Never called with a unit's ``u:`` owner: one call's neutral outcome does not end the unit's trial.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# ARGV: new state, now_ms ('' = Redis TIME), ttl_ms. Returns the previous state. Operator/test override (open(),
# close(), reset).
FORCE = _NOW + """
local prev = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('DEL', KEYS[2])
if ARGV[1] == 'closed' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0')
  redis.call('HDEL', KEYS[1], 'opened_at')
elseif ARGV[1] == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ms_text(now_ms(ARGV[2])))
else
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return prev
"""


__all__ = ["ADMIT", "FAILURE", "FORCE", "REDIS_TIME", "RELEASE", "RENEW", "SUCCESS"]
