"""The follow-up rounds of a user or bulk part: workers and accounts the first lookups did not bring into view.

A user audited by a UPN that is not their Workday email (Workday's lookup by that address finds no one), a second
account carrying a worker's employee id and none of their addresses, and an account that carries one worker's
employee id and another's mail (one account matching two workers), are only judged right with the records they name
in view. Without the rounds the first is a false ``orphaned_account`` (high), the others unseen
``ambiguous_account`` findings. These are the pure parts (nexus.audits.followup); the pipeline is exercised through
real workers in tests/test_audit_integration.py.
"""

from __future__ import annotations

from typing import Any

from nexus.audits.assemble import people_reports
from nexus.audits.followup import next_round, replay
from nexus.drift import fields as F
from nexus.models import PersonRecord
from nexus.systems import USER_SYSTEMS, System

UPN = "julien.korhonen@corp.example"
MAIL = "jkorhonen@example.com"
ID = "employee_id:"


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


class Directory:
    """Answers follow-up rounds from a fixed set of records, as the people directories would."""

    def __init__(self, *records: dict[str, Any], failing: tuple[System, ...] = ()) -> None:
        self.records = records
        self.failing = failing
        self.asked: list[dict[str, list[str]]] = []

    def answer(self, refs: dict[str, list[str]]) -> list[dict[str, Any]]:
        self.asked.append(refs)
        out = []
        for system_id, wanted in refs.items():
            system = System(system_id)
            if system in self.failing:
                out.append(refused(system))
                continue
            data: dict[str, Any] = {}
            for ref in wanted:
                kind, _, value = ref.partition(":")
                data[ref] = [r for r in self.records if r["system"] == system_id and (
                    (kind == "employee_id" and r["employee_id"] == value)
                    or (kind == "email" and value in {(r["email"] or "").lower(), (r["upn"] or "").lower()}))]
            out.append(answered(system, data))
        return out


def audit(emails: list[str], stage1: list[dict[str, Any]], directory: Directory) -> list[dict[str, Any]]:
    """Stage 1, then rounds until nothing new is wanted (as tasks.compare.compare_people runs them)."""
    rounds: list[list[dict[str, Any]]] = []
    while refs := next_round(replay(emails, stage1, rounds)):
        assert len(rounds) < 3, "more rounds than MAX_ROUNDS"
        rounds.append(directory.answer(refs))
    return people_reports(emails, stage1, rounds=rounds)


AD_ACCOUNT = account(System.AD, "CN=Julien Korhonen,OU=Contractors,DC=corp,DC=example", "C-1001", UPN)
ENTRA_ACCOUNT = account(System.ENTRA, "00000000-0000-4000-8000-000000000001", "C-1001", UPN)
STAGE1 = [answered(System.WORKDAY, {UPN: []}), answered(System.AD, {UPN: [AD_ACCOUNT]}),
          answered(System.ENTRA, {UPN: [ENTRA_ACCOUNT]})]


def kinds(report: dict[str, Any]) -> list[str]:
    return sorted(d["field"] for d in report["discrepancies"])


def test_a_upn_that_is_not_the_workday_email_needs_the_accounts_employee_id_looked_up() -> None:
    refs = next_round(replay([UPN], STAGE1, []))
    assert refs == {s.value: [ID + "C-1001"] for s in USER_SYSTEMS}  # not digits: an employee id all the same
    without = people_reports([UPN], STAGE1)[0]
    assert kinds(without) == [F.ORPHANED_ACCOUNT, F.ORPHANED_ACCOUNT]  # what stage 1 alone would conclude
    directory = Directory(worker("C-1001", MAIL), AD_ACCOUNT, ENTRA_ACCOUNT)
    report = audit([UPN], STAGE1, directory)[0]
    assert report["discrepancies"] == [] and report["workday_found"] is True
    assert report["systems_failed"] == []


def test_a_round_finds_the_worker_and_an_account_the_first_stage_did_not() -> None:
    """Entra's account has the worker's mail, not the UPN audited: the round by employee id finds it too."""
    entra_by_mail = account(System.ENTRA, "00000000-0000-4000-8000-000000000002", "C-1001", MAIL)
    stage1 = [answered(System.WORKDAY, {UPN: []}), answered(System.AD, {UPN: [AD_ACCOUNT]}),
              answered(System.ENTRA, {UPN: []})]
    report = audit([UPN], stage1, Directory(worker("C-1001", MAIL), AD_ACCOUNT, entra_by_mail))[0]
    assert report["discrepancies"] == [] and report["entra_found"] is True


def test_no_worker_for_the_employee_id_is_a_real_orphan() -> None:
    report = audit([UPN], STAGE1, Directory(AD_ACCOUNT, ENTRA_ACCOUNT))[0]
    assert kinds(report) == [F.ORPHANED_ACCOUNT, F.ORPHANED_ACCOUNT]
    assert {d["subject"] for d in report["discrepancies"]} == {UPN}


def test_workday_failing_in_a_round_is_no_verdict_and_says_why() -> None:
    report = audit([UPN], STAGE1, Directory(AD_ACCOUNT, ENTRA_ACCOUNT, failing=(System.WORKDAY,)))[0]
    assert F.ORPHANED_ACCOUNT not in kinds(report)
    assert report["systems_failed"] == ["Workday"] and report["workday_found"] is None
    message = report["errors"]["Workday"]["message"]
    assert "employee ids" in message and "HTTP 503" in message


def test_a_directory_failing_in_a_round_is_failed_for_that_person_only() -> None:
    other = "ann.other@corp.example"
    ann = [worker("1002", other), account(System.AD, "CN=Ann", "1002", other),
           account(System.ENTRA, "e-ann", "1002", other)]
    stage1 = [answered(System.WORKDAY, {UPN: [], other: [ann[0]]}),
              answered(System.AD, {UPN: [AD_ACCOUNT], other: [ann[1]]}),
              answered(System.ENTRA, {UPN: [ENTRA_ACCOUNT], other: [ann[2]]})]
    directory = Directory(worker("C-1001", MAIL), AD_ACCOUNT, ENTRA_ACCOUNT, *ann, failing=(System.AD,))
    upn_report, other_report = audit([UPN, other], stage1, directory)
    assert upn_report["systems_failed"] == ["ActiveDirectory"] and upn_report["discrepancies"] == []
    assert other_report["systems_failed"] == [] and other_report["discrepancies"] == []  # nothing asked of her


ALICE, BOB = "alice.smith@corp.example", "bob.jones@corp.example"
CROSSED_UPN = "a.smith2@corp.example"
# Alice's second AD account: her employee id, her values, Bob's mail and a UPN of its own
CROSSED = account(System.AD, "CN=Alice Smith2,OU=Staff,DC=corp,DC=example", "1001", CROSSED_UPN, mail=BOB)
PEOPLE = (worker("1001", ALICE), worker("1002", BOB),
          account(System.AD, "CN=Alice Smith,OU=Staff,DC=corp,DC=example", "1001", ALICE),
          account(System.AD, "CN=Bob Jones,OU=Staff,DC=corp,DC=example", "1002", BOB), CROSSED,
          account(System.ENTRA, "e-alice", "1001", ALICE), account(System.ENTRA, "e-bob", "1002", BOB))


def stage1_for(ref: str) -> list[dict[str, Any]]:
    """What the first lookups of ``ref`` return from PEOPLE (each directory by mail or UPN, Workday by email)."""
    lowered = ref.lower()
    by_system: dict[str, list[dict[str, Any]]] = {s.value: [] for s in USER_SYSTEMS}
    for r in PEOPLE:
        if lowered in {(r["email"] or "").lower(), (r["upn"] or "").lower()}:
            by_system[r["system"]].append(r)
    for system, found in by_system.items():  # a directory adds the accounts carrying a found account's id
        if system != System.WORKDAY.value:
            ids = {r["employee_id"] for r in found}
            found += [r for r in PEOPLE if r["system"] == system and r["employee_id"] in ids and r not in found]
    return [answered(System(s), {ref: recs}) for s, recs in by_system.items()]


def findings(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(d["subject"], d["field"]) for d in report["discrepancies"]}


def test_an_account_matching_two_workers_is_seen_from_both_workers_and_from_the_account() -> None:
    disputed = (CROSSED_UPN, F.AMBIGUOUS_ACCOUNT)
    two_accounts = (ALICE, F.AMBIGUOUS_ACCOUNT)
    # Alice: her second account carries only her employee id (a round by her id finds it), its mail is Bob's (a
    # second round asks Workday for that address): both findings
    alice = audit([ALICE], stage1_for(ALICE), Directory(*PEOPLE))[0]
    assert findings(alice) == {disputed, two_accounts}
    # Bob: the account carries his mail; Workday is asked for the employee id it carries
    bob = audit([BOB], stage1_for(BOB), Directory(*PEOPLE))[0]
    assert findings(bob) == {disputed}
    # the account's own UPN: the worker its id names, and the worker its mail names
    by_upn = audit([CROSSED_UPN], stage1_for(CROSSED_UPN), Directory(*PEOPLE))[0]
    assert findings(by_upn) == {disputed, two_accounts}
    for report in (alice, bob, by_upn):
        shared = next(d for d in report["discrepancies"] if d["subject"] == CROSSED_UPN)
        assert shared["value_a"] == [ALICE, BOB]
        assert report["systems_failed"] == []


def test_a_plain_person_needs_no_round() -> None:
    plain = [answered(System.WORKDAY, {ALICE: [worker("1001", ALICE)]}),
             answered(System.AD, {ALICE: [account(System.AD, "CN=Alice", "1001", ALICE)]}),
             answered(System.ENTRA, {ALICE: [account(System.ENTRA, "e-alice", None, ALICE)]})]
    assert next_round(replay([ALICE], plain, [])) == {}
    # an account whose UPN is an address of its own is not followed (its mail is the worker's)
    own_upn = [plain[0], answered(System.AD, {ALICE: [account(System.AD, "CN=Alice", "1001", "asmith@corp.local",
                                                               mail=ALICE)]}), plain[2]]
    assert next_round(replay([ALICE], own_upn, [])) == {}


def test_no_round_when_workday_failed() -> None:
    assert next_round(replay([UPN], [refused(System.WORKDAY), *STAGE1[1:]], [])) == {}
    assert next_round(replay([UPN], [refused(s) for s in USER_SYSTEMS], [])) == {}
