"""Circuit breakers whose state is shared by every worker process through Redis, on pybreaker's API.

pybreaker's ``CircuitBreaker.call`` holds a process-wide lock for the whole call, so threads serialise, and its
state reads notify listeners in every process that notices a change. :class:`NexusBreaker` keeps pybreaker's API
but runs its state machine in Redis (:mod:`clients.breaker.storage`, one Lua script per transition):

* CLOSED: calls run. A failed call (one for which :func:`nexus.errors.counts_against_breaker` holds) increments
  the shared counter and, in the same script, opens the circuit when it reaches ``fail_max``; exactly one caller
  sees that CLOSED -> OPEN result, logs it and fires the listeners. Any other outcome of a call (a success, and
  also a 404/401/429 or other answer that proves the system is alive) resets the count: failures are consecutive.
* OPEN: calls fail at once with :class:`~nexus.errors.BreakerOpenError` (a :class:`nexus.errors.CircuitOpenError`
  and a ``pybreaker.CircuitBreakerError``); nothing is sent.
* After ``reset_timeout`` one caller, across all processes, wins the trial slot (``SET NX PX``) and moves the
  circuit to HALF_OPEN; everyone else keeps failing fast (:class:`TrialInProgressError`, a
  :class:`~nexus.errors.BreakerOpenError`). A call made inside a unit of work (:func:`clients.breaker.unit_of_work`:
  one fleet snapshot, one part of an audit) wins the slot for its whole unit, and the unit's other calls are
  admitted as part of the trial. The first outcome of a trial call decides: a success closes the circuit (counter
  reset), a failure re-opens it with a new ``opened_at``.
* The slot is a lease of ``trial_ttl_s`` (``max(reset_timeout, 30 s)``, never shorter than the HTTP timeout: the
  settings refuse it), so a trial whose process died frees it. While a trial runs, its process renews the lease
  (:mod:`clients.breaker.lease`) and each admitted call of its unit renews it too. A trial call of its own whose
  outcome is neutral (cancelled, refused by our budget) gives the slot back at once; a unit's slot is not given
  back on one call's neutral outcome (the unit's other calls are still its trial), its lease bounds it.

Where Nexus differs from pybreaker's state machine, on purpose:

* pybreaker lets every caller through in HALF_OPEN (each in its own process's view); Nexus admits exactly one trial
  fleet-wide, or one unit of work's calls. Without units, the first fleet audit after a recovery was refused by its
  own trial: its concurrent pages hit "HALF_OPEN (trial in progress)".
* pybreaker closes on the success of "the" half-open call; Nexus closes on the success of ANY trial call admitted in
  this half-open period, even one whose lease expired while it ran and was taken by a second trial (before, both
  trials succeeded, the first success was ignored as stale, and the circuit stayed HALF_OPEN).
* Transitions are decided in Redis; state reads never transition (pybreaker's ``state`` property does), and
  answers that prove the system alive (404, 401, 429) reset the count instead of being merely "excluded".

Only the process that performed a transition logs it and calls ``listener.state_change``: listeners fire once per
transition across the whole fleet (that is how the worker's metrics count transitions: a listener installed with
:func:`clients.breaker.install_listener`). ``before_call``/``success``/``failure`` listener hooks stay per call,
locally. Outcomes are tagged with the state generation they were admitted in, so a call that started before a trip
and ends after it cannot count against the next CLOSED period.

One clock: without a ``clock``, breaker time is Redis's (the scripts read ``TIME``), so ``opened_at``, the reset
timeout and every reported wait (a fast-fail's ``retry_in_s``, the snapshot's ``retry_in_s``, a trial's lease) mean
the same to every worker whatever its host's clock says. A test injects ``clock`` (epoch seconds) and drives time
with it; its readings are then passed into the scripts instead.

Redis unreachable: the breaker FAILS OPEN (behaves as CLOSED, see :mod:`clients.breaker.storage`). The Redis calls
are synchronous, also inside :meth:`NexusBreaker.call_async`; the call itself is awaited.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker

from clients._log import display_name, log, system_id
from clients.breaker.lease import LeaseKeeper
from clients.breaker.storage import (
    CLOSED,
    FROM_PYBREAKER,
    HALF_OPEN,
    OPEN,
    TO_PYBREAKER,
    RedisBreakerStorage,
    Ticket,
)
from clients.breaker.unit import current_unit
from nexus.errors import BreakerOpenError, CircuitOpenError, counts_against_breaker, is_retryable, is_system_answer
from nexus.policy import BreakerPolicy

T = TypeVar("T")
Clock = Callable[[], float]


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


class TrialInProgressError(BreakerOpenError):
    """The circuit is HALF_OPEN and another caller's trial (another unit of work) is deciding it: it will be CLOSED
    or OPEN within the trial's lease. ``retry_in_s`` is what is left of that lease (the slot's PTTL; a running trial
    renews it). A caller that can come back later (a Celery task) retries after about that long, without counting
    it as a failed attempt; the others fail fast as for OPEN."""


#: A caller waiting for another caller's half-open trial gives up after this many trial leases in all: a trial
#: renews its lease while it runs, so one that never ends must not hold its waiters forever.
TRIAL_WAIT_LEASES = 3


def trial_wait_budget_s(lease_s: float, longest_call_s: float = 0.0) -> float:
    """How long in all a caller waits for another caller's half-open trial before giving up.

    ``TRIAL_WAIT_LEASES`` leases, and never less than the system's longest single request plus one lease: a trial
    that is one slow request (Workday's whole RaaS report, ``NEXUS_WORKDAY_REPORT_TIMEOUT_S`` = 300 s, against a
    60 s lease it keeps renewing) must be able to finish before its waiters give up and report the system failed.
    """
    return max(TRIAL_WAIT_LEASES * lease_s, longest_call_s + lease_s)


def trial_wait_s(exc: TrialInProgressError, lease_s: float) -> float:
    """How long to wait before asking again after ``exc``: what is left of the other trial's lease (by then it has
    decided the circuit, renewed its lease, or died and freed the slot), at least a second, at most one lease."""
    return float(min(max(exc.retry_in_s, 1.0), max(lease_s, 1.0)))


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
        self._clock = clock  # None: Redis's clock (see the module docstring)
        super().__init__(
            fail_max=self.policy.fail_max,
            reset_timeout=self.policy.reset_timeout_s,
            exclude=list(exclude) if exclude is not None else [_not_counted],
            listeners=list(listeners),
            state_storage=storage,
            name=self.display,
            throw_new_error_on_trip=throw_new_error_on_trip,
        )
        self.leases = LeaseKeeper(storage.renew, self.policy.trial_ttl_s / 3, name=self.display)

    # -- state ----------------------------------------------------------------------------------------------------

    def _now_ms(self) -> int | None:
        """The injected clock's reading in ms, or None: the scripts read Redis's clock."""
        return None if self._clock is None else int(self._clock() * 1000)

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
        self._force(FROM_PYBREAKER.get(state_str, state_str))

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
        snap = self.storage.read_at(self._now_ms())
        if snap is None:
            return BreakerSnapshot(self.system, CLOSED, 0, None, None, storage_ok=False)
        opened_ms = snap.opened_at_ms
        opened_at = datetime.fromtimestamp(opened_ms / 1000, tz=UTC) if opened_ms is not None else None
        retry_in: float | None = None
        if snap.state == OPEN:
            elapsed_ms = snap.now_ms - (opened_ms or 0)
            retry_in = round(max(0.0, self.reset_timeout - elapsed_ms / 1000), 3)
        elif snap.state == HALF_OPEN:
            retry_in = 0.0
        return BreakerSnapshot(self.system, snap.state, snap.failures, opened_at, retry_in)

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
        old_obj = self._create_new_state(TO_PYBREAKER[old])
        new_obj = self._create_new_state(TO_PYBREAKER[new])
        for listener in self.listeners:
            try:
                listener.state_change(self, old_obj, new_obj)
            except Exception:
                logging.getLogger("nexus.resilience").exception(
                    "[resilience] [%s] breaker listener %r failed", self.display, listener
                )

    # -- one guarded call ------------------------------------------------------------------------------------------

    def _enter(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Ticket:
        admission = self.storage.admit(self._now_ms(), int(self.reset_timeout * 1000), current_unit())
        if admission is None:  # store unreachable: fail open
            ticket = Ticket(live=False)
        elif admission.verdict == "open":
            retry_in = admission.retry_in_ms / 1000  # on the clock that decided it is OPEN
            log(logging.WARNING, self.system, "CircuitBreakerOpenError (fast-fail)", retry_in_s=round(retry_in, 3))
            raise BreakerOpenError(
                f"{self.display} circuit breaker is OPEN", system=self.system, retry_in_s=retry_in
            )
        elif admission.verdict == "busy":
            lease_left = admission.lease_left_ms / 1000
            log(logging.WARNING, self.system, "CircuitBreakerOpenError (fast-fail: trial in progress)",
                retry_in_s=round(lease_left, 3))
            raise TrialInProgressError(
                f"{self.display} circuit breaker is HALF_OPEN (trial in progress)", system=self.system,
                retry_in_s=lease_left,
            )
        elif admission.verdict == "trial":
            ticket = Ticket(gen=admission.gen, token=admission.token)
            self.leases.hold(ticket.token)
            if admission.moved:
                self._transition(OPEN, HALF_OPEN)
        else:
            ticket = Ticket(gen=admission.gen)
        try:
            for listener in self.listeners:
                listener.before_call(self, func, *args, **kwargs)
        except BaseException:
            self._leave(ticket)
            self.storage.release(ticket)
            raise
        return ticket

    def _leave(self, ticket: Ticket) -> None:
        """The guarded call ended (before its outcome is recorded): a trial's lease is no longer kept for it."""
        if ticket.token:
            self.leases.drop(ticket.token)

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
            self._leave(ticket)
            replacement = self._failed(ticket, exc)
            if replacement is not None:
                raise replacement from exc
            raise
        self._leave(ticket)
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
            self._leave(ticket)
            replacement = self._failed(ticket, exc)
            if replacement is not None:
                raise replacement from exc
            raise
        self._leave(ticket)
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
            self._leave(ticket)
            replacement = self._failed(ticket, exc, count_failure=count_failure)
            if replacement is not None:
                raise replacement from exc
            raise
        self._leave(ticket)
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


__all__ = ["TRIAL_WAIT_LEASES", "BreakerSnapshot", "Clock", "NexusBreaker", "TrialInProgressError",
           "trial_wait_budget_s", "trial_wait_s"]
