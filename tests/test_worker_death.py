"""A worker SIGKILLed in the middle of a fleet audit and of a bulk audit: the audit completes with exactly one report,
equal to an undisturbed run's, with no discrepancy doubled or lost.

Two deaths, two recovery paths:

- **A pool child** (in ``make test``): the worker's main process sees the child die and, because every task runs
  with ``acks_late`` + ``reject_on_worker_lost``, requeues the message at once; the task runs again under the same
  task id. A snapshot task resumes from its checkpoint (pages already stored are not fetched again), a fetch task
  from its memo, and the chord counts each header task once (Celery's Redis backend keys a header result on its
  task id).
- **A whole worker** (main process and children, ``os.killpg``; drills): nobody acknowledges or requeues anything.
  The messages it held (running, prefetched, waiting for a countdown) stay in the broker's unacked index and are
  handed out again only once they are older than the visibility timeout (``NEXUS_VISIBILITY_TIMEOUT_S``, 15 s in
  this rig). kombu's Redis transport restores them in ``QoS.restore_visible``, which a consuming worker calls when
  its consumer registers with the event loop (``on_poll_init``: the first call always scans) and then every
  ``unacked_restore_interval`` seconds, scanning only on every ``unacked_restore_throttle``-th call (10 and 10 by
  default: a live worker sweeps about every 100 s). So the drill starts a replacement worker once the timeout has
  passed, as an operator or an orchestrator would: its start-up sweep restores the dead worker's messages at once.

Each disturbed run is compared with an undisturbed run of the same audit on the same cluster: the discrepancies as
(subject, field, systems, severity) *with their counts*, the per-system record counts, and for bulk audits every
entry, once per email, in order.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from nexus.drift.fields import PERSON_FIELDS, POLICY
from nexus.fleet.store import LAST_GOOD, SnapshotStore
from tests._cluster import Cluster, WorkerProcess, alive

pytestmark = pytest.mark.integration

PEOPLE = 1500
SEED = 13
VISIBILITY_S = 15
WAIT = 90.0
RIG_ENV = {
    "NEXUS_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),  # above the rig's longest countdown (5 s)
    # budgets stay on but roomy: audits run back to back here
    "NEXUS_RATE_BUDGETS": "lansweeper=6000/60s,entra=1750/10s,intune=2000/20s,fedex=1400/10s",
    "NEXUS_FLEET_BULK_SNAPSHOT": "auto",  # per person unless the people systems' sizes are known (see _bulk_path)
}
PEOPLE_STREAMS = ("workday", "ad", "entra")
BULK_EMAILS = 60

T = TypeVar("T")
Key = tuple[str, str, frozenset[str], str]


# -- helpers ---------------------------------------------------------------------------------------------------------
def _until(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def _active(audit_id: str, *names: str) -> dict[str, Any] | None:
    """An executing request of one of ``names`` for ``audit_id`` whose pool child is known, from any worker."""
    from workers.app import celery_app

    replies = celery_app.control.inspect(timeout=0.5).active() or {}
    for requests in replies.values():
        for req in requests:
            if req.get("name") in names and req.get("worker_pid") and audit_id in (req.get("args") or []):
                return dict(req)
    return None


def _key(d: dict[str, Any], subject: str | None = None) -> Key:
    return ((d.get("subject") or subject or "").lower(), d["field"],
            frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"])


def fleet_keys(report: dict[str, Any]) -> Counter[Key]:
    return Counter(_key(d) for d in report["discrepancies"])


def fleet_records(report: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {name: (row.get("records"), row.get("tickets")) for name, row in report["systems"].items()}


def bulk_keys(report: dict[str, Any]) -> Counter[Key]:
    return Counter(_key(d, e["email"]) for e in report["entries"] for d in e["discrepancies"])


def bulk_entries(report: dict[str, Any]) -> list[str]:
    """Each entry, canonical JSON (an entry carries nothing that changes from one run to the next)."""
    return [json.dumps(e, sort_keys=True, default=str) for e in report["entries"]]


def _one_report(c: Cluster, audit_id: str, parts: int) -> None:
    """Exactly one report: one finisher claimed it, every part stored once, one "done" line in all the logs."""
    r = c.redis()
    assert r.exists(f"nexus:audit:{audit_id}:final")
    assert r.hlen(f"nexus:audit:{audit_id}:parts") == parts
    done_line = rf"audit {audit_id} done:"
    _until(lambda: re.search(done_line, c.worker_logs()), 5.0, "the finisher's log line")
    assert len(re.findall(done_line, c.worker_logs())) == 1


def _stream_pages(c: Cluster, audit_id: str, stream: str) -> int:
    return SnapshotStore(c.redis()).state(audit_id, stream).page_count


# -- the rig ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def death_rig() -> Iterator[Cluster]:
    """A cluster of its own (workers get killed here), 1,500 people, two workers of two pool children each."""
    import kombu.pools

    with Cluster.start(people=PEOPLE, seed=SEED, workers=2, concurrency=2, extra_env=RIG_ENV) as c:
        yield c
    kombu.pools.reset()  # the pools of this cluster's broker URL are closed: never hand them out again


@pytest.fixture()
def rig(death_rig: Cluster) -> Iterator[Cluster]:
    death_rig.reset()
    yield death_rig
    death_rig.reset()


@pytest.fixture(scope="module")
def fleet_baseline(death_rig: Cluster) -> dict[str, Any]:
    """An undisturbed fleet audit: the reference report (it also teaches the guard the systems' sizes)."""
    death_rig.reset()
    nx = death_rig.nexus()
    view = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=WAIT)
    assert view["status"] == "done", view
    report: dict[str, Any] = view["report"]
    assert report["systems_failed"] == [] and report["discrepancy_count"] > 0
    return report


def _bulk_emails(c: Cluster) -> list[str]:
    """60 people: every one with a planted people drift first (up to 50), then clean ones."""
    drifted = sorted({e["subject"] for e in c.truth["drift"] if e["field"] in PERSON_FIELDS})[:50]
    assert c.stack.org is not None
    clean = [w.email for w in c.stack.org.workday if w.email not in drifted][:BULK_EMAILS - len(drifted)]
    return drifted + clean


def _bulk_path(c: Cluster, path: str, fleet_baseline: dict[str, Any]) -> None:
    """Steer ``auto``: per person while a people system's size is unknown, from snapshots once all are known (the
    fleet baseline taught them)."""
    r = c.redis()
    if path == "person":
        r.delete(*(f"{LAST_GOOD}:{s}" for s in PEOPLE_STREAMS))
    else:
        assert fleet_baseline and all(r.exists(f"{LAST_GOOD}:{s}") for s in PEOPLE_STREAMS)


def _run_bulk(c: Cluster, emails: list[str]) -> dict[str, Any]:
    nx = c.nexus()
    view = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=WAIT)
    assert view["status"] == "done", view
    return dict(view)


_bulk_baselines: dict[str, dict[str, Any]] = {}


def bulk_baseline(c: Cluster, path: str, fleet_baseline: dict[str, Any]) -> dict[str, Any]:
    if path not in _bulk_baselines:
        _bulk_path(c, path, fleet_baseline)
        report = _run_bulk(c, _bulk_emails(c))["report"]
        assert report.get("path", "person") == path and report["systems_failed"] == []
        _bulk_baselines[path] = report
    return _bulk_baselines[path]


def assert_same_fleet(report: dict[str, Any], baseline: dict[str, Any]) -> None:
    assert report["systems_failed"] == [], report["errors"]
    got, want = fleet_keys(report), fleet_keys(baseline)
    assert max(got.values()) == 1, [k for k, n in got.items() if n > 1][:5]  # nothing doubled
    assert got == want, {"lost": sorted(want - got)[:5], "extra": sorted(got - want)[:5]}
    assert report["discrepancy_count"] == len(report["discrepancies"]) == baseline["discrepancy_count"]
    assert fleet_records(report) == fleet_records(baseline)
    assert (report["people"], report["devices"]) == (baseline["people"], baseline["devices"])


def assert_same_bulk(report: dict[str, Any], baseline: dict[str, Any], emails: list[str]) -> None:
    assert report["systems_failed"] == []
    assert [e["email"] for e in report["entries"]] == emails  # every email once, in order
    got, want = bulk_keys(report), bulk_keys(baseline)
    assert got == want, {"lost": sorted(want - got)[:5], "extra": sorted(got - want)[:5]}
    assert bulk_entries(report) == bulk_entries(baseline)
    assert report["discrepancy_count"] == baseline["discrepancy_count"]


# -- a pool child --------------------------------------------------------------------------------------------------
def _kill_child_mid(c: Cluster, audit_id: str, names: tuple[str, ...], ready: Callable[[], bool] = lambda: True,
                    ) -> tuple[dict[str, Any], WorkerProcess]:
    """SIGKILL the pool child executing one of ``names`` for the audit (once ``ready()``), then clear the faults."""
    _until(ready, 20.0, "the audit to be under way")
    active = _until(lambda: _active(audit_id, *names), 20.0, f"one of {names} to be executing")
    child = int(active["worker_pid"])
    owner = c.kill_pool_child(child)  # refuses any pid that is not a pool child of this cluster's workers
    c.clear_faults()
    _until(lambda: not alive(child), 5.0, "the killed child to be gone")
    return active, owner


def _rerun_once(c: Cluster, active: dict[str, Any]) -> None:
    """The killed task was re-run under its id and succeeded; the worker saw its child die."""
    from celery.result import AsyncResult

    task_id, child = str(active["id"]), int(active["worker_pid"])
    logs = c.worker_logs()
    assert re.search(rf"pid:{child} exited with 'signal 9 \(SIGKILL\)'", logs), "the worker saw its child die"
    assert len(re.findall(rf"\[{task_id}\] received", logs)) >= 2, "the killed task was delivered again"
    result = AsyncResult(task_id)
    assert result.state == "SUCCESS", result.state


def test_pool_child_killed_mid_fleet_snapshot(rig: Cluster, fleet_baseline: dict[str, Any]) -> None:
    started = time.monotonic()
    rig.fault("lansweeper", "slow", delay_ms=800)  # about 0.8 s a page: the snapshot task is killed mid-paging
    nx = rig.nexus()
    audit_id = nx.submit(nx.request_for(fleet=True))
    active, _ = _kill_child_mid(rig, audit_id, ("nexus.snapshot_lansweeper",),
                                ready=lambda: _stream_pages(rig, audit_id, "lansweeper") >= 1)
    pages_before_kill = _stream_pages(rig, audit_id, "lansweeper")

    view = nx.wait(audit_id, timeout=WAIT)
    assert view["status"] == "done", (view, rig.worker_logs()[-3000:])
    report = view["report"]
    assert_same_fleet(report, fleet_baseline)
    _rerun_once(rig, active)
    _one_report(rig, audit_id, parts=7)
    # the re-run resumed from its checkpoint: the pages stored before the kill were not requested again (the one
    # page in flight when the child died was)
    row = report["systems"]["Lansweeper"]
    sent = rig.requests()["lansweeper"]["total"]
    assert row["pages"] <= sent <= row["pages"] + 1, (sent, row, pages_before_kill)
    assert pages_before_kill >= 1
    rig.wait_ready(len(rig.workers), timeout=20.0)
    print(f"pool child mid-fleet: {time.monotonic() - started:.1f}s, lansweeper pages={row['pages']} sent={sent}")


@pytest.mark.parametrize("path", ["person", "snapshot"])
def test_pool_child_killed_mid_bulk(rig: Cluster, fleet_baseline: dict[str, Any], path: str) -> None:
    emails = _bulk_emails(rig)
    baseline = bulk_baseline(rig, path, fleet_baseline)
    _bulk_path(rig, path, fleet_baseline)
    started = time.monotonic()
    nx = rig.nexus()
    if path == "person":
        rig.fault("entra", "slow", delay_ms=800)  # each part's Entra lookups take 0.8 s
        audit_id = nx.submit(nx.request_for(emails=emails))
        active, _ = _kill_child_mid(rig, audit_id, ("nexus.fetch_entra",))
    else:
        rig.fault("workday", "slow", delay_ms=400)  # 15 pages of 100 workers
        audit_id = nx.submit(nx.request_for(emails=emails))
        active, _ = _kill_child_mid(rig, audit_id, ("nexus.snapshot_workday",),
                                    ready=lambda: _stream_pages(rig, audit_id, "workday") >= 1)

    view = nx.wait(audit_id, timeout=WAIT)
    assert view["status"] == "done", (view, rig.worker_logs()[-3000:])
    report = view["report"]
    assert report.get("path", "person") == path
    assert_same_bulk(report, baseline, emails)
    _rerun_once(rig, active)
    _one_report(rig, audit_id, parts=-(-BULK_EMAILS // 5) if path == "person" else 3)
    rig.wait_ready(len(rig.workers), timeout=20.0)
    print(f"pool child mid-bulk ({path}): {time.monotonic() - started:.1f}s")


# -- a whole worker ------------------------------------------------------------------------------------------------
def _kill_worker_mid(c: Cluster, audit_id: str, names: tuple[str, ...], ready: Callable[[], bool]) -> tuple[
        dict[str, Any], float]:
    """SIGKILL the whole worker whose child executes one of ``names`` for the audit; returns the request and when."""
    _until(ready, 20.0, "the audit to be under way")
    active = _until(lambda: _active(audit_id, *names), 20.0, f"one of {names} to be executing")
    owner = c.owner_of(int(active["worker_pid"]))
    assert owner is not None, "only a worker of this cluster is ever killed"
    killed = c.kill_worker(owner)
    at = time.monotonic()
    c.clear_faults()
    assert not any(alive(pid) for pid in killed)
    return active, at


def _replace_after_visibility(c: Cluster, audit_id: str, killed_at: float) -> WorkerProcess:
    """Nothing can hand out the dead worker's messages before they are VISIBILITY_S old: check the audit waits,
    then start a replacement worker, whose start-up sweep restores them."""
    nx = c.nexus()
    time.sleep(max(0.0, killed_at + 3.0 - time.monotonic()))
    assert nx.get(audit_id, include_report=False)["status"] == "running"
    time.sleep(max(0.0, killed_at + VISIBILITY_S + 0.5 - time.monotonic()))
    replacement = c.spawn_worker(f"w{len(c.workers) + len(c.retired) + 1}", concurrency=2)
    c.wait_ready(len(c.workers), timeout=30.0)
    return replacement


@pytest.mark.drill
def test_whole_worker_killed_mid_fleet(rig: Cluster, fleet_baseline: dict[str, Any]) -> None:
    started = time.monotonic()
    rig.fault("lansweeper", "slow", delay_ms=800)
    nx = rig.nexus()
    audit_id = nx.submit(nx.request_for(fleet=True))
    active, killed_at = _kill_worker_mid(rig, audit_id, ("nexus.snapshot_lansweeper",),
                                         ready=lambda: _stream_pages(rig, audit_id, "lansweeper") >= 1)
    _replace_after_visibility(rig, audit_id, killed_at)

    view = nx.wait(audit_id, timeout=WAIT)
    assert view["status"] == "done", (view, rig.worker_logs()[-3000:])
    recovered = time.monotonic() - killed_at
    assert_same_fleet(view["report"], fleet_baseline)
    _rerun_once_after_worker_death(rig, active)
    _one_report(rig, audit_id, parts=7)
    print(f"whole worker mid-fleet: {time.monotonic() - started:.1f}s (done {recovered:.1f}s after the kill)")


@pytest.mark.drill
def test_whole_worker_killed_mid_bulk(rig: Cluster, fleet_baseline: dict[str, Any]) -> None:
    emails = _bulk_emails(rig)
    baseline = bulk_baseline(rig, "person", fleet_baseline)
    _bulk_path(rig, "person", fleet_baseline)
    started = time.monotonic()
    rig.fault("entra", "slow", delay_ms=800)
    nx = rig.nexus()
    audit_id = nx.submit(nx.request_for(emails=emails))
    active, killed_at = _kill_worker_mid(rig, audit_id, ("nexus.fetch_entra",), ready=lambda: True)
    _replace_after_visibility(rig, audit_id, killed_at)

    view = nx.wait(audit_id, timeout=WAIT)
    assert view["status"] == "done", (view, rig.worker_logs()[-3000:])
    recovered = time.monotonic() - killed_at
    report = view["report"]
    assert "path" not in report
    assert_same_bulk(report, baseline, emails)
    _rerun_once_after_worker_death(rig, active)
    _one_report(rig, audit_id, parts=-(-BULK_EMAILS // 5))
    print(f"whole worker mid-bulk: {time.monotonic() - started:.1f}s (done {recovered:.1f}s after the kill)")


def _rerun_once_after_worker_death(c: Cluster, active: dict[str, Any]) -> None:
    from celery.result import AsyncResult

    task_id = str(active["id"])
    assert len(re.findall(rf"\[{task_id}\] received", c.worker_logs())) >= 2, "the killed task was restored"
    assert AsyncResult(task_id).state == "SUCCESS"

