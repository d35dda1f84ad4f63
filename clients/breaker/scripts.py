"""The breaker's Lua scripts: every transition of a shared circuit is ONE script, decided inside Redis.

Keys: ``<namespace>:<system>:state`` (a hash: state, failures, opened_at in ms, gen) and
``<namespace>:<system>:trial`` (the half-open trial slot, ``SET NX PX`` with the trial's owner: ``u:<unit>`` for a
call made inside a unit of work, :func:`clients.breaker.unit_of_work`, else a token of its own). Every write
refreshes the state key's TTL. Time (``now_ms``) is an argument, never Redis ``TIME``, so tests can drive it.
``gen`` counts state changes: an outcome is recorded only in the generation its call was admitted in.

:class:`clients.breaker.storage.RedisBreakerStorage` registers them and runs them.
"""

from __future__ import annotations

# KEYS[1] = state hash, KEYS[2] = trial slot. ARGV: now_ms, reset_ms, ttl_ms, trial_ttl_ms, owner, unit.
# ``owner`` is the slot's value if this call wins it: ``u:<unit>`` for a call inside a unit of work, else a token.
# Returns {verdict, gen, failures, opened_at, moved, owner, lease_ms}; verdict closed|open|busy|trial, moved=1 for
# OPEN->HALF_OPEN. A call of the unit that holds the slot is admitted too (moved=0), and renews the lease. For
# ``busy``, lease_ms is what is left of the running trial's lease (PTTL of the slot): when it will be decided or
# given up at the latest, unless renewed.
ADMIT = """
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures', 'opened_at')
local state = h[1] or 'closed'
local gen = h[2] or '0'
local failures = h[3] or '0'
local opened = h[4] or ''
if state == 'closed' then
  return {'closed', gen, failures, opened, 0, '', 0}
end
if state == 'open' and opened ~= '' and tonumber(ARGV[1]) < tonumber(opened) + tonumber(ARGV[2]) then
  return {'open', gen, failures, opened, 0, '', 0}
end
if not redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ARGV[4]) then
  if ARGV[6] ~= '' and state == 'half_open' and redis.call('GET', KEYS[2]) == ARGV[5] then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    return {'trial', gen, failures, opened, 0, ARGV[5], 0}
  end
  return {'busy', gen, failures, opened, 0, '', redis.call('PTTL', KEYS[2])}
end
local moved = 0
if state ~= 'half_open' then
  gen = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1))
  redis.call('HSET', KEYS[1], 'state', 'half_open')
  moved = 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'trial', gen, failures, opened, moved, ARGV[5], 0}
"""

# ARGV: now_ms, fail_max, gen, token, ttl_ms. Returns {verdict, failures}; verdict counted|tripped|reopened|ignored.
# In HALF_OPEN, the failure of any call admitted as the trial in this half-open generation re-opens the circuit,
# whether or not its lease is still held (a trial that outlived its lease still saw the system fail).
FAILURE = """
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures')
local state = h[1] or 'closed'
if state == 'closed' then
  if tonumber(h[2] or '0') ~= tonumber(ARGV[3]) then
    return {'ignored', h[3] or '0'}
  end
  local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if n >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'gen', 1)
    redis.call('DEL', KEYS[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return {'tripped', tostring(n)}
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'counted', tostring(n)}
end
if state == 'half_open' and ARGV[4] ~= '' and tonumber(h[2] or '0') == tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1])
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

# ARGV: new state, now_ms, ttl_ms. Returns the previous state. Operator/test override (open(), close(), reset).
FORCE = """
local prev = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('DEL', KEYS[2])
if ARGV[1] == 'closed' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0')
  redis.call('HDEL', KEYS[1], 'opened_at')
elseif ARGV[1] == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2])
else
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return prev
"""


__all__ = ["ADMIT", "FAILURE", "FORCE", "RELEASE", "RENEW", "SUCCESS"]
