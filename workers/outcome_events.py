"""A fetch or snapshot that returned a failure marker is a *failed* task for Flower, not a success.

Why a task event and not a task state: Flower knows tasks only from the workers' events, never from the result
backend, so ``task.update_state(state="FAILED_SYSTEM")`` never reaches it. Its dashboard counts the ``task-failed``
events of each worker ("Failed"), and its task list shows the state that Celery's ``events.state`` derives from them.

Why here, in the worker's parent process: a fetch must RETURN its marker (a raising chord header stops the chord
body, see ``tasks/fetch.py``), so the child stores a SUCCESS result and the parent then sends ``task-succeeded``.
An extra ``task-failed`` sent from the task itself does not help: in ``celery.events.state`` a SUCCESS always wins
over a FAILURE, whichever arrives first. So the parent's request (``Task.Request``, a Celery extension point) sends
``task-failed`` *instead of* ``task-succeeded`` when the result is a failure marker. The result backend, the chord and
the chain callbacks are untouched: they already have the marker as a successful result.

The parent only sees the result's ``saferepr`` (``celery.app.trace``: ``Rstr``). Markers are small literals
(``{'system': 'workday', 'ok': False, 'error': {...}}``; a chained snapshot returns ``[previous, own]``), so they are
read back with :func:`ast.literal_eval`, which evaluates no code. A truncated or non-literal repr (a large successful
fetch) is not a marker.
"""

from __future__ import annotations

import ast
from typing import Any

from celery.worker.request import Request

from nexus.systems import System

#: What a successful task's event becomes when its result is a failure marker.
FAILED_EVENT = "task-failed"
_MARKER_STARTS = ("{'system': ", "[{'system': ")
_MARKER_NOTE = ("returned a failure marker: the system could not be read; the audit went on without it "
                "(see the audit's report for every system's reason)")


def failure_of(result_repr: Any) -> dict[str, Any] | None:
    """The failure marker a task returned (its own, the last of a chained snapshot's pair), or None."""
    if not isinstance(result_repr, str) or not result_repr.startswith(_MARKER_STARTS) or "'ok': False" not in \
            result_repr:
        return None
    try:
        value = ast.literal_eval(result_repr)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None  # truncated by saferepr, or not a literal: not one of ours
    own = value[-1] if isinstance(value, list) and value else value
    if isinstance(own, dict) and own.get("ok") is False and isinstance(own.get("system"), str):
        return own
    return None


def failed_event_fields(marker: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The ``task-failed`` fields Flower shows (``exception``, ``traceback``), keeping the result and runtime."""
    raw = marker.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    system = str(marker.get("system", ""))
    try:
        name = System(system).display
    except ValueError:
        name = system
    attempts = error.get("attempts")
    tail = f" (after {attempts} attempt{'s' if attempts != 1 else ''})" if isinstance(attempts, int) else ""
    exception = f"{name} unavailable: {error.get('type', 'Error')}: {error.get('message', '')}{tail}"
    return {**fields, "exception": exception, "traceback": _MARKER_NOTE}


def outcome_event(type_: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event to send for ``type_``: ``task-succeeded`` of a failure marker becomes ``task-failed``."""
    if type_ == "task-succeeded":
        marker = failure_of(fields.get("result"))
        if marker is not None:
            return FAILED_EVENT, failed_event_fields(marker, fields)
    return type_, fields


class MarkerAwareRequest(Request):
    """The worker's request of fetch and snapshot tasks: a returned failure marker is reported as failed."""

    def send_event(self, type: str, **fields: Any) -> None:  # `type`: Celery's own parameter name
        event, sent = outcome_event(type, fields)
        super().send_event(event, **sent)


#: For ``celery_app.task(..., Request=MARKER_AWARE_REQUEST)``: resolved by the worker (``symbol_by_name``).
MARKER_AWARE_REQUEST = "workers.outcome_events:MarkerAwareRequest"
