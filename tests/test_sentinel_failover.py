"""Redis high availability: the primary SIGKILLed in the middle of audits, Sentinel promotes the replica, and Nexus
follows without restarting anything.

The rig (nexus.testing.sentinel_rig): a primary, one replica and three sentinels on loopback (quorum 2, down after
1 s), both data nodes and the sentinels behind passwords; the Nexus cluster (simulators, two Celery worker processes)
is given only ``REDIS_SENTINELS`` and a ``REDIS_URL`` where nothing listens, so any Redis use that bypassed the
sentinels would fail at once.

A fleet audit and a bulk audit are in flight (Lansweeper and Entra answer slowly) when the primary dies. Each must
end honestly: done with a report equal to an undisturbed run's, exactly once (one finisher, every part stored once,
one "done" line, a redelivery of what the dead primary held changes nothing), or failed/lost with its reason; never
running for good. Replication is asynchronous, so what the primary acknowledged in its last instant may be missing
on the replica: an audit whose record went with it is reported lost (``AuditLost``), like after an empty restart.
Then new audits complete through the new master, with the very same worker processes.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nexus.errors import AuditLost, ServiceUnavailable, WaitTimeout
from nexus.testing.cluster import Cluster
from nexus.testing.sentinel_rig import SentinelRig, sentinel_rig
from nexus.testing.waiting import wait_until

pytestmark = pytest.mark.integration

MASTER_PASSWORD = "drill-master-pw-7f3a"
SENTINEL_PASSWORD = "drill-sentinel-pw-91c2"
VISIBILITY_S = 15
WAIT = 90.0
SLOW_MS = 1500
BULK_EMAILS = 20
RIG_ENV = {
    "NEXUS_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),  # what the dead primary held unacknowledged comes back soon
    "NEXUS_FLEET_BULK_SNAPSHOT": "never",  # bulk audits ask per person: the same path for baseline and drill
}


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelRig]:
    with sentinel_rig(password=MASTER_PASSWORD, sentinel_password=SENTINEL_PASSWORD) as rig:
        yield rig


@pytest.fixture(scope="module")
def ha_cluster(sentinels: SentinelRig) -> Iterator[Cluster]:
    import kombu.pools

    env = {**sentinels.env(), **RIG_ENV}
    with Cluster.start(people=200, seed=23, workers=2, concurrency=2, redis_url=env["REDIS_URL"],
                       extra_env=env) as c:
        yield c
    kombu.pools.reset()  # this cluster's broker pools point at sentinels that are gone


def _keys(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    if "entries" in report:
        found = [(e["email"], d["field"], d["system_a"], d["system_b"], d["severity"])
                 for e in report["entries"] for d in e["discrepancies"]]
    else:
        found = [(d.get("subject", ""), d["field"], d["system_a"], d["system_b"], d["severity"])
                 for d in report["discrepancies"]]
    return sorted(found)


def assert_same_report(report: dict[str, Any], baseline: dict[str, Any]) -> None:
    assert report["systems_failed"] == [], report.get("errors")
    assert _keys(report) == _keys(baseline)  # nothing lost, nothing doubled
    assert report["discrepancy_count"] == baseline["discrepancy_count"]
    if "entries" in baseline:
        assert [e["email"] for e in report["entries"]] == [e["email"] for e in baseline["entries"]]


def assert_reported_once(c: Cluster, audit_id: str) -> None:
    r = c.redis()
    try:
        assert r.exists(f"nexus:audit:{audit_id}:final")
        assert r.hget(f"nexus:audit:{audit_id}", "status") == b"done"
    finally:
        r.close()
    done_line = rf"audit {audit_id} done:"
    wait_until(lambda: re.search(done_line, c.worker_logs()), 5.0, what="the finisher's log line")
    assert len(re.findall(done_line, c.worker_logs())) == 1


def outcome(c: Cluster, audit_id: str) -> tuple[str, dict[str, Any] | None, str]:
    """("done"|"failed", view, "") or ("lost", None, reason); ``nexus.wait`` rides out the failover (it retries
    reads while Redis is unreachable), so a hang would be a WaitTimeout here and fail the drill."""
    try:
        view: dict[str, Any] = c.nexus().wait(audit_id, timeout=WAIT, submitted=True)
    except AuditLost as exc:
        return "lost", None, str(exc)
    except WaitTimeout:
        view = c.nexus().get(audit_id, include_report=False)
        pytest.fail(f"audit {audit_id} hung after the failover: {view}\n{c.worker_logs()[-4000:]}")
    return str(view["status"]), view, str(view.get("error") or "")


def restore_what_the_dead_primary_held() -> int:
    """What a worker's periodic sweep does (every ~100 s): hand out again the messages the broker still lists as
    unacknowledged and older than the visibility timeout (tasks whose acknowledgement went down with the primary)."""
    from workers.app import celery_app

    with celery_app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        client = channel.client
        before = int(client.zcard(channel.unacked_index_key))
        channel.qos.restore_visible(num=1000)
        return before - int(client.zcard(channel.unacked_index_key))


def test_primary_killed_mid_audit_fails_over_and_nexus_follows(sentinels: SentinelRig, ha_cluster: Cluster) -> None:
    c = ha_cluster
    c.reset()
    nx = c.nexus()
    assert c.stack.org is not None
    people = [w.email for w in c.stack.org.workday]
    emails = people[:BULK_EMAILS]
    worker_pids = sorted(w.proc.pid for w in c.workers)
    redis_pids = sorted(n.proc.pid for n in (*sentinels.nodes, *sentinels.sentinels))

    # Undisturbed runs: the reference reports.
    fleet_baseline = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=WAIT)
    bulk_baseline = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=WAIT)
    assert fleet_baseline["status"] == bulk_baseline["status"] == "done", (fleet_baseline, bulk_baseline)
    assert fleet_baseline["report"]["discrepancy_count"] > 0

    # Both in flight: Lansweeper's pages and Entra's lookups answer after 1.5 s.
    c.fault("lansweeper", "slow", delay_ms=SLOW_MS)
    c.fault("entra", "slow", delay_ms=SLOW_MS)
    fleet_id = nx.submit(nx.request_for(fleet=True))
    bulk_id = nx.submit(nx.request_for(emails=emails))

    def running(audit_id: str, system: str) -> bool:
        return bool(nx.get(audit_id, include_report=False)["progress"]["systems"].get(system, {}).get("status")
                    == "running")

    wait_until(lambda: running(fleet_id, "lansweeper") and running(bulk_id, "entra"), 20.0,
               what="both audits to be fetching")
    old = sentinels.kill_master()
    killed_at = time.monotonic()
    c.clear_faults()  # through the simulators, not Redis
    new, failover_s = sentinels.wait_failover(old)
    assert new is not old and new.role == "replica"  # the replica was promoted

    # Each in-flight audit ends, honestly: done and equal to the undisturbed run, or failed/lost with a reason.
    results = {}
    for audit_id, baseline in ((fleet_id, fleet_baseline), (bulk_id, bulk_baseline)):
        status, view, reason = outcome(c, audit_id)
        results[audit_id] = status
        if status == "done":
            assert view is not None
            assert_same_report(view["report"], baseline["report"])
            assert_reported_once(c, audit_id)
        else:
            assert status in ("failed", "lost") and reason, (status, view)
            print(f"audit {audit_id} {status}: {reason}")
    settled_s = time.monotonic() - killed_at

    # New audits complete through the new master; nothing was restarted.
    started = time.monotonic()
    fresh = nx.wait(nx.submit(nx.request_for(email=people[BULK_EMAILS])), timeout=WAIT)
    first_new_s = time.monotonic() - started
    assert fresh["status"] == "done" and fresh["report"]["systems_failed"] == [], fresh
    again = nx.wait(nx.submit(nx.request_for(fleet=True)), timeout=WAIT)
    assert again["status"] == "done", again
    assert_same_report(again["report"], fleet_baseline["report"])
    assert_reported_once(c, again["audit_id"])
    assert sorted(w.proc.pid for w in c.workers) == worker_pids and all(w.proc.poll() is None for w in c.workers)
    assert sorted(n.proc.pid for n in (*sentinels.nodes, *sentinels.sentinels) if n.alive()) == \
        sorted(pid for pid in redis_pids if pid != old.proc.pid)
    from workers.app import celery_app

    # This process's reply consumer (control broadcasts) still holds its connection to the dead primary: the first
    # broadcast meets the closed socket (a ConnectionError, as `nexus health` would once in a long-running process),
    # the next one reconnects through the sentinels.
    with contextlib.suppress(Exception):
        celery_app.control.ping(timeout=0.5)
    c.wait_ready(len(c.workers), timeout=10.0)  # both workers answer on the new master's broker

    # What the dead primary held unacknowledged comes back once it is older than the visibility timeout: running
    # it again changes no report (one finisher per audit, parts stored once).
    time.sleep(max(0.0, killed_at + VISIBILITY_S + 1.0 - time.monotonic()))
    restored = restore_what_the_dead_primary_held()
    if restored:
        time.sleep(3.0 + SLOW_MS / 1000)
    for audit_id, baseline in ((fleet_id, fleet_baseline), (bulk_id, bulk_baseline)):
        if results[audit_id] == "done":
            view = nx.get(audit_id)
            assert view["status"] == "done"
            assert_same_report(view["report"], baseline["report"])
            assert_reported_once(c, audit_id)

    logs = c.worker_logs()
    assert "Unrecoverable error" not in logs, logs[-3000:]
    assert MASTER_PASSWORD not in logs and SENTINEL_PASSWORD not in logs
    print(f"failover {failover_s:.1f}s after the kill; in-flight audits {sorted(results.values())} "
          f"{settled_s:.1f}s after the kill; first new audit {first_new_s:.1f}s; {restored} message(s) restored")


def test_without_a_master_callers_get_a_clear_error_in_bounded_time(sentinels: SentinelRig,
                                                                     ha_cluster: Cluster) -> None:
    """Sentinels that know no master of that name (as while none is elected yet): the stores' calls retry for
    ``NEXUS_REDIS_FAILOVER_WAIT_S`` (1 s here), then the same clear error as a Redis that is down
    (``MasterNotFoundError`` is a ``ConnectionError``)."""
    from dataclasses import replace

    from nexus.audits.store import AuditStore
    from nexus.facade import Nexus
    from nexus.redis_conn import close, connect
    from nexus.redis_sentinel import SentinelTarget

    settings = ha_cluster.nexus().settings
    target = settings.redis_target
    assert isinstance(target, SentinelTarget)
    client = connect(replace(target, master="not-monitored", failover_wait_s=1.0))
    try:
        nx = Nexus(store=AuditStore(client, ttl_s=600), settings=settings)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match=r"Redis unreachable \(MasterNotFoundError\)"):
            nx.list(5)
        assert 1.0 <= time.monotonic() - started < 3.0
    finally:
        close(client)
