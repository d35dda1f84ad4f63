"""A worker SIGKILLed in the middle of a fleet audit and of a bulk audit: the audit completes with exactly one report,
equal to an undisturbed run's, with no discrepancy doubled or lost.

Two deaths, two recovery paths:

- **A pool child** (in ``make test``): the worker's main process sees the child die and, because every task runs
  with ``acks_late`` + ``reject_on_worker_lost``, requeues the message at once; the task runs again under the same
  task id. A snapshot task resumes from its checkpoint (the pages already stored are not requested again), and the
  chord counts each header task once (Celery's Redis backend keys a header result on its task id).
- **A whole worker** (main process and pool children, ``os.killpg``; drills): nobody acknowledges or requeues
  anything. The messages it held (running, prefetched, or waiting for a countdown) stay in the broker's unacked
  index; kombu would hand them out again only once they are older than the visibility timeout
  (``NEXUS_VISIBILITY_TIMEOUT_S``, 3600 s by default, left at its default here). Each worker's main process keeps a
  lease on every message it holds (workers/message_leases.py, ``NEXUS_PART_LEASE_S`` = 60 s, renewed every 20 s),
  so the surviving worker finds the dead one's leases expired within about a minute and puts those messages back on
  their queues: no replacement worker is started, and both audits must be done within 90 s of the kill.

Each disturbed run is compared with an undisturbed run of the same audit on the same cluster: the discrepancies as
(subject, field, systems, severity) *with their counts*, the per-system record counts, and for bulk audits every
entry, once per email, in order.

A kill can also land between a dispatcher's bookkeeping and its publish (a part marked dispatched, a fleet audit
marked started): too narrow a window to hit from outside, so fast unit tests stand in for it (fakeredis, the kill
raised as an exception at that point) and check that the redelivered task still publishes, once.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nexus.drift.fields import PERSON_FIELDS, POLICY
from nexus.fleet.store import LAST_GOOD, SnapshotStore
from nexus.testing.cluster import TEST_POLICY_ENV, Cluster
from nexus.testing.procs import alive
from nexus.testing.waiting import wait_until

PEOPLE = 1500
WAIT = 90.0
TAKEOVER_BOUND_S = 90.0  # a whole worker killed: the audit is done within this long of the kill (defaults)
RIG_ENV = {
    # budgets stay on but roomy: audits run back to back here
    "NEXUS_RATE_BUDGETS": "lansweeper=6000/60s,entra=1750/10s,intune=2000/20s,fedex=1400/10s",
    "NEXUS_FLEET_BULK_SNAPSHOT": "auto",  # per person unless the people systems' sizes are known (_bulk_path)
}
PEOPLE_STREAMS = ("workday", "ad", "entra")
BULK_EMAILS = 60
BULK_PARTS = -(-BULK_EMAILS // int(TEST_POLICY_ENV["NEXUS_BULK_CHUNK_SIZE"]))
FLEET_PARTS = 7  # one marker per system
# A page (or a lookup) of the slowed system takes this long: far longer than it takes to see the task executing
# and kill it, so the kill always lands while the task runs.
SLOW_MS = 1500

Key = tuple[str, str, frozenset[str], str]


# -- helpers ---------------------------------------------------------------------------------------------------------


def _active(c: Cluster, audit_id: str, name: str) -> dict[str, Any] | None:
    """The executing request of task ``name`` for ``audit_id`` whose pool child is known, from any worker. The
    inspection returns as soon as every worker answered (``limit``), so what it says is fresh."""
    from workers.app import celery_app

    replies = celery_app.control.inspect(timeout=1.0, limit=len(c.workers)).active() or {}
    for requests in replies.values():
        for req in requests:
            if req.get("name") == name and req.get("worker_pid") and audit_id in (req.get("args") or []):
                return dict(req)
    return None


def _key(d: dict[str, Any], subject: str = "") -> Key:
    return ((d.get("subject") or subject).lower(), d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}),
            d["severity"])


def fleet_keys(report: dict[str, Any]) -> Counter[Key]:
    return Counter(_key(d) for d in report["discrepancies"])


def bulk_keys(report: dict[str, Any]) -> Counter[Key]:
    return Counter(_key(d, e["email"]) for e in report["entries"] for d in e["discrepancies"])


def _records(report: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {name: (row.get("records"), row.get("tickets")) for name, row in report["systems"].items()}


def assert_same_fleet(report: dict[str, Any], baseline: dict[str, Any]) -> None:
    assert report["systems_failed"] == [], report["errors"]
    got, want = fleet_keys(report), fleet_keys(baseline)
    assert max(want.values()) == 1  # the reference itself lists each discrepancy once
    assert got == want, {"lost": sorted(want - got)[:5], "doubled or extra": sorted(got - want)[:5]}
    assert report["discrepancy_count"] == len(report["discrepancies"]) == baseline["discrepancy_count"]
    assert _records(report) == _records(baseline)
    assert (report["people"], report["devices"]) == (baseline["people"], baseline["devices"])


def assert_same_bulk(report: dict[str, Any], baseline: dict[str, Any], emails: list[str]) -> None:
    assert report["systems_failed"] == []
    assert [e["email"] for e in report["entries"]] == emails  # every email once, in order
    got, want = bulk_keys(report), bulk_keys(baseline)
    assert got == want, {"lost": sorted(want - got)[:5], "doubled or extra": sorted(got - want)[:5]}
    canonical = [json.dumps(e, sort_keys=True, default=str) for e in report["entries"]]
    assert canonical == [json.dumps(e, sort_keys=True, default=str) for e in baseline["entries"]]
    assert report["discrepancy_count"] == baseline["discrepancy_count"]
    assert report.get("path") == baseline.get("path")
    if "systems" in baseline:  # from snapshots: the people systems' record counts
        assert _records(report) == _records(baseline)


def assert_one_report(c: Cluster, audit_id: str, parts: int) -> None:
    """Exactly one report: one finisher claimed it, every part stored once, one "done" line in all the logs (the
    killed worker's included)."""
    r = c.redis()
    assert r.exists(f"nexus:audit:{audit_id}:final")
    assert r.hlen(f"nexus:audit:{audit_id}:parts") == parts
    done_line = rf"audit {audit_id} done:"
    wait_until(lambda: re.search(done_line, c.worker_logs()), 5.0, what="the finisher's log line")
    assert len(re.findall(done_line, c.worker_logs())) == 1


def assert_rerun(c: Cluster, killed: dict[str, Any]) -> None:
    """The killed task was delivered again, under its own id, and succeeded."""
    from celery.result import AsyncResult

    task_id = str(killed["id"])
    deliveries = len(re.findall(rf"\[{task_id}\] received", c.worker_logs()))
    assert deliveries >= 2, f"{killed['name']} [{task_id}] was never delivered again"
    from workers.app import celery_app

    assert AsyncResult(task_id, app=celery_app).state == "SUCCESS"  # the workers' app, whatever app is current


def _stream(c: Cluster, audit_id: str, stream: str) -> Any:
    return SnapshotStore(c.redis()).state(audit_id, stream)


class PagesStored:
    """``ready`` probe: true once the stream has stored a page; keeps the state it saw, which is the state at the
    kill (the kill follows within milliseconds, and a slowed page takes SLOW_MS)."""

    def __init__(self, c: Cluster, audit_id: str, stream: str) -> None:
        self.c, self.audit_id, self.stream = c, audit_id, stream
        self.state: Any = None

    def __call__(self) -> bool:
        self.state = _stream(self.c, self.audit_id, self.stream)
        return bool(self.state.page_count >= 1)


def _wait_done(c: Cluster, audit_id: str) -> dict[str, Any]:
    view: dict[str, Any] = c.nexus().wait(audit_id, timeout=WAIT)
    assert view["status"] == "done", (view, c.worker_logs()[-3000:])
    return view


# -- the rig ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def death_rig() -> Iterator[Cluster]:
    """A cluster of its own (workers get killed here): 1,500 people, two workers of two pool children each."""
    import kombu.pools

    with Cluster.start(people=PEOPLE, seed=13, workers=2, concurrency=2, extra_env=RIG_ENV) as c:
        yield c
    kombu.pools.reset()  # the pools of this cluster's broker URL are closed: never hand them out again


@pytest.fixture()
def dying(death_rig: Cluster) -> Iterator[Cluster]:
    """The cluster, reset before and after each test. (Not named ``rig``: conftest points every test that uses a
    fixture of that name at the session cluster.)"""
    death_rig.reset()
    yield death_rig
    death_rig.reset()


@pytest.fixture(scope="module")
def fleet_baseline(death_rig: Cluster) -> dict[str, Any]:
    """An undisturbed fleet audit: the reference report (it also teaches the guard the systems' sizes)."""
    death_rig.reset()
    nx = death_rig.nexus()
    report: dict[str, Any] = _wait_done(death_rig, nx.submit(nx.request_for(fleet=True)))["report"]
    assert report["systems_failed"] == [] and report["discrepancy_count"] > 0
    return report


@pytest.fixture(scope="module")
def bulk_baselines(death_rig: Cluster) -> dict[str, dict[str, Any]]:
    """Undisturbed bulk audits by path, run on first use."""
    return {}


def _bulk_emails(c: Cluster) -> list[str]:
    """60 people: every one with a planted people drift first (up to 50), then clean ones."""
    drifted = sorted({e["subject"] for e in c.truth["drift"] if e["field"] in PERSON_FIELDS})[:50]
    assert c.stack.org is not None
    clean = [w.email for w in c.stack.org.workday if w.email not in drifted][:BULK_EMAILS - len(drifted)]
    return drifted + clean


def _bulk_path(c: Cluster, path: str) -> None:
    """Steer ``auto``: per person while a people system's size is unknown, from snapshots once every one is known
    (a fleet audit teaches them)."""
    r = c.redis()
    known = all(r.exists(f"{LAST_GOOD}:{s}") for s in PEOPLE_STREAMS)
    if path == "person" and known:
        r.delete(*(f"{LAST_GOOD}:{s}" for s in PEOPLE_STREAMS))
    if path == "snapshot" and not known:
        nx = c.nexus()
        _wait_done(c, nx.submit(nx.request_for(fleet=True)))


def bulk_baseline(c: Cluster, cache: dict[str, dict[str, Any]], path: str) -> dict[str, Any]:
    if path not in cache:
        _bulk_path(c, path)
        nx = c.nexus()
        report = _wait_done(c, nx.submit(nx.request_for(emails=_bulk_emails(c))))["report"]
        assert report.get("path", "person") == path and report["systems_failed"] == []
        cache[path] = report
    return cache[path]


# -- the kill --------------------------------------------------------------------------------------------------------
def _find(c: Cluster, audit_id: str, name: str, ready: Callable[[], bool] | None) -> dict[str, Any]:
    """Wait for ``ready()`` (the audit is far enough along), then for ``name`` executing for the audit."""
    if ready is not None:
        wait_until(ready, 20.0, what="the audit to be under way")
    return wait_until(lambda: _active(c, audit_id, name), 20.0, what=f"{name} to be executing")


def kill_child_running(c: Cluster, audit_id: str, name: str,
                       ready: Callable[[], bool] | None = None) -> dict[str, Any]:
    """SIGKILL the pool child executing ``name`` for the audit, then clear the faults; returns the killed request."""
    active = _find(c, audit_id, name, ready)
    child = int(active["worker_pid"])
    c.kill_pool_child(child)  # refuses any pid that is not a pool child of this cluster's workers
    c.clear_faults()
    wait_until(lambda: not alive(child), 5.0, what="the killed child to be gone")
    logs = c.worker_logs
    wait_until(lambda: re.search(rf"pid:{child} exited with 'signal 9 \(SIGKILL\)'", logs()), 10.0,
               what="the worker to see its child die")
    return active


def kill_worker_running(c: Cluster, audit_id: str, name: str,
                        ready: Callable[[], bool] | None = None) -> tuple[dict[str, Any], float]:
    """SIGKILL the whole worker (main process and children) whose child executes ``name`` for the audit, then clear
    the faults; returns the killed request and the time of the kill."""
    active = _find(c, audit_id, name, ready)
    owner = c.owner_of(int(active["worker_pid"]))
    assert owner is not None, "only a worker of this cluster is ever killed"
    killed = c.kill_worker(owner)
    at = time.monotonic()
    c.clear_faults()
    assert not any(alive(pid) for pid in killed)
    return active, at


def wait_taken_over(c: Cluster, audit_id: str, killed_at: float) -> tuple[dict[str, Any], float]:
    """No replacement worker: the dead worker's messages come back when their leases expire, and the surviving
    worker finishes the audit. Returns the finished view and the seconds from the kill to done; the rig then gets a
    new worker for the next test."""
    time.sleep(max(0.0, killed_at + 3.0 - time.monotonic()))
    assert c.nexus().get(audit_id, include_report=False)["status"] == "running"
    view: dict[str, Any] = c.nexus().wait(audit_id, timeout=TAKEOVER_BOUND_S + 10.0)
    assert view["status"] == "done", (view, c.worker_logs()[-3000:])
    took = time.monotonic() - killed_at
    assert took <= TAKEOVER_BOUND_S, f"done {took:.1f}s after the kill"
    assert "its worker stopped renewing the lease" in c.worker_logs()
    c.spawn_worker(f"w{len(c.workers) + len(c.retired) + 1}", concurrency=2)
    c.wait_ready(len(c.workers), timeout=30.0)
    print(f"taken over: done {took:.1f}s after the kill")
    return view, took


# -- the visibility timeout -------------------------------------------------------------------------------------------
def _settings(**env: Any) -> Any:
    """Settings from these variables only (no .env file; the explicit values win over the process environment)."""
    from nexus.settings import Settings

    values: dict[str, Any] = {"_env_file": None, **env}
    return Settings(**values)


def test_the_visibility_timeout_is_a_setting_kept_above_the_longest_countdown() -> None:
    from pydantic import ValidationError

    from workers.config import celery_config

    policy = {"NEXUS_RETRY_BACKOFF_MAX_S": 2.0, "NEXUS_RETRY_AFTER_MAX_S": 5.0}
    config = celery_config(_settings(NEXUS_VISIBILITY_TIMEOUT_S=15, **policy))
    for options in ("broker_transport_options", "result_backend_transport_options"):
        assert config[options]["visibility_timeout"] == 15
    assert _settings(**policy).visibility_timeout_s == 3600
    for too_short in (5, 4):  # a message waiting 5 s for its countdown would be handed to a second worker
        with pytest.raises(ValidationError, match="NEXUS_VISIBILITY_TIMEOUT_S"):
            _settings(NEXUS_VISIBILITY_TIMEOUT_S=too_short, **policy)
    with pytest.raises(ValidationError, match="longest retry countdown"):
        _settings(NEXUS_VISIBILITY_TIMEOUT_S=60, NEXUS_RETRY_BACKOFF_MAX_S=60, NEXUS_RETRY_AFTER_MAX_S=120)


# -- a dispatcher killed between its bookkeeping and its publish -----------------------------------------------------
class _Killed(BaseException):
    """Stands for a SIGKILL at this point: the process stops, and what it already wrote to Redis stays."""


@pytest.fixture()
def fake_store() -> Iterator[Any]:
    import fakeredis

    from nexus import runtime
    from nexus.settings import get_settings

    rt = runtime.Runtime(get_settings(), redis_client=fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    previous = runtime.install(rt)
    try:
        yield rt.audit_store()
    finally:
        runtime.install(previous)


def test_a_part_whose_dispatcher_died_before_publishing_it_is_published_by_the_redelivery(
        fake_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare_people (or plan_audit) killed after marking part n dispatched but before publishing it would leave
    the part, and the audit, waiting forever: its redelivery must publish the part, and only once."""
    import tasks.signatures as audit_tasks
    from nexus.audits.spec import AuditRequest

    request = AuditRequest.bulk([f"p{i}@corp.example" for i in range(60)], 100)
    fake_store.create(request)
    published: list[int] = []

    def dies(*args: Any) -> Any:
        raise _Killed

    class Part:
        def __init__(self, audit_id: str, part: int, *rest: Any) -> None:
            self.part = part

        def apply_async(self) -> None:
            published.append(self.part)

    monkeypatch.setattr(audit_tasks, "people_part_signature", dies)
    with pytest.raises(_Killed):
        audit_tasks.dispatch_people_part(fake_store, request.audit_id, 1, 25)
    monkeypatch.setattr(audit_tasks, "people_part_signature", Part)
    assert audit_tasks.dispatch_people_part(fake_store, request.audit_id, 1, 25)  # the redelivered task
    assert not audit_tasks.dispatch_people_part(fake_store, request.audit_id, 1, 25)  # a later redelivery
    assert published == [1]


@pytest.mark.parametrize("kind", ["fleet", "bulk"])
def test_an_audit_whose_starter_died_before_publishing_its_snapshots_is_started_by_the_redelivery(
        fake_store: Any, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    import tasks.signatures as fleet_tasks
    from nexus.audits.spec import AuditRequest
    from nexus.fleet.conclude import audit_systems

    request = AuditRequest.fleet() if kind == "fleet" else AuditRequest.bulk(["a@corp.example"], 100)
    fake_store.create(request)
    published: list[int] = []
    killed = {"now": True}

    class Chord:
        def __init__(self, header: Any, body: Any) -> None:
            pass

        def apply_async(self) -> None:
            if killed["now"]:
                raise _Killed
            published.append(1)

    monkeypatch.setattr(fleet_tasks, "chord", Chord)
    with pytest.raises(_Killed):
        fleet_tasks.start_fleet(fake_store, request.audit_id)
    killed["now"] = False
    assert "snapshots" in fleet_tasks.start_fleet(fake_store, request.audit_id)  # the redelivered plan_audit
    assert fleet_tasks.start_fleet(fake_store, request.audit_id)["duplicate"] is True
    assert published == [1]
    assert fake_store.progress(request.audit_id)["total"] == len(audit_systems(kind))


# -- a pool child ----------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_pool_child_killed_mid_fleet_snapshot(dying: Cluster, fleet_baseline: dict[str, Any]) -> None:
    started = time.monotonic()
    dying.fault("lansweeper", "slow", delay_ms=SLOW_MS)  # 4 pages one after the other: killed mid-paging
    nx = dying.nexus()
    audit_id = nx.submit(nx.request_for(fleet=True))
    killed = kill_child_running(dying, audit_id, "nexus.snapshot_lansweeper",
                                ready=(stored := PagesStored(dying, audit_id, "lansweeper")))
    at_kill = stored.state

    report = _wait_done(dying, audit_id)["report"]
    assert_same_fleet(report, fleet_baseline)
    assert_rerun(dying, killed)
    assert_one_report(dying, audit_id, FLEET_PARTS)
    # killed mid-paging; the re-run resumed from the checkpoint: only the page in flight was requested again
    row = report["systems"]["Lansweeper"]
    assert at_kill.status == "running" and 1 <= at_kill.page_count < row["pages"]
    sent = dying.requests()["lansweeper"]["total"]
    assert row["pages"] <= sent <= row["pages"] + 1, (sent, row)
    dying.wait_ready(len(dying.workers), timeout=20.0)
    print(f"pool child killed mid-fleet: {time.monotonic() - started:.1f}s; lansweeper: {at_kill.page_count} of "
          f"{row['pages']} pages stored at the kill, {sent} requests")


@pytest.mark.integration
@pytest.mark.parametrize("path", ["person", "snapshot"])
def test_pool_child_killed_mid_bulk(dying: Cluster, bulk_baselines: dict[str, dict[str, Any]], path: str) -> None:
    emails = _bulk_emails(dying)
    baseline = bulk_baseline(dying, bulk_baselines, path)
    _bulk_path(dying, path)
    started = time.monotonic()
    nx = dying.nexus()
    if path == "person":
        dying.fault("entra", "slow", delay_ms=SLOW_MS)  # each part's Entra lookup
        audit_id = nx.submit(nx.request_for(emails=emails))
        killed = kill_child_running(dying, audit_id, "nexus.fetch_entra")
    else:
        dying.fault("entra", "slow", delay_ms=SLOW_MS)  # Entra's 2 pages of 999, one after the other
        audit_id = nx.submit(nx.request_for(emails=emails))
        stored = PagesStored(dying, audit_id, "entra")
        killed = kill_child_running(dying, audit_id, "nexus.snapshot_entra", ready=stored)

    report = _wait_done(dying, audit_id)["report"]
    assert report.get("path", "person") == path
    if path == "snapshot":  # killed mid-paging
        assert stored.state.status == "running"
        assert 1 <= stored.state.page_count < report["systems"]["Entra"]["pages"]
    assert_same_bulk(report, baseline, emails)
    assert_rerun(dying, killed)
    assert_one_report(dying, audit_id, BULK_PARTS if path == "person" else len(PEOPLE_STREAMS))
    dying.wait_ready(len(dying.workers), timeout=20.0)
    print(f"pool child killed mid-bulk ({path}): {time.monotonic() - started:.1f}s")


# -- a whole worker --------------------------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.drill
def test_whole_worker_killed_mid_fleet(dying: Cluster, fleet_baseline: dict[str, Any]) -> None:
    started = time.monotonic()
    dying.fault("lansweeper", "slow", delay_ms=SLOW_MS)
    nx = dying.nexus()
    audit_id = nx.submit(nx.request_for(fleet=True))
    killed, killed_at = kill_worker_running(dying, audit_id, "nexus.snapshot_lansweeper",
                                            ready=PagesStored(dying, audit_id, "lansweeper"))
    view, recovered = wait_taken_over(dying, audit_id, killed_at)
    report = view["report"]
    assert_same_fleet(report, fleet_baseline)
    assert_rerun(dying, killed)
    assert_one_report(dying, audit_id, FLEET_PARTS)
    print(f"whole worker killed mid-fleet: {time.monotonic() - started:.1f}s, done {recovered:.1f}s after the kill")


@pytest.mark.integration
@pytest.mark.drill
def test_whole_worker_killed_mid_bulk(dying: Cluster, bulk_baselines: dict[str, dict[str, Any]]) -> None:
    emails = _bulk_emails(dying)
    baseline = bulk_baseline(dying, bulk_baselines, "person")
    _bulk_path(dying, "person")
    started = time.monotonic()
    dying.fault("entra", "slow", delay_ms=SLOW_MS)
    nx = dying.nexus()
    audit_id = nx.submit(nx.request_for(emails=emails))
    killed, killed_at = kill_worker_running(dying, audit_id, "nexus.fetch_entra")
    view, recovered = wait_taken_over(dying, audit_id, killed_at)
    report = view["report"]
    assert "path" not in report  # person by person
    assert_same_bulk(report, baseline, emails)
    assert_rerun(dying, killed)
    assert_one_report(dying, audit_id, BULK_PARTS)
    print(f"whole worker killed mid-bulk: {time.monotonic() - started:.1f}s, done {recovered:.1f}s after the kill")
