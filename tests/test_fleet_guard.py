"""The mass-drift guard and the last-known-good fallback.

Unit part (fakeredis): the threshold, which findings are suppressed, what becomes the last good snapshot, when a stale
snapshot may stand in. Integration part (real workers and simulators): Entra suddenly serving a tenth of its users is
reported degraded instead of flooding the report with missing accounts; with the fallback on, dead systems are
answered from their last good snapshots, flagged stale with their age.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import fakeredis
import pytest

from nexus.drift.fields import ACCOUNT_EXISTS, DEPARTMENT, POLICY
from nexus.fleet import codec
from nexus.fleet.assess import assess
from nexus.fleet.guard import judge, suppress
from nexus.fleet.report import discard, promote, settle
from nexus.fleet.store import SnapshotStore
from nexus.models import DeviceRecord, ReturnTicket
from nexus.systems import System
from nexus.testing.cluster import Cluster
from tests._fleet_fixtures import fleet_cluster, last_good_records, run_fleet


# -- the threshold and the suppression -------------------------------------------------------------------------------
def test_degraded_only_below_the_floor_of_the_last_good_size() -> None:
    assert not judge("entra", 500, 1000, 0.5).degraded  # exactly half: believed
    verdict = judge("entra", 499, 1000, 0.5)
    assert verdict.degraded and verdict.to_dict()["last_good"] == 1000
    assert "499 records, 50% of the last good snapshot's 1000" in verdict.reason
    assert judge("entra", 799, 1000, 0.2).degraded and not judge("entra", 800, 1000, 0.2).degraded
    assert not judge("entra", 0, None, 0.5).degraded  # a first audit has no reference
    assert judge("entra", 0, 1000, 0.5).degraded  # "everyone is gone" is the classic case
    assert not judge("helix_tickets", 1, 1000, 0.5).degraded  # tickets are volatile: not guarded
    assert not judge("entra", 5000, 1000, 0.5).degraded  # growth is not the guard's business


def test_only_absence_findings_against_the_degraded_system_are_suppressed() -> None:
    def d(field: str, b: str, value_b: Any) -> dict[str, Any]:
        return {"subject": "a@corp.example", "field": field, "system_a": "Workday", "value_a": "x",
                "system_b": b, "value_b": value_b, "severity": "high"}

    found = [d(ACCOUNT_EXISTS, "Entra", None), d(ACCOUNT_EXISTS, "ActiveDirectory", None),
             d(DEPARTMENT, "Entra", "Sales"), {**d("compliance", POLICY, "compliant"), "system_a": "Intune"}]
    kept, dropped = suppress(found, [System.ENTRA, System.INTUNE])
    assert dropped == [found[0]]
    assert kept == found[1:]


# -- what a finished audit leaves, and what may stand in -------------------------------------------------------------
def _snapshot(store: SnapshotStore, audit_id: str, stream: str, records: list[Any], kind: str, *,
              status: str = "ok") -> None:
    store.begin(audit_id, stream)
    if records:
        store.save_page(audit_id, stream, 0, codec.encode_page(kind, records), len(records))
    store.finish(audit_id, stream, status, error=None if status == "ok" else {"type": "TransientError",
                                                                              "kind": "transient", "message": "down"})


def _devices(n: int) -> list[DeviceRecord]:
    return [DeviceRecord("helix", f"RE{i}", f"S{i:04d}", owner=f"p{i}@corp.example", status="Deployed")
            for i in range(n)]


def _assess(store: SnapshotStore, audit_id: str, now: float, *, fallback: bool = True) -> Any:
    return assess(store, audit_id, [System.HELIX, System.ENTRA], now=now, guard_drop=0.5, fallback=fallback,
                  stale_max_age_s=14 * 86400)


@pytest.fixture()
def store() -> SnapshotStore:
    clock = {"now": 1_000_000.0}
    return SnapshotStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), ttl_s=3600, clock=lambda: clock["now"])


def test_good_snapshots_are_kept_degraded_ones_never_replace_them(store: SnapshotStore) -> None:
    tickets = [ReturnTicket("INC1", "S0001", "p1@corp.example", "111111111111", "Assigned", None)]
    _snapshot(store, "a1", "helix", _devices(100), codec.DEVICE)
    _snapshot(store, "a1", "helix_tickets", tickets, codec.TICKET)
    _snapshot(store, "a1", "entra", [], codec.PERSON, status="failed")
    first = _assess(store, "a1", 1_000_100.0)
    assert first.systems[System.HELIX].status == "ok" and first.systems[System.ENTRA].status == "failed"
    settle(store, "a1", first, fallback=True, keep_ttl_s=14 * 86400, guard_ttl_s=90 * 86400)
    assert store.last_good("helix") == {"audit_id": "a1", "records": 100, "pages": 1, "taken_at": 1_000_000.0,
                                        "kept": True}
    assert store.last_good("entra") is None  # a failed stream teaches nothing
    assert store.r.ttl(store.key("a1", "helix", 0)) > 13 * 86400  # kept for the fallback
    assert not store.exists("a1", "entra")  # the rest of the audit is cleaned up

    _snapshot(store, "a2", "helix", _devices(10), codec.DEVICE)  # a tenth of the assets
    _snapshot(store, "a2", "helix_tickets", tickets, codec.TICKET)
    second = _assess(store, "a2", 1_000_200.0)
    status = second.systems[System.HELIX]
    assert status.status == "degraded" and status.degraded is not None
    assert status.degraded["records"] == 10 and status.degraded["last_good"] == 100
    settle(store, "a2", second, fallback=True, keep_ttl_s=14 * 86400, guard_ttl_s=90 * 86400)
    good = store.last_good("helix")
    assert good is not None and good["audit_id"] == "a1" and good["records"] == 100
    assert store.exists("a1", "helix") and not store.exists("a2", "helix")


def test_a_failed_system_is_answered_from_its_last_good_snapshot_flagged_stale(store: SnapshotStore) -> None:
    tickets = [ReturnTicket("INC1", "S0001", "p1@corp.example", "111111111111", "Assigned", None)]
    _snapshot(store, "a1", "helix", _devices(40), codec.DEVICE)
    _snapshot(store, "a1", "helix_tickets", tickets, codec.TICKET)
    settle(store, "a1", _assess(store, "a1", 1_000_000.0), fallback=True, keep_ttl_s=86400, guard_ttl_s=86400)

    _snapshot(store, "a2", "helix", [], codec.DEVICE, status="failed")
    _snapshot(store, "a2", "helix_tickets", [], codec.TICKET, status="failed")
    later = _assess(store, "a2", 1_003_600.0)
    helix = later.systems[System.HELIX]
    assert helix.status == "stale" and helix.available
    assert helix.stale == {"age_s": 3600.0, "audit_id": "a1", "taken_at": "1970-01-12T13:46:40+00:00"}  # ISO, UTC
    assert helix.error is not None and helix.error["message"] == "down"
    assert later.streams["helix"].audit_id == "a1" and later.streams["helix"].records == 40

    off = _assess(store, "a2", 1_003_600.0, fallback=False)
    assert off.systems[System.HELIX].status == "failed"  # opt-in only
    too_old = _assess(store, "a2", 1_000_000.0 + 15 * 86400)
    assert too_old.systems[System.HELIX].status == "failed"


def test_a_system_is_stale_as_a_whole_or_not_at_all(store: SnapshotStore) -> None:
    """Helix's assets and tickets come from one moment: a stand-in for only one of them would mix two."""
    _snapshot(store, "a1", "helix", _devices(40), codec.DEVICE)
    _snapshot(store, "a1", "helix_tickets", [], codec.TICKET, status="failed")
    settle(store, "a1", _assess(store, "a1", 1_000_000.0), fallback=True, keep_ttl_s=86400, guard_ttl_s=86400)
    assert store.last_good("helix") is None  # the system failed as a whole: nothing became a reference
    _snapshot(store, "a2", "helix", _devices(40), codec.DEVICE)
    _snapshot(store, "a2", "helix_tickets", [], codec.TICKET, status="failed")
    assert _assess(store, "a2", 1_000_100.0).systems[System.HELIX].status == "failed"


def test_the_new_last_good_is_visible_before_the_report_and_old_copies_go_after(store: SnapshotStore) -> None:
    """An audit submitted the moment the previous one reads ``done`` must stand on that audit's snapshots: the
    promotion happens before the report is stored, the deletions after (a CI run once caught the gap)."""
    tickets = [ReturnTicket("INC1", "S0001", "p1@corp.example", "111111111111", "Assigned", None)]
    for audit_id in ("a1", "a2"):
        _snapshot(store, audit_id, "helix", _devices(40), codec.DEVICE)
        _snapshot(store, audit_id, "helix_tickets", tickets, codec.TICKET)
    settle(store, "a1", _assess(store, "a1", 1_000_000.0), fallback=True, keep_ttl_s=86400, guard_ttl_s=86400)
    doomed = promote(store, "a2", _assess(store, "a2", 1_000_100.0), fallback=True, keep_ttl_s=86400,
                     guard_ttl_s=86400)
    good = store.last_good("helix")
    assert good is not None and good["audit_id"] == "a2"
    assert store.exists("a1", "helix") and store.exists("a2", "helix")  # nothing deleted yet
    assert sorted(doomed) == [("a1", "helix"), ("a1", "helix_tickets"), ("a2", "entra")]  # entra: never read
    discard(store, doomed)
    assert not store.exists("a1", "helix") and store.exists("a2", "helix")


# -- integration -----------------------------------------------------------------------------------------------------
def key_of(d: dict[str, Any]) -> tuple[str, str, frozenset[str], str]:
    return (d["subject"].lower(), d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"])


def truth_keys(truth: dict[str, Any]) -> set[tuple[str, str, frozenset[str], str]]:
    return {(e["subject"].lower(), e["field"], frozenset(e["systems"]), e["severity"]) for e in truth["drift"]}


@pytest.fixture(scope="module")
def guarded(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    yield from fleet_cluster(request)


@pytest.mark.integration
def test_a_directory_serving_a_tenth_of_its_users_is_degraded_not_a_flood(guarded: Cluster) -> None:
    stack, truth = guarded.stack, guarded.truth
    assert stack.ctx is not None and stack.org is not None
    full = sum(1 for u in stack.org.entra if u.user_type == "Member")  # the client leaves guests (at the end) out
    if last_good_records(guarded, "entra") != full:  # this module alone: a good audit first
        baseline = run_fleet(guarded)["report"]
        assert baseline["systems_degraded"] == []
    assert last_good_records(guarded, "entra") == full

    original = stack.ctx.org
    stack.ctx.org = dataclasses.replace(original, entra=original.entra[: full // 10])  # the Graph sim re-indexes
    try:
        report = run_fleet(guarded)["report"]
    finally:
        stack.ctx.org = original
    assert report["systems_degraded"] == ["Entra"] and report["systems_failed"] == []
    assert "Entra" in report["systems_available"]
    degraded = report["degraded"]["Entra"]
    assert degraded["records"] == full // 10 and degraded["last_good"] == full
    assert "findings of missing records are suppressed" in degraded["reason"]
    assert report["systems"]["Entra"]["status"] == "degraded"
    # no flood: not one "account missing in Entra" beyond the planted ones, thousands suppressed and counted
    got = {key_of(d) for d in report["discrepancies"]}
    expected = truth_keys(truth)
    assert got <= expected, sorted(got - expected)[:10]
    assert {k for k in expected if "Entra" not in k[2]} <= got
    assert report["suppressed"]["count"] >= full * 0.8
    assert report["suppressed"]["by_system"] == {"Entra": report["suppressed"]["count"]}
    assert last_good_records(guarded, "entra") == full  # the shrunken snapshot did not become the reference

    recovered = run_fleet(guarded)["report"]
    assert recovered["systems_degraded"] == [] and {key_of(d) for d in recovered["discrepancies"]} == expected


@pytest.mark.integration
def test_dead_systems_are_answered_from_their_last_good_snapshot_flagged_with_age(guarded: Cluster) -> None:
    r = guarded.redis()

    def kept(stream: str) -> str | None:
        good = SnapshotStore(r).last_good(stream)
        return str(good["audit_id"]) if good and good["kept"] else None

    if not all(kept(s) for s in ("lansweeper", "helix", "helix_tickets")):
        run_fleet(guarded)  # this test alone: take the last good snapshots first (kept: the fallback is on)
    expected_from = {"Lansweeper": kept("lansweeper"), "Helix": kept("helix")}
    guarded.reset_requests()
    guarded.fault("lansweeper", "down")
    guarded.fault("helix", "down")
    report = run_fleet(guarded)["report"]
    assert guarded.requests()["lansweeper"]["total"] == 3  # it was tried (three attempts at page 1)
    assert report["systems_failed"] == []
    assert report["systems_stale"] == ["Lansweeper", "Helix"]
    for name in ("Lansweeper", "Helix"):
        stale = report["stale"][name]
        assert stale["audit_id"] == expected_from[name] and stale["age_s"] > 0
        assert datetime.fromisoformat(stale["taken_at"]).tzinfo is not None
        assert report["systems"][name]["status"] == "stale"
        assert report["errors"][name]["type"] == "TransientError"  # why it is stale
    # the stale snapshots hold the same data, and FedEx tracked the stale tickets' numbers
    assert report["systems"]["FedEx"]["status"] == "ok"
    assert {key_of(d) for d in report["discrepancies"]} == truth_keys(guarded.truth)
