"""Polling with a deadline: wait for a condition another process (a worker, a server) will make true.

    view = wait_until(lambda: nx.get(audit_id)["status"] == "done" and nx.get(audit_id), 30, what="the audit")

:func:`wait_until` returns the predicate's first truthy value; after ``timeout`` seconds it raises
:class:`WaitTimedOut` (an ``AssertionError``, so a test fails with the message instead of hanging).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimedOut(AssertionError):
    """The condition did not hold before the deadline."""


def wait_until(predicate: Callable[[], T | None], timeout: float, interval: float = 0.05, *, what: str = "",
               detail: Callable[[], str] | None = None) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and return that.

    It is called at least once, and the wait fails only when a call that ended after the deadline returned
    something falsy. ``what`` names the condition in the error; ``detail`` (e.g. a log tail) is called only when
    the wait fails, and its text is appended.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout}s waiting for {what or 'the condition'}"
            if detail is not None:
                message += "\n" + detail()
            raise WaitTimedOut(message)
        time.sleep(interval)


__all__ = ["WaitTimedOut", "wait_until"]
