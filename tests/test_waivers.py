"""Waivers: validation, matching, expiry by itself at `now`, lazy pruning (fakeredis, injected clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest

from nexus.errors import InvalidInput, WaiverNotFound
from nexus.testing.clock import FakeClock
from nexus.waivers import KEEP_EXPIRED_DAYS, KEY, WaiverStore

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DAY = 86400.0


def disc(subject: str, field: str, a: str, b: str) -> dict[str, Any]:
    return {"subject": subject, "field": field, "system_a": a, "value_a": "x", "system_b": b, "value_b": "y",
            "severity": "medium", "history": "persisting"}


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(NOW.timestamp())


@pytest.fixture()
def store(clock: FakeClock) -> WaiverStore:
    return WaiverStore(fakeredis.FakeRedis(), clock=clock)


def test_add_validates_and_normalises(store: WaiverStore) -> None:
    w = store.add(" ann@corp.example ", "job_title", "  Title change\n approved   by HR ", NOW + timedelta(days=30),
                  system="ad", created_by="ops")
    assert w.id.startswith("w-") and len(w.id) == 12
    assert (w.subject, w.field, w.system, w.reason, w.created_by) == (
        "ann@corp.example", "job_title", "ActiveDirectory", "Title change approved by HR", "ops")
    d = w.to_dict(NOW.timestamp())
    assert d["expires_at"] == "2026-04-01T06:00:00+00:00" and d["status"] == "active"
    assert d["created_at"] == "2026-03-02T06:00:00+00:00"
    assert store.get(w.id) == w


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"subject": "not an email@"}, "is not a valid email address"),
    ({"subject": "a b"}, "neither an email address nor a serial"),
    ({"field": "salary"}, "unknown field 'salary'"),
    ({"field": "device_owner"}, "never applies to a person"),
    ({"subject": "SER-001"}, "never applies to a device"),
    ({"reason": "   "}, "a reason is required"),
    ({"reason": "x" * 501}, "longer than 500"),
    ({"expires_at": NOW - timedelta(seconds=1)}, "is not in the future"),
    ({"expires_at": NOW}, "is not in the future"),
    ({"expires_at": NOW + timedelta(days=366)}, "more than 365 days away"),
    ({"system": "sap"}, "unknown system 'sap'"),
])
def test_add_rejects_bad_input_with_one_line(store: WaiverStore, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"subject": "ann@corp.example", "field": "job_title", "reason": "accepted",
                            "expires_at": NOW + timedelta(days=10), "system": None}
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=message) as info:
        store.add(**args)
    assert "\n" not in str(info.value)
    assert store.list(include_expired=True) == []


def test_duplicate_active_waiver_is_refused(store: WaiverStore) -> None:
    first = store.add("ann@corp.example", "job_title", "ok", NOW + timedelta(days=10))
    with pytest.raises(InvalidInput, match=f"{first.id} already waives job_title"):
        store.add("ANN@corp.example", "job_title", "again", NOW + timedelta(days=20))
    store.add("ann@corp.example", "job_title", "only AD", NOW + timedelta(days=20), system="ActiveDirectory")


def test_apply_matches_subject_case_insensitively_field_and_system(store: WaiverStore) -> None:
    any_system = store.add("ann@corp.example", "job_title", "HR approved", NOW + timedelta(days=10))
    only_entra = store.add("bob@corp.example", "department", "reorg", NOW + timedelta(days=10), system="entra")
    device = store.add("ser-001", "last_sync", "in repair", NOW + timedelta(days=10))
    items = [
        disc("Ann@Corp.example", "job_title", "Workday", "ActiveDirectory"),   # waived (any system)
        disc("ann@corp.example", "department", "Workday", "Entra"),            # other field
        disc("bob@corp.example", "department", "Workday", "Entra"),            # waived (Entra)
        disc("bob@corp.example", "department", "Workday", "ActiveDirectory"),  # other system
        disc("SER-001", "last_sync", "Intune", "Policy"),                      # waived (serial, any case)
    ]
    active, waived = store.apply(items, NOW)
    assert [(d["subject"], d["field"], d["system_b"]) for d in active] == [
        ("ann@corp.example", "department", "Entra"), ("bob@corp.example", "department", "ActiveDirectory")]
    assert [d["waiver"]["id"] for d in waived] == [any_system.id, only_entra.id, device.id]
    assert waived[0]["waiver"] == {"id": any_system.id, "reason": "HR approved",
                                   "expires_at": "2026-03-12T06:00:00+00:00", "created_by": None}
    assert waived[0]["history"] == "persisting"  # other annotations are kept
    assert "waiver" not in items[0]  # inputs untouched


def test_waiver_expires_by_itself_and_is_pruned_later(store: WaiverStore, clock: FakeClock) -> None:
    w = store.add("ann@corp.example", "job_title", "HR approved", NOW + timedelta(days=7))
    item = disc("ann@corp.example", "job_title", "Workday", "Entra")
    assert store.apply([item])[1] != []
    clock.advance((7 - 1 / 86400) * DAY)  # one second before expiry: still applies
    assert len(store.apply([item])[1]) == 1
    clock.advance(1 / 86400 * DAY)  # at expiry: no longer applies, no job ran
    active, waived = store.apply([item])
    assert (len(active), waived) == (1, [])
    assert store.list() == []
    assert [(x.id, x.to_dict(clock())["status"]) for x in store.list(include_expired=True)] == [(w.id, "expired")]
    # a new waiver for the same finding is allowed once the old one expired
    store.add("ann@corp.example", "job_title", "extended", NOW + timedelta(days=30))
    clock.advance(KEEP_EXPIRED_DAYS * DAY)
    store.apply([item])  # pruning is lazy: any read past the retention removes it
    assert w.id.encode() not in store.r.hkeys(KEY)


def test_apply_at_an_explicit_now_ignores_the_clock(store: WaiverStore) -> None:
    store.add("ann@corp.example", "job_title", "ok", NOW + timedelta(days=7))
    item = disc("ann@corp.example", "job_title", "Workday", "Entra")
    assert len(store.apply([item], NOW + timedelta(days=6))[1]) == 1
    assert store.apply([item], (NOW + timedelta(days=8)).timestamp())[1] == []


def test_latest_expiring_waiver_is_named(store: WaiverStore) -> None:
    store.add("ann@corp.example", "job_title", "any system", NOW + timedelta(days=5))
    later = store.add("ann@corp.example", "job_title", "entra", NOW + timedelta(days=50), system="Entra")
    _, waived = store.apply([disc("ann@corp.example", "job_title", "Workday", "Entra")], NOW)
    assert waived[0]["waiver"]["id"] == later.id


def test_list_orders_by_expiry_and_remove(store: WaiverStore) -> None:
    late = store.add("ann@corp.example", "job_title", "a", NOW + timedelta(days=50))
    soon = store.add("bob@corp.example", "manager", "b", NOW + timedelta(days=5))
    assert [w.id for w in store.list()] == [soon.id, late.id]
    assert store.remove(soon.id.upper()) == soon
    assert [w.id for w in store.list()] == [late.id]
    with pytest.raises(WaiverNotFound, match="no waiver with id"):
        store.remove(soon.id)
    with pytest.raises(InvalidInput, match="is not a waiver id"):
        store.remove("nope")


def test_unreadable_entries_are_dropped(store: WaiverStore) -> None:
    store.r.hset(KEY, "w-0000000000", "{not json")
    assert store.list(include_expired=True) == []
    assert store.r.hlen(KEY) == 0
