"""A pool child SIGKILLed mid-fetch: the audit still completes, with one report.

The fetch tasks run with ``acks_late`` and ``reject_on_worker_lost``: when the child executing a fetch dies, the
worker rejects the message with requeue, the fetch runs again (same task id) and the chord completes with exactly
one result per header task. Without those two settings the task would be marked failed with WorkerLostError and
the chord body would never run.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import pytest

from nexus.testing.cluster import Cluster
from nexus.testing.procs import alive, parent_pid
from nexus.testing.waiting import wait_until

pytestmark = pytest.mark.integration

WAIT = 90.0


def _active_fetch(task_name: str) -> dict[str, Any] | None:
    """The active request of ``task_name`` whose pool child is known (``worker_pid`` set), from any worker."""
    from workers.app import celery_app

    replies = celery_app.control.inspect(timeout=0.5).active() or {}
    for requests in replies.values():
        for req in requests:
            if req.get("name") == task_name and req.get("worker_pid"):
                return dict(req)
    return None


def _discrepancy_keys(report: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    return sorted((d["field"], d["severity"], d["system_a"], str(d["value_a"]), d["system_b"], str(d["value_b"]))
                  for d in report["discrepancies"])


def test_pool_child_sigkilled_mid_fetch_audit_completes_with_one_report(rig: Cluster) -> None:
    from celery.result import AsyncResult

    nx = rig.nexus()
    subject = next(e["subject"] for e in rig.truth["drift"] if e["field"] == "job_title" and "Entra" in e["systems"])

    # An undisturbed run of the same audit: the reference result.
    baseline = nx.wait(nx.submit(nx.request_for(email=subject)), timeout=WAIT)
    assert baseline["status"] == "done", baseline
    assert baseline["report"]["systems_failed"] == []
    expected = _discrepancy_keys(baseline["report"])
    assert expected, "the subject was chosen for a planted job_title drift"

    # Entra answers after 3 s: long enough to find the pool child running fetch_entra and kill it mid-request.
    rig.fault("entra", "slow", delay_ms=3000)
    audit_id = nx.submit(nx.request_for(email=subject))
    active = wait_until(lambda: _active_fetch("nexus.fetch_entra"), 10.0, what="fetch_entra to be executing")
    task_id, child = str(active["id"]), int(active["worker_pid"])
    assert active["args"][0] == audit_id
    worker_pids = {w.proc.pid for w in rig.workers}
    assert parent_pid(child) in worker_pids, "only a pool child of our own workers is ever killed"
    os.kill(child, signal.SIGKILL)
    rig.clear_faults()
    wait_until(lambda: not alive(child), 5.0, what="the killed child to be gone")

    view = nx.wait(audit_id, timeout=WAIT)
    assert view["status"] == "done", view
    report = view["report"]
    assert report["systems_failed"] == [], report["errors"]
    assert report["entra_found"] is True
    assert _discrepancy_keys(report) == expected

    # The fetch was re-run under the same task id and finished once, successfully (not WorkerLostError).
    from workers.app import celery_app

    result = AsyncResult(task_id, app=celery_app)  # the workers' app, whatever app is current
    assert result.state == "SUCCESS", result.state
    assert result.result["ok"] is True
    logs = rig.worker_logs()
    assert re.search(rf"pid:{child} exited with 'signal 9 \(SIGKILL\)'", logs), "the worker saw its child die"
    deliveries = len(re.findall(rf"Task nexus\.fetch_entra\[{task_id}\] received", logs))
    # One delivery per attempt (countdown retries reuse the task id), plus exactly one for the requeue after the kill.
    print(f"fetch_entra {task_id}: deliveries={deliveries} attempts={result.result['attempts']}")
    assert deliveries == result.result["attempts"] + 1, (deliveries, result.result)

    # Exactly one report: one finisher claimed it, one part stored, one "done" line in the logs.
    r = rig.redis()
    assert r.exists(f"nexus:audit:{audit_id}:final")
    assert r.hlen(f"nexus:audit:{audit_id}:parts") == 1
    done_line = rf"audit {audit_id} done:"
    wait_until(lambda: re.search(done_line, rig.worker_logs()), 5.0, what="the finisher's log line")
    assert len(re.findall(done_line, rig.worker_logs())) == 1
    assert nx.list(50)[0]["audit_id"] == audit_id

    # The worker replaced its child: the cluster is whole again for the tests that follow.
    rig.wait_ready(len(rig.workers), timeout=20.0)
