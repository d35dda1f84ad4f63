"""Units of work: the requests of one snapshot or one part share the half-open trial their first request won.

A fleet snapshot sends its pages concurrently, and a part of a bulk audit sends one request per person. When the
circuit is HALF_OPEN, the first of them wins the trial slot; without units, every other request of the SAME
snapshot or part was refused ("HALF_OPEN (trial in progress)") and the system was reported failed for nothing,
while the trial itself succeeded. Inside :func:`unit_of_work`, the slot is taken in the unit's name (``u:<unit>``),
and the unit's other requests are admitted as part of the trial (and renew its lease); callers outside the unit
still fail fast. The first outcome decides: a success closes the circuit (the rest then flow as in CLOSED), a
failure re-opens it (the unit's requests still in flight are then ignored by the breaker, and those not yet sent
fail fast).

The unit is a :class:`contextvars.ContextVar`: it follows the code that set it, including ``await``, but not into
threads a pool started earlier; code that fans out to a thread pool enters the unit in each task
(:class:`UnitGate` does it for the breaker's ``calling()`` form).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Protocol

_UNIT: ContextVar[str | None] = ContextVar("nexus_breaker_unit", default=None)


def current_unit() -> str | None:
    """The unit of work the current code runs in, or None."""
    return _UNIT.get()


@contextlib.contextmanager
def unit_of_work(name: str | None = None) -> Iterator[str]:
    """Run the block as one unit of work (``name``: a stable id such as ``"<audit>:<system>:<task id>"``, one part
    of an audit; None: a new one).

    Units nest by replacement: the innermost name applies. Yields the name.
    """
    unit = name or uuid.uuid4().hex
    token = _UNIT.set(unit)
    try:
        yield unit
    finally:
        _UNIT.reset(token)


class _Calling(Protocol):
    def calling(self, *, count_failure: bool = True) -> AbstractContextManager[None]: ...


class UnitGate:
    """A breaker's ``calling()`` form bound to a unit of work, for callers that run each call on a pool thread
    (the fleet snapshot runner): every call enters the unit in the thread that makes it."""

    def __init__(self, breaker: _Calling, unit: str) -> None:
        self.breaker = breaker
        self.unit = unit

    @contextlib.contextmanager
    def calling(self, *, count_failure: bool = True) -> Iterator[None]:
        with unit_of_work(self.unit), self.breaker.calling(count_failure=count_failure):
            yield


__all__ = ["UnitGate", "current_unit", "unit_of_work"]
