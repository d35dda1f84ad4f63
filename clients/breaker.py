"""Circuit breakers whose state is shared by every worker process through Redis, on pybreaker's API.

Why not pybreaker's own ``CircuitRedisStorage``: its failure INCR is atomic but the trip decision and the state
writes are separate commands, so with many processes several of them "trip" and fire listeners; half-open admits
every process at once; its keys never expire; and ``CircuitBreaker.call`` holds a process-wide lock for the whole
call, so threads serialise. Here every transition is one Lua script, decided inside Redis:

* CLOSED: calls run. A failed call (one for which :func:`clients.errors.counts_against_breaker` holds) increments
  the shared counter and, in the same script, opens the circuit when it reaches ``fail_max``; exactly one caller
  sees that CLOSED -> OPEN result, logs it and fires the listeners. Any other outcome of a call (a success, and
  also a 404/401/429 or other answer that proves the system is alive) resets the count: failures are consecutive.
* OPEN: calls fail at once with :class:`BreakerOpenError` (a :class:`clients.errors.CircuitOpenError` and a
  ``pybreaker.CircuitBreakerError``); nothing is sent.
* After ``reset_timeout`` one caller, across all processes, wins the trial slot (``SET NX PX``) and moves the
  circuit to HALF_OPEN; everyone else keeps failing fast. The trial's success closes the circuit (counter reset),
  its failure re-opens it with a new ``opened_at``. A trial slot expires after ``trial_ttl_s`` in case its process
  died; a cancelled trial gives the slot back at once.

Only the process that performed a transition logs it and calls ``listener.state_change``: listeners fire once per
transition across the whole fleet. ``before_call``/``success``/``failure`` listener hooks stay per call, locally.
Outcomes are tagged with the state generation they were admitted in, so a call that started before a trip and ends
after it cannot count against the next CLOSED period.

Keys: ``<namespace>:<system>:state`` (a hash: state, failures, opened_at in ms, gen) and ``<namespace>:<system>:trial``,
namespace ``nexus:breaker`` by default. Every write refreshes a TTL (``BreakerPolicy.key_ttl_s``): an idle breaker's
history expires. Time comes from the injectable ``clock`` (epoch seconds) and is passed into the scripts, never read
from Redis ``TIME``, so tests can drive it.

Redis unreachable: the breaker FAILS OPEN, i.e. behaves as CLOSED and lets every call through (the systems are still
protected by the retry budget), logs a ``[resilience]`` warning at most once a minute, and retries Redis after a
second. A broken breaker store must never take an audit down with it.

The Redis calls are synchronous, also inside :meth:`NexusBreaker.call_async`: they are sub-millisecond scripts on a
nearby Redis; the call itself is awaited. The embedded demo and unit tests use the same storage on fakeredis
(``redis="memory://"``; fakeredis runs the Lua with ``lupa``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from clients._log import Throttle, display_name, log, system_id
from clients.errors import CircuitOpenError, counts_against_breaker, is_retryable, is_system_answer
from clients.policy import BreakerPolicy

T = TypeVar("T")
Clock = Callable[[], float]

DEFAULT_NAMESPACE = "nexus:breaker"
#: ``get_breaker(..., redis=MEMORY_URL)``: a process-local fakeredis server (embedded demo, unit tests).
MEMORY_URL = "memory://"

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_TO_PYBREAKER = {CLOSED: pybreaker.STATE_CLOSED, OPEN: pybreaker.STATE_OPEN, HALF_OPEN: pybreaker.STATE_HALF_OPEN}
_FROM_PYBREAKER = {v: k for k, v in _TO_PYBREAKER.items()}

# KEYS[1] = state hash, KEYS[2] = trial slot. ARGV: now_ms, reset_ms, ttl_ms, trial_ttl_ms, token.
# Returns {verdict, gen, failures, opened_at, moved}; verdict closed|open|busy|trial, moved=1 for OPEN->HALF_OPEN.
_ADMIT = """
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures', 'opened_at')
local state = h[1] or 'closed'
local gen = h[2] or '0'
local failures = h[3] or '0'
local opened = h[4] or ''
if state == 'closed' then
  return {'closed', gen, failures, opened, 0}
end
if state == 'open' and opened ~= '' and tonumber(ARGV[1]) < tonumber(opened) + tonumber(ARGV[2]) then
  return {'open', gen, failures, opened, 0}
end
if not redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ARGV[4]) then
  return {'busy', gen, failures, opened, 0}
end
local moved = 0
if state ~= 'half_open' then
  gen = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1))
  redis.call('HSET', KEYS[1], 'state', 'half_open')
  moved = 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'trial', gen, failures, opened, moved}
"""

# ARGV: now_ms, fail_max, gen, token, ttl_ms. Returns {verdict, failures}; verdict counted|tripped|reopened|ignored.
_FAILURE = """
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
if state == 'half_open' and ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'reopened', h[3] or '0'}
end
return {'ignored', h[3] or '0'}
"""

# ARGV: gen, token, ttl_ms. Returns ok|reset|closed|ignored.
_SUCCESS = """
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
if state == 'half_open' and ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0')
  redis.call('HDEL', KEYS[1], 'opened_at')
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'closed'
end
return 'ignored'
"""

# KEYS[1] = trial slot. ARGV: token. Gives an unfinished trial's slot back (cancelled call).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# ARGV: new state, now_ms, ttl_ms. Returns the previous state. Operator/test override (open(), close(), reset).
_FORCE = """
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


class BreakerOpenError(CircuitOpenError, pybreaker.CircuitBreakerError):
    """The circuit is OPEN (or a half-open trial is in flight): failed fast, nothing was sent.

    Catchable as :class:`clients.errors.CircuitOpenError` (the Nexus tree) and as ``pybreaker.CircuitBreakerError``.
    ``retry_in_s`` is the time left before a trial may be admitted (0 when one is already running).
    """

    def __init__(self, message: str, *, system: str = "", status: int | None = None, retry_in_s: float = 0.0) -> None:
        super().__init__(message, system=system, status=status)
        self.retry_in_s = retry_in_s

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["retry_in_s"] = round(self.retry_in_s, 3)
        return out


@dataclass(frozen=True, slots=True)
class Admission:
    """What the admit script decided for one call."""

    verdict: str  # closed | open | busy | trial
    gen: str
    token: str  # the trial slot's token when verdict == "trial", else ""
    failures: int
    opened_at_ms: int | None
    moved: bool  # this caller moved the circuit OPEN -> HALF_OPEN


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted call: the generation it was admitted in and, for the half-open trial, the slot token."""

    gen: str = "0"
    token: str = ""
    live: bool = True  # False when the store was unreachable: the outcome is not recorded


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A read of the shared state, for health checks and operators."""

    system: str
    state: str  # closed | open | half_open
    failures: int
    opened_at: datetime | None
    retry_in_s: float | None
    storage_ok: bool = True

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "failures": self.failures,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "retry_in_s": self.retry_in_s,
            "storage_ok": self.storage_ok,
        }


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: object, default: int = 0) -> int:
    if value is None or value is False or value == b"" or value == "":
        return default
    return int(float(_text(value)))


class RedisBreakerStorage(pybreaker.CircuitBreakerStorage):
    """A breaker's shared state in Redis, with atomic Lua transitions (see the module docstring).

    :class:`NexusBreaker` drives it through :meth:`admit`, :meth:`record_failure`, :meth:`record_success`,
    :meth:`release` and :meth:`force`. The plain ``pybreaker.CircuitBreakerStorage`` accessors (``state``,
    ``counter``, ``opened_at``, ...) are implemented too, for code that inspects a breaker the pybreaker way.
    """

    #: After a Redis error, skip Redis (fail open at once) for this long before trying again.
    retry_store_after_s = 1.0

    def __init__(
        self,
        system: str,
        redis: Redis,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        key_ttl_s: float = 240.0,
        trial_ttl_s: float = 60.0,
        warn_interval_s: float = 60.0,
    ) -> None:
        super().__init__(system_id(system))
        self.system = system_id(system)
        self.redis = redis
        self.namespace = namespace
        self.state_key = f"{namespace}:{self.system}:state"
        self.trial_key = f"{namespace}:{self.system}:trial"
        self.key_ttl_ms = max(1, int(key_ttl_s * 1000))
        self.trial_ttl_ms = max(1, int(trial_ttl_s * 1000))
        self._admit = redis.register_script(_ADMIT)
        self._failure = redis.register_script(_FAILURE)
        self._success = redis.register_script(_SUCCESS)
        self._release = redis.register_script(_RELEASE)
        self._force = redis.register_script(_FORCE)
        self._warn = Throttle(warn_interval_s)
        self._down_until = 0.0
        self._degraded = False

    # -- availability ---------------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the store is considered unreachable (calls fail open)."""
        return not self._degraded

    def _skip(self) -> bool:
        return self._degraded and time.monotonic() < self._down_until

    def _store_failed(self, exc: RedisError) -> None:
        self._degraded = True
        self._down_until = time.monotonic() + self.retry_store_after_s
        if self._warn.ready(self.state_key):
            log(
                logging.WARNING,
                self.system,
                f"Breaker store unavailable ({type(exc).__name__}: {exc}); failing open (circuit treated as CLOSED)",
                error_type=type(exc).__name__,
            )

    def _store_ok(self) -> None:
        if self._degraded:
            self._degraded = False
            log(logging.INFO, self.system, "Breaker store reachable again")

    def _run(self, op: Callable[[], T]) -> T | None:
        """Run one store operation; None (and fail-open mode for a moment) when Redis cannot be reached."""
        if self._skip():
            return None
        try:
            result = op()
        except RedisError as exc:
            self._store_failed(exc)
            return None
        self._store_ok()
        return result

    # -- transitions (one script each) ----------------------------------------------------------------------------

    def admit(self, now_ms: int, reset_timeout_ms: int) -> Admission | None:
        """Decide whether a call may run; None when the store is unreachable (fail open)."""
        token = uuid.uuid4().hex
        args: list[str | int] = [now_ms, reset_timeout_ms, self.key_ttl_ms, self.trial_ttl_ms, token]
        raw = self._run(lambda: self._admit(keys=[self.state_key, self.trial_key], args=args))
        if raw is None:
            return None
        verdict, gen, failures, opened, moved = (_text(v) for v in raw)
        return Admission(
            verdict=verdict,
            gen=gen,
            token=token if verdict == "trial" else "",
            failures=_int(failures),
            opened_at_ms=_int(opened) if opened else None,
            moved=_int(moved) == 1,
        )

    def record_failure(self, ticket: Ticket, now_ms: int, fail_max: int) -> tuple[str, int]:
        """Count a failed call; returns (verdict, failures) with verdict counted|tripped|reopened|ignored."""
        if not ticket.live:
            return ("ignored", 0)
        args: list[str | int] = [now_ms, fail_max, ticket.gen, ticket.token, self.key_ttl_ms]
        raw = self._run(lambda: self._failure(keys=[self.state_key, self.trial_key], args=args))
        if raw is None:
            return ("ignored", 0)
        return (_text(raw[0]), _int(raw[1]))

    def record_success(self, ticket: Ticket) -> str:
        """Note a call that reached a live system; returns ok|reset|closed|ignored."""
        if not ticket.live:
            return "ignored"
        args: list[str | int] = [ticket.gen, ticket.token, self.key_ttl_ms]
        raw = self._run(lambda: self._success(keys=[self.state_key, self.trial_key], args=args))
        return "ignored" if raw is None else _text(raw)

    def release(self, ticket: Ticket) -> None:
        """Give back an unfinished trial's slot (the call was cancelled), so the next caller may try at once."""
        if ticket.live and ticket.token:
            self._run(lambda: self._release(keys=[self.trial_key], args=[ticket.token]))

    def force(self, state: str, now_ms: int) -> str | None:
        """Set the state outright (operator reset, tests); returns the previous state, None if unreachable."""
        if state not in _TO_PYBREAKER:
            raise ValueError(f"unknown breaker state {state!r}")
        raw = self._run(
            lambda: self._force(keys=[self.state_key, self.trial_key], args=[state, now_ms, self.key_ttl_ms])
        )
        return None if raw is None else _text(raw)

    def read(self) -> tuple[str, int, int | None] | None:
        """(state, failures, opened_at_ms) as stored; None when the store is unreachable."""
        raw = self._run(lambda: self.redis.hmget(self.state_key, ["state", "failures", "opened_at"]))
        if raw is None:
            return None
        state, failures, opened = raw
        return (
            _text(state) if state is not None else CLOSED,
            _int(failures),
            _int(opened) if opened is not None else None,
        )

    def delete(self) -> None:
        """Forget everything about this breaker (both keys)."""
        self._run(lambda: self.redis.delete(self.state_key, self.trial_key))

    # -- pybreaker.CircuitBreakerStorage accessors ------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The stored state in pybreaker's spelling (``closed``, ``open``, ``half-open``); ``closed`` on failure."""
        snap = self.read()
        return _TO_PYBREAKER.get(snap[0], pybreaker.STATE_CLOSED) if snap else pybreaker.STATE_CLOSED

    @state.setter
    def state(self, state: str) -> None:
        name = _FROM_PYBREAKER.get(state, state)
        self.force(name, int(time.time() * 1000))

    def increment_counter(self) -> None:
        self._run(lambda: self._hincr("failures"))

    def reset_counter(self) -> None:
        self._run(lambda: self._hset("failures", 0))

    def increment_success_counter(self) -> None:
        self._run(lambda: self._hincr("successes"))

    def reset_success_counter(self) -> None:
        self._run(lambda: self._hset("successes", 0))

    @property
    def counter(self) -> int:
        snap = self.read()
        return snap[1] if snap else 0

    @property
    def success_counter(self) -> int:
        return self._run(lambda: _int(self.redis.hget(self.state_key, "successes"))) or 0

    @property
    def opened_at(self) -> datetime | None:
        snap = self.read()
        if snap is None or snap[2] is None:
            return None
        return datetime.fromtimestamp(snap[2] / 1000, tz=UTC)

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        self._run(lambda: self._hset("opened_at", int(when.timestamp() * 1000)))

    def _hincr(self, field: str) -> None:
        pipe = self.redis.pipeline()
        pipe.hincrby(self.state_key, field, 1)
        pipe.pexpire(self.state_key, self.key_ttl_ms)
        pipe.execute()

    def _hset(self, field: str, value: int) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(self.state_key, field, value)
        pipe.pexpire(self.state_key, self.key_ttl_ms)
        pipe.execute()


def _block() -> None:
    """Stands for the ``with breaker.calling():`` block in ``listener.before_call``."""


def _not_counted(exc: BaseException) -> bool:
    """pybreaker exclusion: errors that do not say the system is unhealthy (4xx, not found, auth, throttled)."""
    return not counts_against_breaker(exc)


class NexusBreaker(pybreaker.CircuitBreaker):
    """A ``pybreaker.CircuitBreaker`` whose state machine runs in Redis (see the module docstring).

    Use it as pybreaker documents: ``breaker.call(fn, *args)``, ``@breaker``, ``with breaker.calling():``,
    listeners, ``open()``/``close()``/``half_open()``; plus ``await breaker.call_async(fn, *args)`` for asyncio
    (coroutine functions decorated with ``@breaker`` use it). No lock is held while the guarded call runs.
    Generator functions are not special-cased: creating the generator is the call.
    """

    def __init__(
        self,
        system: str,
        storage: RedisBreakerStorage,
        *,
        policy: BreakerPolicy | None = None,
        clock: Clock | None = None,
        listeners: Sequence[pybreaker.CircuitBreakerListener] = (),
        exclude: Sequence[type[BaseException] | Callable[[Any], bool]] | None = None,
        throw_new_error_on_trip: bool = False,
    ) -> None:
        self.system = system_id(system)
        self.display = display_name(system)
        self.policy = policy or BreakerPolicy()
        self.storage = storage
        self._clock: Clock = clock or time.time
        super().__init__(
            fail_max=self.policy.fail_max,
            reset_timeout=self.policy.reset_timeout_s,
            exclude=list(exclude) if exclude is not None else [_not_counted],
            listeners=list(listeners),
            state_storage=storage,
            name=self.display,
            throw_new_error_on_trip=throw_new_error_on_trip,
        )

    # -- state ----------------------------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def current_state(self) -> str:
        """The shared state in pybreaker's spelling (``closed``, ``open``, ``half-open``)."""
        return self.storage.state

    @property
    def state(self) -> pybreaker.CBStateType:
        """A state object for the shared state. Reading it never notifies listeners (pybreaker's does, in every
        process that notices a change, which is how one trip became eight notifications)."""
        return self._create_new_state(self.current_state)

    @state.setter
    def state(self, state_str: str) -> None:
        self._force(_FROM_PYBREAKER.get(state_str, state_str))

    def open(self) -> bool:
        """Open the circuit now (operator or test override)."""
        self._force(OPEN)
        return self._throw_new_error_on_trip

    def half_open(self) -> None:
        """Let the next caller through as the trial."""
        self._force(HALF_OPEN)

    def close(self) -> None:
        """Close the circuit and forget its failures (``reset_breaker``)."""
        self._force(CLOSED)

    def is_open(self) -> bool:
        """True while the stored state is OPEN (a half-open trial in flight is not OPEN). False if unreachable."""
        snap = self.storage.read()
        return snap is not None and snap[0] == OPEN

    def snapshot(self) -> BreakerSnapshot:
        """The shared state now, with the seconds left before a trial may run."""
        snap = self.storage.read()
        if snap is None:
            return BreakerSnapshot(self.system, CLOSED, 0, None, None, storage_ok=False)
        state, failures, opened_ms = snap
        opened_at = datetime.fromtimestamp(opened_ms / 1000, tz=UTC) if opened_ms is not None else None
        retry_in: float | None = None
        if state == OPEN:
            elapsed = self._clock() - (opened_ms or 0) / 1000
            retry_in = round(max(0.0, self.reset_timeout - elapsed), 3)
        elif state == HALF_OPEN:
            retry_in = 0.0
        return BreakerSnapshot(self.system, state, failures, opened_at, retry_in)

    def _force(self, state: str) -> None:
        previous = self.storage.force(state, self._now_ms())
        if previous is not None and previous != state:
            self._transition(previous, state, reason="forced")

    def _transition(self, old: str, new: str, *, failures: int | None = None, reason: str | None = None) -> None:
        """Log a transition this process performed and tell the listeners (exactly once fleet-wide)."""
        detail = ""
        if failures is not None:
            detail = f" ({failures} consecutive failures)"
        elif reason:
            detail = f" ({reason})"
        level = logging.WARNING if new == OPEN else logging.INFO
        log(level, self.system, f"Circuit {old.upper()} -> {new.upper()}{detail}", old_state=old, new_state=new)
        from nexus import metrics

        metrics.breaker_transition(self.system, old, new)
        old_obj = self._create_new_state(_TO_PYBREAKER[old])
        new_obj = self._create_new_state(_TO_PYBREAKER[new])
        for listener in self.listeners:
            try:
                listener.state_change(self, old_obj, new_obj)
            except Exception:
                logging.getLogger("nexus.resilience").exception(
                    "[resilience] [%s] breaker listener %r failed", self.display, listener
                )

    # -- one guarded call ------------------------------------------------------------------------------------------

    def _enter(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Ticket:
        admission = self.storage.admit(self._now_ms(), int(self.reset_timeout * 1000))
        if admission is None:  # store unreachable: fail open
            ticket = Ticket(live=False)
        elif admission.verdict in ("open", "busy"):
            retry_in = 0.0
            if admission.verdict == "open" and admission.opened_at_ms is not None:
                retry_in = max(0.0, admission.opened_at_ms / 1000 + self.reset_timeout - self._clock())
            log(logging.WARNING, self.system, "CircuitBreakerOpenError (fast-fail)", retry_in_s=round(retry_in, 3))
            state = "OPEN" if admission.verdict == "open" else "HALF_OPEN (trial in progress)"
            raise BreakerOpenError(
                f"{self.display} circuit breaker is {state}", system=self.system, retry_in_s=retry_in
            )
        elif admission.verdict == "trial":
            ticket = Ticket(gen=admission.gen, token=admission.token)
            if admission.moved:
                self._transition(OPEN, HALF_OPEN)
        else:
            ticket = Ticket(gen=admission.gen)
        for listener in self.listeners:
            listener.before_call(self, func, *args, **kwargs)
        return ticket

    def _succeeded(self, ticket: Ticket) -> None:
        if self.storage.record_success(ticket) == "closed":
            self._transition(HALF_OPEN, CLOSED)
        for listener in self.listeners:
            listener.success(self)

    def _failed(self, ticket: Ticket, exc: BaseException, *, count_failure: bool = True) -> BaseException | None:
        """Record ``exc``; returns the error to raise instead (only with ``throw_new_error_on_trip``)."""
        if isinstance(exc, CircuitOpenError) or not isinstance(exc, Exception):
            # A nested fast-fail or a cancellation says nothing about the system: neutral.
            self.storage.release(ticket)
            return None
        if not self.is_system_error(exc):
            if is_system_answer(exc):
                self._succeeded(ticket)  # the system answered (404, 401, 429...): it is alive
            else:
                # Nothing came from the system (a local rate-budget refusal, a bug in our code): neutral, and a
                # half-open trial gives its slot back.
                self.storage.release(ticket)
            return None
        if not count_failure and not ticket.token and is_retryable(exc):
            # An attempt the caller will retry: neither a failure nor a success (a trial still counts). A failure no
            # retry follows (a malformed answer) is the caller's final outcome whatever its plans: it counts.
            return None
        verdict, failures = self.storage.record_failure(ticket, self._now_ms(), self.fail_max)
        for listener in self.listeners:
            listener.failure(self, exc)
        if verdict == "tripped":
            self._transition(CLOSED, OPEN, failures=failures)
        elif verdict == "reopened":
            self._transition(HALF_OPEN, OPEN)
        if verdict in ("tripped", "reopened") and self._throw_new_error_on_trip:
            return BreakerOpenError(
                f"{self.display} circuit breaker opened", system=self.system, retry_in_s=self.reset_timeout
            )
        return None

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` if the shared circuit admits it; raise :class:`BreakerOpenError` at once if not."""
        if not self.policy.enabled:
            return func(*args, **kwargs)
        ticket = self._enter(func, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            replacement = self._failed(ticket, exc)
            if replacement is not None:
                raise replacement from exc
            raise
        self._succeeded(ticket)
        return result

    async def call_async(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """The asyncio form of :meth:`call` (pybreaker's own ``call_async`` is for Tornado)."""
        if not self.policy.enabled:
            return await func(*args, **kwargs)
        ticket = self._enter(func, args, kwargs)
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            replacement = self._failed(ticket, exc)
            if replacement is not None:
                raise replacement from exc
            raise
        self._succeeded(ticket)
        return result

    @contextlib.contextmanager
    def calling(self, *, count_failure: bool = True) -> Iterator[None]:
        """``with breaker.calling(): ...``: the block is the guarded call.

        ``count_failure=False`` is for a caller that retries by itself across runs (a Celery task on a non-final
        attempt): a retryable failure of the block then leaves the count alone, so one failed task, not each of its
        runs, is one breaker failure. A failure that is never retried (a malformed answer) counts all the same, and
        so does a half-open trial's failure (it re-opens the circuit).
        """
        if not self.policy.enabled:
            yield
            return
        ticket = self._enter(_block, (), {})
        try:
            yield
        except BaseException as exc:
            replacement = self._failed(ticket, exc, count_failure=count_failure)
            if replacement is not None:
                raise replacement from exc
            raise
        self._succeeded(ticket)

    def __call__(self, *call_args: Any, **call_kwargs: bool) -> Callable[..., Any]:
        """``@breaker`` on a sync or ``async def`` function."""
        if len(call_args) != 1 or not callable(call_args[0]):
            return lambda func: self(func)
        func = call_args[0]
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.call_async(func, *args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(func, *args, **kwargs)

        return wrapper


# -- registry ------------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_breakers: dict[tuple[object, ...], NexusBreaker] = {}
_clients: dict[str, Redis] = {}


def redis_for(url: str) -> Redis:
    """A cached Redis client for ``url`` (short socket timeouts: a dead store must not stall calls).

    ``memory://`` (or ``memory://<name>``, one store per name) gives a fakeredis client on a fake server that lives
    in this process until :func:`clear_registry` (the embedded demo, unit tests).
    """
    with _lock:
        client = _clients.get(url)
        if client is None:
            if url.startswith(MEMORY_URL):
                import fakeredis

                client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
            else:
                # redis-py's default retries a refused connection with seconds of backoff; a breaker check must
                # not stall a call that long, so: one immediate retry (a stale pooled connection), then fail open.
                client = Redis.from_url(
                    url,
                    socket_connect_timeout=1.0,
                    socket_timeout=1.0,
                    health_check_interval=30,
                    retry=Retry(NoBackoff(), 1),
                )
            _clients[url] = client
        return client


def _settings_url() -> str:
    from nexus.settings import get_settings

    return get_settings().effective_breaker_redis_url


def get_breaker(
    system: str,
    *,
    redis: Redis | str | None = None,
    policy: BreakerPolicy | None = None,
    clock: Clock | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    listeners: Sequence[pybreaker.CircuitBreakerListener] = (),
) -> NexusBreaker:
    """The breaker for ``system`` (id or display name), cached per system, store, policy and clock.

    ``redis`` is a URL (``memory://`` for the in-process fake), None for the settings'
    ``NEXUS_BREAKER_REDIS_URL``/``REDIS_URL``, or a client (give it short socket timeouts and no retry backoff,
    as :func:`redis_for` does, or a dead Redis stalls every call before failing open).
    ``policy`` defaults to ``BreakerPolicy.from_settings()``.
    Breakers built in different processes on the same store and namespace share one state. ``listeners`` are only
    attached when the breaker is first built.
    """
    policy = policy or BreakerPolicy.from_settings()
    if redis is None:
        redis = _settings_url()
    client = redis_for(redis) if isinstance(redis, str) else redis
    store_key: object = redis if isinstance(redis, str) else id(redis)
    key = (system_id(system), store_key, policy, clock, namespace)
    with _lock:
        breaker = _breakers.get(key)
        if breaker is None:
            storage = RedisBreakerStorage(
                system,
                client,
                namespace=namespace,
                key_ttl_s=policy.key_ttl_s,
                trial_ttl_s=policy.trial_ttl_s,
            )
            breaker = NexusBreaker(system, storage, policy=policy, clock=clock, listeners=listeners)
            _breakers[key] = breaker
        return breaker


def breaker_state(system: str, *, redis: Redis | str | None = None, clock: Clock | None = None) -> dict[str, object]:
    """``{"state": "closed|open|half_open", "failures", "opened_at" (ISO 8601 or None), "retry_in_s",
    "storage_ok"}`` for the health check; an unreachable store reads as closed with ``storage_ok: false``."""
    return get_breaker(system, redis=redis, clock=clock).snapshot().to_dict()


def reset_breaker(system: str, *, redis: Redis | str | None = None) -> None:
    """Close ``system``'s circuit and zero its failures, for every process sharing the store."""
    get_breaker(system, redis=redis).close()


def clear_registry() -> None:
    """Forget cached breakers and clients, and the in-memory stores (tests, or after changing settings)."""
    with _lock:
        _breakers.clear()
        for client in _clients.values():
            with contextlib.suppress(Exception):
                client.close()
        _clients.clear()


__all__ = [
    "CLOSED",
    "DEFAULT_NAMESPACE",
    "HALF_OPEN",
    "MEMORY_URL",
    "OPEN",
    "Admission",
    "BreakerOpenError",
    "BreakerSnapshot",
    "NexusBreaker",
    "RedisBreakerStorage",
    "Ticket",
    "breaker_state",
    "clear_registry",
    "get_breaker",
    "redis_for",
    "reset_breaker",
]
