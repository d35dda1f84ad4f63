"""The per-system lookups behind the fetch tasks: reference kinds and the partial-answer memo kept across retries."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.errors import TransientError
from nexus.lookups import ref_kind, run_lookup
from nexus.models import PersonRecord, ReturnTicket
from nexus.systems import System


@pytest.mark.parametrize(("ref", "kind"), [("a@b.co", "email"), ("CORP\\jdoe", "username"), ("100042", "employee_id"),
                                           ("weird", "other")])
def test_ref_kind(ref: str, kind: str) -> None:
    assert ref_kind(ref) == kind


class FlakyWorkday:
    """Fails the n-th call, answers the others; counts what it was asked."""

    def __init__(self, fail_on: set[int]) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_on = fail_on

    def find_person(self, ref: str) -> PersonRecord | None:
        self.calls.append({"email": ref})
        if len(self.calls) in self.fail_on:
            raise TransientError("503", system="workday")
        return PersonRecord(system="workday", key="1", email=ref)


def test_a_retry_asks_only_for_what_the_failed_attempt_did_not_get() -> None:
    client = FlakyWorkday(fail_on={3})
    memo: dict[str, Any] = {}
    subjects = ["a@x.co", "b@x.co", "c@x.co", "d@x.co"]
    with pytest.raises(TransientError):
        run_lookup(System.WORKDAY, client, "people", subjects, memo)
    assert sorted(memo) == ["people:a@x.co", "people:b@x.co"]
    out = run_lookup(System.WORKDAY, client, "people", subjects, memo)
    assert [c["email"] for c in client.calls] == ["a@x.co", "b@x.co", "c@x.co", "c@x.co", "d@x.co"]
    assert {k: [r["email"] for r in v] for k, v in out.items()} == {s: [s] for s in subjects}


class FlakyHelix:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def tickets_for_serial(self, serial: str) -> list[ReturnTicket]:
        self.calls.append("tickets")
        return [ReturnTicket("INC1", serial, "a@x.co", "123456789012", "Closed", None)]

    def find_device(self, serial: str) -> None:
        self.calls.append("asset")
        if self.calls.count("asset") == 1:
            raise TransientError("503", system="helix")
        return None


def test_helix_tickets_are_not_fetched_again_after_the_asset_request_failed() -> None:
    client = FlakyHelix()
    memo: dict[str, Any] = {}
    with pytest.raises(TransientError):
        run_lookup(System.HELIX, client, "devices", ["SER123"], memo)
    out = run_lookup(System.HELIX, client, "devices", ["SER123"], memo)
    assert client.calls == ["tickets", "asset", "asset"]
    assert out["SER123"]["tickets"][0]["tracking_number"] == "123456789012"
    assert out["SER123"]["device"] is None


def test_unknown_lookup_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown lookup"):
        run_lookup(System.WORKDAY, object(), "nope", [])
