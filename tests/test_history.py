"""Drift history across fleet audits (fakeredis, explicit times) and diffs of any two reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest

from nexus.history import LAST_FLEET, LOCK, HistoryStore, diff_reports, identity

T1 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=7)
T3 = T2 + timedelta(days=7)
WEEK_TTL = 30 * 86400


def disc(subject: str, field: str, a: str, va: Any, b: str, vb: Any, severity: str = "medium") -> dict[str, Any]:
    return {"subject": subject, "field": field, "system_a": a, "value_a": va, "system_b": b, "value_b": vb,
            "severity": severity}


TITLE_AD = disc("ann@corp.example", "job_title", "Workday", "Engineer", "ActiveDirectory", "Intern")
DEPT_ENTRA = disc("bob@corp.example", "department", "Workday", "Sales", "Entra", "Ops", "high")
ENABLED_AD = disc("cy@corp.example", "account_enabled", "Workday", "terminated", "ActiveDirectory", "enabled",
                  "critical")
STALE = disc("SER-001", "last_sync", "Intune", "2026-01-01", "Policy", "30 days", "medium")
OWNER_LS = disc("SER-002", "device_owner", "Helix", "ann@corp.example", "Lansweeper", "CORP\\bob", "high")


@pytest.fixture()
def store() -> HistoryStore:
    return HistoryStore(fakeredis.FakeRedis(), ttl_s=WEEK_TTL)


def by_field(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["field"]: d for d in items}


def test_first_audit_everything_is_new(store: HistoryStore) -> None:
    result = store.annotate_full("a1", [TITLE_AD, STALE], T1)
    assert [d["history"] for d in result.annotated] == ["new", "new"]
    assert {d["since"] for d in result.annotated} == {"2026-03-02T06:00:00+00:00"}
    assert result.resolved == [] and result.unknown == [] and result.previous_audit_id is None
    assert store.last_fleet() == "a1"
    # the input is not modified
    assert "history" not in TITLE_AD


def test_two_runs_drift_fixed_and_added(store: HistoryStore) -> None:
    store.annotate("a1", [TITLE_AD, DEPT_ENTRA, STALE], T1)
    # Between the runs: Bob's department was fixed, Ann's AD title changed to another wrong value, Cy's account
    # was left enabled after termination (new).
    ann_changed = dict(TITLE_AD, value_b="Senior Intern")
    annotated, resolved = store.annotate("a2", [ann_changed, STALE, ENABLED_AD], T2)

    got = by_field(annotated)
    assert got["job_title"]["history"] == "persisting"
    assert got["job_title"]["since"] == "2026-03-02T06:00:00+00:00"
    assert got["job_title"]["changed_from"] == {"value_a": "Engineer", "value_b": "Intern"}
    assert got["last_sync"]["history"] == "persisting" and "changed_from" not in got["last_sync"]
    assert got["account_enabled"]["history"] == "new"
    assert got["account_enabled"]["since"] == "2026-03-09T06:00:00+00:00"
    assert [(d["subject"], d["field"], d["history"]) for d in resolved] == [
        ("bob@corp.example", "department", "resolved")]
    assert resolved[0]["since"] == "2026-03-02T06:00:00+00:00"
    assert resolved[0]["resolved_at"] == "2026-03-09T06:00:00+00:00"
    assert resolved[0]["value_b"] == "Ops"  # as last seen


def test_three_runs_since_is_carried_forward(store: HistoryStore) -> None:
    store.annotate("a1", [TITLE_AD, DEPT_ENTRA], T1)
    store.annotate("a2", [TITLE_AD, ENABLED_AD], T2)
    result = store.annotate_full("a3", [TITLE_AD, ENABLED_AD, OWNER_LS, DEPT_ENTRA], T3)

    got = by_field(result.annotated)
    assert result.previous_audit_id == "a2"
    assert (got["job_title"]["history"], got["job_title"]["since"]) == ("persisting", "2026-03-02T06:00:00+00:00")
    assert (got["account_enabled"]["history"], got["account_enabled"]["since"]) == (
        "persisting", "2026-03-09T06:00:00+00:00")
    assert (got["device_owner"]["history"], got["device_owner"]["since"]) == ("new", "2026-03-16T06:00:00+00:00")
    # Bob's department came back after being fixed: a new occurrence, not the old one
    assert (got["department"]["history"], got["department"]["since"]) == ("new", "2026-03-16T06:00:00+00:00")
    assert result.resolved == []
    assert result.counts() == {"new": 2, "persisting": 2, "resolved": 0, "unknown": 0}


def test_identity_ignores_case_spacing_and_system_order(store: HistoryStore) -> None:
    store.annotate("a1", [TITLE_AD], T1)
    swapped = disc(" ANN@Corp.Example ", "job_title", "ActiveDirectory", "Intern", "Workday", "Engineer")
    annotated, resolved = store.annotate("a2", [swapped], T2)
    assert annotated[0]["history"] == "persisting" and resolved == []
    assert "changed_from" not in annotated[0]  # same values, only the order of the systems moved
    assert identity(swapped) == identity(TITLE_AD)
    # a different pair of systems is a different disagreement
    assert identity(dict(TITLE_AD, system_b="Entra")) != identity(TITLE_AD)


def test_reannotating_the_same_audit_is_idempotent(store: HistoryStore) -> None:
    store.annotate("a1", [TITLE_AD, DEPT_ENTRA], T1)
    first = store.annotate_full("a2", [TITLE_AD, ENABLED_AD], T2)
    raw_before = store.r.hgetall(store.key("a2"))
    again = store.annotate_full("a2", [TITLE_AD, ENABLED_AD], T2 + timedelta(hours=3))  # a redelivered compare
    assert again.annotated == first.annotated  # "since" of the new finding did not shift to the re-run's time
    assert [d["subject"] for d in again.resolved] == [d["subject"] for d in first.resolved]
    assert again.previous_audit_id == "a1"
    assert store.r.hgetall(store.key("a2")) == raw_before
    assert store.last_fleet() == "a2"


def test_rerun_of_an_older_audit_does_not_move_the_pointer(store: HistoryStore) -> None:
    store.annotate("a1", [TITLE_AD], T1)
    store.annotate("a2", [TITLE_AD, ENABLED_AD], T2)
    replay = store.annotate_full("a1", [TITLE_AD], T3)
    assert replay.previous_audit_id is None and replay.annotated[0]["history"] == "new"
    assert store.last_fleet() == "a2"
    third = store.annotate_full("a3", [TITLE_AD], T3)
    assert third.previous_audit_id == "a2"
    assert [d["field"] for d in third.resolved] == ["account_enabled"]


def test_failed_system_findings_are_unknown_not_resolved_and_carried(store: HistoryStore) -> None:
    store.annotate("a1", [TITLE_AD, DEPT_ENTRA, ENABLED_AD, STALE], T1)
    # Entra fails in a2: Bob's department finding (Workday vs Entra) cannot be re-checked, and neither can the
    # stale device (its rule resolves the owner across the people systems, Entra included).
    available = {"workday", "ad", "intune", "lansweeper", "helix", "fedex"}  # ids are accepted too
    second = store.annotate_full("a2", [TITLE_AD], T2, available=available)
    assert [d["field"] for d in second.resolved] == ["account_enabled"]  # Workday and AD answered: really gone
    assert [(d["field"], d["history"]) for d in second.unknown] == [("department", "unknown"),
                                                                    ("last_sync", "unknown")]
    assert second.unknown[0]["reason"] == "not re-checked: Entra not read in this audit"
    assert second.unknown[1]["reason"].startswith("not re-checked: Entra not read in this audit (last_sync needs ")
    assert {d["since"] for d in second.unknown} == {"2026-03-02T06:00:00+00:00"}
    # Entra is back in a3 and the drift is still there: persisting since the first sighting, not new.
    third = store.annotate_full("a3", [TITLE_AD, DEPT_ENTRA], T3)
    got = by_field(third.annotated)
    assert (got["department"]["history"], got["department"]["since"]) == ("persisting", "2026-03-02T06:00:00+00:00")
    # ... or, had it been fixed meanwhile, a3 resolves it.
    other = HistoryStore(fakeredis.FakeRedis(), ttl_s=WEEK_TTL)
    other.annotate("a1", [DEPT_ENTRA], T1)
    other.annotate("a2", [], T2, available={"Workday"})
    _, resolved = other.annotate("a3", [], T3)
    assert [(d["field"], d["since"]) for d in resolved] == [("department", "2026-03-02T06:00:00+00:00")]


def test_expired_previous_record_means_everything_new(store: HistoryStore) -> None:
    store.annotate("a1", [TITLE_AD], T1)
    store.r.delete(store.key("a1"))  # what the TTL does after ttl_s without a fleet audit
    annotated, resolved = store.annotate("a2", [TITLE_AD], T2)
    assert annotated[0]["history"] == "new" and resolved == []


def test_keys_expire_and_duplicates_are_stored_once(store: HistoryStore) -> None:
    annotated, _ = store.annotate("a1", [TITLE_AD, dict(TITLE_AD, subject="Ann@corp.example")], T1)
    assert [d["history"] for d in annotated] == ["new", "new"]
    _, records = store.recorded("a1")
    assert len(records) == 1
    assert 0 < store.r.ttl(store.key("a1")) <= WEEK_TTL
    assert 0 < store.r.ttl(LAST_FLEET) <= WEEK_TTL
    assert not store.r.exists(LOCK)  # released after the recording


def test_epoch_seconds_are_accepted_as_now(store: HistoryStore) -> None:
    annotated, _ = store.annotate("a1", [TITLE_AD], T1.timestamp())
    assert annotated[0]["since"] == "2026-03-02T06:00:00+00:00"


# -- diff of any two reports ------------------------------------------------------------------------------------------
def fleet_report(items: list[dict[str, Any]], failed: list[str] | None = None) -> dict[str, Any]:
    return {"kind": "fleet", "systems_failed": failed or [], "discrepancies": items}


def test_diff_fleet_reports() -> None:
    a = fleet_report([TITLE_AD, DEPT_ENTRA, STALE])
    b = fleet_report([dict(TITLE_AD, value_b="Senior Intern", history="persisting", since="x"), ENABLED_AD],
                     failed=["Intune"])
    changes = diff_reports(a, b)
    assert [d["field"] for d in changes["new"]] == ["account_enabled"]
    assert [d["field"] for d in changes["resolved"]] == ["department"]
    assert [d["field"] for d in changes["persisting"]] == ["job_title"]
    assert changes["persisting"][0]["changed_from"] == {"value_a": "Engineer", "value_b": "Intern"}
    assert "since" not in changes["persisting"][0]  # annotations of the stored report are not carried over
    assert [d["field"] for d in changes["unknown"]] == ["last_sync"]  # Intune failed in B
    same = diff_reports(a, a)
    assert (same["new"], same["resolved"], same["unknown"], len(same["persisting"])) == ([], [], [], 3)


def test_diff_user_and_bulk_reports() -> None:
    user_a = {"email": "ann@corp.example", "systems_failed": [],
              "discrepancies": [{k: v for k, v in TITLE_AD.items() if k != "subject"}]}
    user_b = {"email": "Ann@corp.example", "systems_failed": [], "discrepancies": []}
    assert [d["subject"] for d in diff_reports(user_a, user_b)["resolved"]] == ["ann@corp.example"]
    bulk_b = {"systems_failed": [], "entries": [
        {"email": "bob@corp.example", "discrepancies": [{k: v for k, v in DEPT_ENTRA.items() if k != "subject"}]}]}
    changes = diff_reports(user_a, bulk_b)
    assert [d["subject"] for d in changes["new"]] == ["bob@corp.example"]
    assert [(d["subject"], d["reason"]) for d in changes["unknown"]] == [
        ("ann@corp.example", "subject not audited in B")]
    assert changes["resolved"] == []
    assert HistoryStore.diff(user_a, bulk_b) == changes
