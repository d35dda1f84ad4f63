"""A breaker's shared state in Redis: :class:`RedisBreakerStorage` runs the Lua transitions and FAILS OPEN.

Why not pybreaker's own ``CircuitRedisStorage``: its failure INCR is atomic but the trip decision and the state
writes are separate commands, so with many processes several of them "trip" and fire listeners; half-open admits
every process at once; and its keys never expire. Here every transition is one script
(:mod:`clients.breaker.scripts`), and every write refreshes a TTL (``BreakerPolicy.key_ttl_s``): an idle breaker's
history expires.

Redis unreachable: the storage answers None ("unknown"), and the breaker then behaves as CLOSED and lets every call
through (the systems are still protected by the retry budget); a ``[resilience]`` warning is logged at most once a
minute, and Redis is retried after a second. A broken breaker store must never take an audit down with it.

Time: every ``now_ms`` parameter is the caller's injected clock in ms, or None for Redis's clock (production): the
scripts then read ``TIME`` themselves, and :meth:`RedisBreakerStorage.read_at` reads it beside the state, so what
the breaker reports ("opens again in N s") is on the clock that decides. See :mod:`clients.breaker.scripts`.

The Redis calls are synchronous: they are sub-millisecond scripts on a nearby Redis. The embedded demo and unit
tests use the same storage on fakeredis (``memory://``; fakeredis runs the Lua with ``lupa``, ``TIME`` included:
there it is the local clock, the one process's).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import pybreaker
from redis import Redis
from redis.exceptions import RedisError

from clients._log import Throttle, log, system_id
from clients.breaker.scripts import ADMIT, FAILURE, FORCE, REDIS_TIME, RELEASE, RENEW, SUCCESS

T = TypeVar("T")

DEFAULT_NAMESPACE = "nexus:breaker"
UNIT_OWNER_PREFIX = "u:"  # the trial slot's owner for a call inside a unit of work (a uuid4 hex never has it)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
TO_PYBREAKER = {CLOSED: pybreaker.STATE_CLOSED, OPEN: pybreaker.STATE_OPEN, HALF_OPEN: pybreaker.STATE_HALF_OPEN}
FROM_PYBREAKER = {v: k for k, v in TO_PYBREAKER.items()}


@dataclass(frozen=True, slots=True)
class Admission:
    """What the admit script decided for one call."""

    verdict: str  # closed | open | busy | trial
    gen: str
    token: str  # the trial slot's owner when verdict == "trial" (``u:<unit>`` or a token of its own), else ""
    failures: int
    opened_at_ms: int | None
    moved: bool  # this caller moved the circuit OPEN -> HALF_OPEN
    lease_left_ms: int = 0  # verdict == "busy": what is left of the running trial's lease (0 if unknown)
    retry_in_ms: int = 0  # verdict == "open": what is left of the reset timeout, on the clock that decided


@dataclass(frozen=True, slots=True)
class StoredState:
    """The stored state and the time it was read at (Redis's, or the injected clock's)."""

    state: str
    failures: int
    opened_at_ms: int | None
    now_ms: int


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted call: the generation it was admitted in and, for the half-open trial, the slot token."""

    gen: str = "0"
    token: str = ""
    live: bool = True  # False when the store was unreachable: the outcome is not recorded


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: object, default: int = 0) -> int:
    if value is None or value is False or value == b"" or value == "":
        return default
    return int(float(_text(value)))


_FIELDS = ["state", "failures", "opened_at"]


def _parse_state(raw: Sequence[object]) -> tuple[str, int, int | None]:
    """(state, failures, opened_at_ms) from an HMGET of :data:`_FIELDS`."""
    state, failures, opened = raw
    return (
        _text(state) if state is not None else CLOSED,
        _int(failures),
        _int(opened) if opened is not None else None,
    )


def _clock_arg(now_ms: int | None) -> str | int:
    """A script's ``now_ms`` argument: the injected time, or :data:`~clients.breaker.scripts.REDIS_TIME`."""
    return REDIS_TIME if now_ms is None else now_ms


class RedisBreakerStorage(pybreaker.CircuitBreakerStorage):
    """A breaker's shared state in Redis, with atomic Lua transitions (see :mod:`clients.breaker.scripts`).

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
        self._admit = redis.register_script(ADMIT)
        self._failure = redis.register_script(FAILURE)
        self._success = redis.register_script(SUCCESS)
        self._release = redis.register_script(RELEASE)
        self._renew = redis.register_script(RENEW)
        self._force = redis.register_script(FORCE)
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

    def admit(self, now_ms: int | None, reset_timeout_ms: int, unit: str | None = None) -> Admission | None:
        """Decide whether a call may run; None when the store is unreachable (fail open). ``now_ms``: None for
        Redis's clock.

        ``unit``: the caller's unit of work (:mod:`clients.breaker.unit`). A trial won inside a unit is held in the
        unit's name, and the unit's later calls are admitted as part of it while the circuit is HALF_OPEN."""
        owner = f"{UNIT_OWNER_PREFIX}{unit}" if unit else uuid.uuid4().hex
        args: list[str | int] = [
            _clock_arg(now_ms), reset_timeout_ms, self.key_ttl_ms, self.trial_ttl_ms, owner, unit or ""
        ]
        raw = self._run(lambda: self._admit(keys=[self.state_key, self.trial_key], args=args))
        if raw is None:
            return None
        verdict, gen, failures, opened, moved, slot, lease, retry = (_text(v) for v in raw)
        return Admission(
            verdict=verdict,
            gen=gen,
            token=slot if verdict == "trial" else "",
            failures=_int(failures),
            opened_at_ms=_int(opened) if opened else None,
            moved=_int(moved) == 1,
            lease_left_ms=max(0, _int(lease)),
            retry_in_ms=max(0, _int(retry)),
        )

    def renew(self, owner: str) -> bool:
        """Extend the lease of the trial slot if ``owner`` still holds it; False if it was lost (or no store)."""
        raw = self._run(lambda: self._renew(keys=[self.trial_key], args=[owner, self.trial_ttl_ms]))
        return raw is not None and _int(raw) == 1

    def record_failure(self, ticket: Ticket, now_ms: int | None, fail_max: int) -> tuple[str, int]:
        """Count a failed call; returns (verdict, failures) with verdict counted|tripped|reopened|ignored.
        ``now_ms`` (None: Redis's clock) becomes ``opened_at`` on a trip or a re-open."""
        if not ticket.live:
            return ("ignored", 0)
        args: list[str | int] = [_clock_arg(now_ms), fail_max, ticket.gen, ticket.token, self.key_ttl_ms]
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
        """Give back an undecided trial's slot (its call's outcome was neutral), so the next caller may try at once.

        Only a call's own token is released. A unit's slot (``u:<unit>``) is shared by every call of the unit: one
        call's neutral outcome (our budget, a nested fast-fail, a cancellation) must not free it for everyone else
        (another unit would win a second trial, and the unit's next requests would be refused). It ends with the
        trial's outcome, or with its lease (renewed only while the unit's calls are in flight)."""
        if ticket.live and ticket.token and not ticket.token.startswith(UNIT_OWNER_PREFIX):
            self._run(lambda: self._release(keys=[self.trial_key], args=[ticket.token]))

    def force(self, state: str, now_ms: int | None = None) -> str | None:
        """Set the state outright (operator reset, tests); returns the previous state, None if unreachable.
        ``now_ms`` (None: Redis's clock) is ``opened_at`` when ``state`` is OPEN."""
        if state not in TO_PYBREAKER:
            raise ValueError(f"unknown breaker state {state!r}")
        args: list[str | int] = [state, _clock_arg(now_ms), self.key_ttl_ms]
        raw = self._run(lambda: self._force(keys=[self.state_key, self.trial_key], args=args))
        return None if raw is None else _text(raw)

    def read(self) -> tuple[str, int, int | None] | None:
        """(state, failures, opened_at_ms) as stored; None when the store is unreachable."""
        raw = self._run(lambda: self.redis.hmget(self.state_key, _FIELDS))
        return None if raw is None else _parse_state(raw)

    def read_at(self, now_ms: int | None) -> StoredState | None:
        """The stored state with the time to judge it by: ``now_ms``, or (None) Redis's ``TIME``, read in the same
        transaction; None when the store is unreachable."""
        if now_ms is not None:
            snap = self.read()
            return None if snap is None else StoredState(*snap, now_ms=now_ms)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hmget(self.state_key, _FIELDS)
        pipe.time()
        both = self._run(pipe.execute)
        if both is None:
            return None
        seconds, micros = both[1]
        return StoredState(*_parse_state(both[0]), now_ms=int(seconds) * 1000 + int(micros) // 1000)

    def delete(self) -> None:
        """Forget everything about this breaker (both keys)."""
        self._run(lambda: self.redis.delete(self.state_key, self.trial_key))

    # -- pybreaker.CircuitBreakerStorage accessors ------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The stored state in pybreaker's spelling (``closed``, ``open``, ``half-open``); ``closed`` on failure."""
        snap = self.read()
        return TO_PYBREAKER.get(snap[0], pybreaker.STATE_CLOSED) if snap else pybreaker.STATE_CLOSED

    @state.setter
    def state(self, state: str) -> None:
        name = FROM_PYBREAKER.get(state, state)
        self.force(name)  # opened_at: Redis's clock

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


__all__ = [
    "CLOSED",
    "DEFAULT_NAMESPACE",
    "FROM_PYBREAKER",
    "HALF_OPEN",
    "OPEN",
    "TO_PYBREAKER",
    "Admission",
    "RedisBreakerStorage",
    "StoredState",
    "Ticket",
]
