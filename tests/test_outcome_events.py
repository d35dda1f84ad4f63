"""A fetch or snapshot that returned a failure marker is reported to Flower as ``task-failed``
(:mod:`workers.outcome_events`); the result, the chord and the chain still get the marker.

The worker's own request class is exercised the way the worker builds it (``create_request_cls`` over the task's
``Request``), with the result as the parent process receives it (``saferepr``). ``tests/test_flower.py`` shows the
same through a real worker and a real Flower.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import pytest
from celery.contrib.testing.mocks import TaskMessage
from celery.utils.saferepr import saferepr
from celery.worker.request import create_request_cls
from celery.worker.state import active_requests

from nexus.errors import BreakerOpenError, TransientError
from nexus.systems import System
from tasks.fetch import FETCH_TASKS, failure_marker
from tasks.fleet import SNAPSHOT_TASKS
from workers.app import celery_app
from workers.outcome_events import MARKER_AWARE_REQUEST, failure_of, outcome_event

MAXSIZE = FETCH_TASKS[System.WORKDAY].resultrepr_maxsize  # what celery.app.trace cuts a result's repr to


def _repr(value: Any) -> str:
    return saferepr(value, MAXSIZE)


def _marker() -> dict[str, Any]:
    return failure_marker(System.WORKDAY, TransientError("Workday: connection refused", system="workday"), 3)


def test_a_failure_marker_is_read_back_from_the_parents_repr() -> None:
    marker = _marker()
    assert failure_of(_repr(marker)) == marker
    snapshot = {"system": "helix", "ok": False, "error": {"type": "BreakerOpenError", "message": "open"}}
    assert failure_of(_repr(snapshot)) == snapshot
    # A chained snapshot returns [previous, own]: its own marker decides.
    assert failure_of(_repr([{"system": "helix", "ok": True}, snapshot])) == snapshot
    assert failure_of(_repr([snapshot, {"system": "fedex", "ok": True}])) is None


@pytest.mark.parametrize("result", [
    {"system": "workday", "ok": True, "data": {"a@example.com": {"title": "{'system': 'x', 'ok': False"}},
     "attempts": 1},
    {"system": "workday", "ok": True, "data": {f"p{i}@example.com": {"ok": False} for i in range(200)}},  # truncated
    {"audit_id": "a1", "ok": False},  # not a system's marker
    "{'system': 'workday', 'ok': False}",  # a string result, not a marker
    None, 42, [],
])
def test_anything_else_is_not_a_failure(result: Any) -> None:
    assert failure_of(_repr(result)) is None
    assert outcome_event("task-succeeded", {"result": _repr(result)})[0] == "task-succeeded"


def test_the_succeeded_event_of_a_marker_becomes_failed_with_the_systems_reason() -> None:
    fields = {"result": _repr(_marker()), "runtime": 0.25}
    event, sent = outcome_event("task-succeeded", fields)
    assert event == "task-failed"
    assert sent["exception"] == "Workday unavailable: TransientError: Workday: connection refused (after 3 attempts)"
    assert "failure marker" in sent["traceback"]
    assert sent["result"] == fields["result"] and sent["runtime"] == 0.25  # Flower still shows the marker
    for other in ("task-received", "task-started", "task-retried", "task-failed"):
        assert outcome_event(other, {"x": 1}) == (other, {"x": 1})


def test_every_fetch_and_snapshot_task_uses_the_marker_aware_request() -> None:
    tasks = [*FETCH_TASKS.values(), *SNAPSHOT_TASKS.values()]
    assert tasks
    assert {t.name: t.Request for t in tasks} == {t.name: MARKER_AWARE_REQUEST for t in tasks}


class _Eventer:
    enabled = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, type_: str, **fields: Any) -> None:
        self.sent.append((type_, fields))


@pytest.mark.parametrize(("result", "expected"), [
    (_marker(), "task-failed"),
    (failure_marker(System.AD, BreakerOpenError("ActiveDirectory circuit open", system="ad"), 1), "task-failed"),
    ({"system": "workday", "ok": True, "data": {}, "attempts": 1}, "task-succeeded"),
])
def test_the_workers_request_sends_failed_for_a_marker(result: Any, expected: str) -> None:
    from celery.utils.imports import symbol_by_name

    task = FETCH_TASKS[System.WORKDAY]
    eventer = _Eventer()
    cls = create_request_cls(symbol_by_name(task.Request), task, Mock(), "w1@test", eventer, app=celery_app)
    message = TaskMessage(task.name, args=("a1", "people", ["a@example.com"]))
    on_ack = Mock()
    request = cls(message, on_ack=on_ack, app=celery_app, hostname="w1@test", eventer=eventer, task=task)
    active_requests.add(request)  # as the worker does before running it (task_ready removes it)
    request.on_success((0, _repr(result), 0.5))
    assert [e for e, _ in eventer.sent] == [expected]
    fields = eventer.sent[0][1]
    assert fields["uuid"] == request.id and fields["runtime"] == 0.5
    if expected == "task-failed":
        assert fields["exception"].split(" unavailable: ")[0] in ("Workday", "ActiveDirectory")
    on_ack.assert_called_once()  # acks_late: acknowledged like any finished task
