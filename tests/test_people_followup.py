"""Stage 2 of a user or bulk part: accounts whose worker the first lookups did not bring into view.

A user audited by a UPN that is not their Workday email (Workday's lookup by that address finds no one), and an
account that carries another worker's employee id (one account matching two workers), are only judged right with
the worker the account names in view. Without stage 2 the first is a false ``orphaned_account`` (high), the
second an unseen ``ambiguous_account``. These are the pure parts (nexus.audits.assemble); the pipeline is exercised
through real workers in tests/test_audit_integration.py.
"""

from __future__ import annotations

from typing import Any

from nexus.audits.assemble import people_followup_ids, people_reports
from nexus.drift import fields as F
from nexus.models import PersonRecord
from nexus.systems import USER_SYSTEMS, System

UPN = "julien.korhonen@corp.example"
MAIL = "jkorhonen@example.com"


def worker(eid: str, email: str, title: str = "Engineer") -> dict[str, Any]:
    return PersonRecord(system=System.WORKDAY.value, key=eid, employee_id=eid, email=email, title=title,
                        department="R&D", display_name="Julien Korhonen", status="Active", enabled=True,
                        first_name="Julien", last_name="Korhonen").to_dict()


def account(system: System, key: str, eid: str | None, upn: str, mail: str | None = None) -> dict[str, Any]:
    return PersonRecord(system=system.value, key=key, employee_id=eid, email=mail or upn, upn=upn, title="Engineer",
                        department="R&D", display_name="Julien Korhonen", enabled=True, first_name="Julien",
                        last_name="Korhonen").to_dict()


def answered(system: System, data: dict[str, Any]) -> dict[str, Any]:
    return {"system": system.value, "ok": True, "data": data}


def refused(system: System) -> dict[str, Any]:
    return {"system": system.value, "ok": False,
            "error": {"type": "TransientError", "kind": "transient", "message": "HTTP 503"}}


AD_ACCOUNT = account(System.AD, "CN=Julien Korhonen,OU=Contractors,DC=corp,DC=example", "C-1001", UPN)
ENTRA_ACCOUNT = account(System.ENTRA, "00000000-0000-4000-8000-000000000001", "C-1001", UPN)
STAGE1 = [answered(System.WORKDAY, {UPN: []}), answered(System.AD, {UPN: [AD_ACCOUNT]}),
          answered(System.ENTRA, {UPN: [ENTRA_ACCOUNT]})]


def kinds(report: dict[str, Any]) -> list[str]:
    return sorted(d["field"] for d in report["discrepancies"])


def test_a_upn_that_is_not_the_workday_email_needs_the_accounts_employee_id_looked_up() -> None:
    assert people_followup_ids([UPN], STAGE1) == ["C-1001"]  # not digits: looked up as an employee id all the same
    without = people_reports([UPN], STAGE1)[0]
    assert kinds(without) == [F.ORPHANED_ACCOUNT, F.ORPHANED_ACCOUNT]  # what a single stage would conclude
    stage2 = [answered(System.WORKDAY, {"C-1001": [worker("C-1001", MAIL)]}),
              answered(System.AD, {"C-1001": [AD_ACCOUNT]}), answered(System.ENTRA, {"C-1001": [ENTRA_ACCOUNT]})]
    report = people_reports([UPN], STAGE1, followup=stage2)[0]
    assert report["discrepancies"] == [] and report["workday_found"] is True
    assert report["systems_failed"] == []


def test_stage_two_finds_the_worker_but_not_every_account_in_the_first_stage() -> None:
    """Entra's account has the worker's mail, not the UPN audited: stage 2 (by employee id) finds it too."""
    entra_by_mail = account(System.ENTRA, "00000000-0000-4000-8000-000000000002", "C-1001", MAIL)
    stage1 = [answered(System.WORKDAY, {UPN: []}), answered(System.AD, {UPN: [AD_ACCOUNT]}),
              answered(System.ENTRA, {UPN: []})]
    stage2 = [answered(System.WORKDAY, {"C-1001": [worker("C-1001", MAIL)]}),
              answered(System.AD, {"C-1001": [AD_ACCOUNT]}), answered(System.ENTRA, {"C-1001": [entra_by_mail]})]
    report = people_reports([UPN], stage1, followup=stage2)[0]
    assert report["discrepancies"] == [] and report["entra_found"] is True


def test_no_worker_for_the_employee_id_is_a_real_orphan() -> None:
    stage2 = [answered(System.WORKDAY, {"C-1001": []}), answered(System.AD, {"C-1001": [AD_ACCOUNT]}),
              answered(System.ENTRA, {"C-1001": [ENTRA_ACCOUNT]})]
    report = people_reports([UPN], STAGE1, followup=stage2)[0]
    assert kinds(report) == [F.ORPHANED_ACCOUNT, F.ORPHANED_ACCOUNT]
    assert {d["subject"] for d in report["discrepancies"]} == {UPN}


def test_workday_failing_in_stage_two_is_no_verdict_and_says_why() -> None:
    stage2 = [refused(System.WORKDAY), answered(System.AD, {"C-1001": [AD_ACCOUNT]}),
              answered(System.ENTRA, {"C-1001": [ENTRA_ACCOUNT]})]
    report = people_reports([UPN], STAGE1, followup=stage2)[0]
    assert F.ORPHANED_ACCOUNT not in kinds(report)
    assert report["systems_failed"] == ["Workday"] and report["workday_found"] is None
    assert "employee ids" in report["errors"]["Workday"]["message"] and "HTTP 503" in report["errors"]["Workday"][
        "message"]


def test_a_directory_failing_in_stage_two_is_failed_for_that_person_only() -> None:
    other = "ann.other@corp.example"
    stage1 = [answered(System.WORKDAY, {UPN: [], other: [worker("1002", other)]}),
              answered(System.AD, {UPN: [AD_ACCOUNT], other: [account(System.AD, "CN=Ann", "1002", other)]}),
              answered(System.ENTRA, {UPN: [ENTRA_ACCOUNT], other: [account(System.ENTRA, "e-ann", "1002", other)]})]
    stage2 = [answered(System.WORKDAY, {"C-1001": [worker("C-1001", MAIL)]}), refused(System.AD),
              answered(System.ENTRA, {"C-1001": [ENTRA_ACCOUNT]})]
    upn_report, other_report = people_reports([UPN, other], stage1, followup=stage2)
    assert upn_report["systems_failed"] == ["ActiveDirectory"] and upn_report["discrepancies"] == []
    assert other_report["systems_failed"] == [] and other_report["discrepancies"] == []


def test_an_account_matching_a_second_worker_is_seen_by_a_user_audit() -> None:
    """Bob's AD account carries Alice's mail (the audit's address) and Bob's employee id."""
    alice, bob = "alice.smith@corp.example", "bob.jones@corp.example"
    shared = account(System.AD, "CN=Bob Jones,OU=Staff,DC=corp,DC=example", "1002", bob, mail=alice)
    stage1 = [answered(System.WORKDAY, {alice: [worker("1001", alice)]}),
              answered(System.AD, {alice: [shared]}),
              answered(System.ENTRA, {alice: [account(System.ENTRA, "e-alice", "1001", alice)]})]
    assert people_followup_ids([alice], stage1) == ["1002"]
    stage2 = [answered(System.WORKDAY, {"1002": [worker("1002", bob)]}), answered(System.AD, {"1002": [shared]}),
              answered(System.ENTRA, {"1002": [account(System.ENTRA, "e-bob", "1002", bob)]})]
    report = people_reports([alice], stage1, followup=stage2)[0]
    assert F.AMBIGUOUS_ACCOUNT in kinds(report), report["discrepancies"]


def test_no_stage_two_when_the_accounts_carry_the_workers_id_or_workday_failed() -> None:
    alice = "alice.smith@corp.example"
    plain = [answered(System.WORKDAY, {alice: [worker("1001", alice)]}),
             answered(System.AD, {alice: [account(System.AD, "CN=Alice", "1001", alice)]}),
             answered(System.ENTRA, {alice: [account(System.ENTRA, "e-alice", None, alice)]})]
    assert people_followup_ids([alice], plain) == []
    assert people_followup_ids([UPN], [refused(System.WORKDAY), *STAGE1[1:]]) == []
    assert people_followup_ids([UPN], [refused(s) for s in USER_SYSTEMS]) == []
