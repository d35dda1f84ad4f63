"""People rules, correlation and the user report (docs/drift-rules.md, "People")."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import replace

import pytest

from nexus.drift import (
    PersonIndex,
    audit_people,
    correlate_people,
    summarize,
    user_report,
)
from nexus.drift.people import compare_person
from nexus.models import Discrepancy, PersonRecord
from tests._drift_fixtures import (
    EMP_DN,
    EMP_EID,
    EMP_EMAIL,
    EMP_OID,
    MGR_DN,
    MGR_EID,
    MGR_EMAIL,
    MGR_OID,
    ad,
    clean_people,
    entra,
    fields_of,
    wd,
    with_,
    without,
)

ALL = {"workday", "ad", "entra"}


def audit(
    workday: list[PersonRecord],
    ad_: list[PersonRecord],
    entra_: list[PersonRecord],
    available: set[str] = ALL,
) -> list[Discrepancy]:
    return audit_people(workday, ad_, entra_, available).discrepancies


def emp_findings(found: list[Discrepancy]) -> set[tuple[str, str, str]]:
    assert all(d.subject == EMP_EMAIL for d in found), found
    return fields_of(found)


# ------------------------------------------------------------------ noise is not drift


def test_clean_org_has_no_drift() -> None:
    assert audit(*clean_people()) == []


def test_noise_is_never_reported() -> None:
    """Every kind of noise at once: case, spacing, NFC vs NFD, manager as DN / object id / email, alias vs UPN."""
    workday, ad_, entra_ = clean_people()
    workday = with_(workday, EMP_EID, display_name="Ren\u00e9e Doe", title="Senior  Engineer")
    ad_ = with_(
        ad_,
        EMP_DN,
        display_name=unicodedata.normalize("NFD", "RENÉE DOE "),  # case + NFD + trailing space
        title=" senior engineer",
        department="ENGINEERING",
        manager_ref=MGR_DN.lower().replace(",", ", "),  # DN case and spacing
        email="JDoe@Example.com",  # the mail is an alias; Workday holds the UPN
        upn=EMP_EMAIL.upper(),
    )
    entra_ = with_(
        entra_,
        EMP_OID,
        display_name="Renée\tDoe",
        title="Senior Engineer",
        department=" Engineering ",
        manager_ref=MGR_OID.upper(),
        employee_id=None,  # joins by UPN instead
        email=None,
    )
    assert audit(workday, ad_, entra_) == []


def test_manager_as_written_by_each_system_resolves_to_the_same_person() -> None:
    workday, ad_, entra_ = clean_people()
    # a client that resolved the manager leaves a bare employee id / email: still the same person
    ad_ = with_(ad_, EMP_DN, manager_ref=None, manager_employee_id=f" {MGR_EID}")
    entra_ = with_(entra_, EMP_OID, manager_ref=None, manager_email=MGR_EMAIL.upper())
    assert audit(workday, ad_, entra_) == []


def test_single_user_audit_without_manager_records_does_not_guess() -> None:
    """The manager's own records were not fetched: a DN and an object id cannot be compared, so no finding."""
    workday, ad_, entra_ = clean_people()
    assert audit(workday[1:], ad_[1:], entra_[1:]) == []


# ------------------------------------------------------------------ rules 1 and 2


def test_terminated_worker_with_enabled_accounts() -> None:
    workday, ad_, entra_ = clean_people()
    workday = with_(workday, EMP_EID, status="Terminated", enabled=False, termination_date="2026-01-01")
    # rule 1 compares nothing else: a different title must not be reported
    ad_ = with_(ad_, EMP_DN, title="Chief Everything")
    found = audit(workday, ad_, entra_)
    assert emp_findings(found) == {
        ("account_enabled", "Workday", "ActiveDirectory"),
        ("account_enabled", "Workday", "Entra"),
    }
    assert {d.severity for d in found} == {"critical"}
    assert {(d.value_a, d.value_b) for d in found} == {("Terminated", True)}


def test_terminated_worker_disabled_or_deleted_is_clean() -> None:
    workday, ad_, entra_ = clean_people()
    workday = with_(workday, EMP_EID, status="Terminated", enabled=False)
    ad_ = with_(ad_, EMP_DN, enabled=False)
    assert audit(workday, ad_, without(entra_, EMP_OID)) == []


def test_active_worker_without_accounts() -> None:
    workday, ad_, entra_ = clean_people()
    found = audit(workday, without(ad_, EMP_DN), without(entra_, EMP_OID))
    assert emp_findings(found) == {
        ("account_exists", "Workday", "ActiveDirectory"),
        ("account_exists", "Workday", "Entra"),
    }
    assert {d.severity for d in found} == {"high"}


@pytest.mark.parametrize(
    ("field", "attr", "value", "severity"),
    [
        ("job_title", "title", "Senior Engineer", "medium"),
        ("department", "department", "Finance", "high"),
        ("display_name", "display_name", "Janet Doe", "low"),
    ],
)
def test_text_field_drift(field: str, attr: str, value: str, severity: str) -> None:
    workday, ad_, entra_ = clean_people()
    found = audit(workday, with_(ad_, EMP_DN, **{attr: value}), entra_)
    assert emp_findings(found) == {(field, "Workday", "ActiveDirectory")}
    (d,) = found
    assert d.severity == severity
    assert d.value_a == getattr(workday[1], attr)
    assert d.value_b == value  # the original value, not a normalised one
    assert d.matched_on == "employee_id"


def test_manager_drift_shows_readable_references() -> None:
    workday, ad_, entra_ = clean_people()
    other = wd("100003", "omar.other@corp.example", "Omar Other")
    workday = [*workday, other]
    ad_ = [*ad_, ad("100003", "omar.other@corp.example", "Omar Other", "CN=Omar Other,DC=corp,DC=example", "oother")]
    entra_ = [*entra_, entra("100003", "omar.other@corp.example", "Omar Other", "0f6c1b8e-4444-4a8b-9c1d-0000000004")]
    entra_ = with_(entra_, EMP_OID, manager_ref=None)  # Entra: no manager at all
    ad_ = with_(ad_, EMP_DN, manager_ref="CN=Omar Other,DC=corp,DC=example")
    found = audit(workday, ad_, entra_)
    assert emp_findings(found) == {("manager", "Workday", "ActiveDirectory"), ("manager", "Workday", "Entra")}
    by_system = {d.system_b: (d.value_a, d.value_b) for d in found}
    assert by_system["ActiveDirectory"] == (MGR_EMAIL, "omar.other@corp.example")
    assert by_system["Entra"] == (MGR_EMAIL, None)
    assert {d.severity for d in found} == {"high"}


def test_each_field_is_a_separate_discrepancy_per_system() -> None:
    workday, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, title="Intern", department="Sales")
    entra_ = with_(entra_, EMP_OID, title="Intern")
    found = audit(workday, ad_, entra_)
    assert emp_findings(found) == {
        ("job_title", "Workday", "ActiveDirectory"),
        ("department", "Workday", "ActiveDirectory"),
        ("job_title", "Workday", "Entra"),
    }
    # sorted: severity first (department is high), then subject, field, systems
    assert [d.field for d in found] == ["department", "job_title", "job_title"]


# ------------------------------------------------------------------ rule 3 and failed systems


def test_workday_failed_compares_ad_with_entra() -> None:
    workday, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, title="Senior Engineer", enabled=False)
    entra_ = with_(entra_, EMP_OID, title="Engineer", manager_ref=None)
    found = audit(workday, ad_, entra_, {"ad", "entra"})
    assert emp_findings(found) == {
        ("job_title", "ActiveDirectory", "Entra"),
        ("account_enabled", "ActiveDirectory", "Entra"),
        ("manager", "ActiveDirectory", "Entra"),
    }
    title = next(d for d in found if d.field == "job_title")
    assert (title.value_a, title.value_b, title.severity) == ("Senior Engineer", "Engineer", "medium")


def test_failed_system_is_never_missing_nor_compared() -> None:
    workday, ad_, entra_ = clean_people()
    # Entra failed: its (absent) records must not produce account_exists, its titles are not compared
    entra_ = with_(entra_, EMP_OID, title="Something else")
    assert audit(workday, ad_, [], {"workday", "ad"}) == []
    assert audit(workday, ad_, entra_, {"Workday", "ActiveDirectory"}) == []
    # with only one of AD / Entra readable and Workday down, there is nothing to compare
    assert audit(workday, ad_, entra_, {"ad"}) == []


# ------------------------------------------------------------------ correlation


def test_correlation_by_each_key() -> None:
    worker = wd("100010", "amy.alias@example.com", "Amy Alias")  # Workday holds the alias
    by_eid = ad("100010", "x@corp.example", "Amy Alias", "CN=Amy,DC=corp,DC=example", "aalias")
    by_email = entra(None, "AMY.ALIAS@example.com", "Amy Alias", "0f6c1b8e-3333-4a8b-9c1d-000000000003", upn="a@x")
    (m,) = correlate_people([worker], [by_eid], [by_email])
    assert m.key == "100010" and m.matched_on == {"ad": "employee_id", "entra": "email"}

    by_upn = entra(None, None, "Amy Alias", "0f6c1b8e-3333-4a8b-9c1d-000000000003", upn="amy.alias@example.com ")
    (m,) = correlate_people([worker], [], [by_upn])
    assert m.matched_on == {"entra": "upn"}

    by_alias = replace(by_upn, upn="amy@corp.example", aliases=("smtp:Amy.Alias@Example.com",))
    (m,) = correlate_people([worker], [], [by_alias])
    assert m.matched_on == {"entra": "alias"}


def test_employee_id_wins_over_email() -> None:
    a = wd("1", "a@corp.example", "A A")
    b = wd("2", "b@corp.example", "B B")
    confusing = ad("2", "a@corp.example", "B B", "CN=B,DC=corp,DC=example", "bb")  # eid says B, mail says A
    matches = {m.key: m for m in correlate_people([a, b], [confusing], [])}
    assert matches["2"].ad == [confusing] and matches["1"].ad == []


def test_records_without_workday_group_by_email() -> None:
    ad_only = ad(None, "x@corp.example", "X", "CN=X,DC=corp,DC=example", "x")
    entra_only = entra(None, "X@corp.example", "X", EMP_OID)
    (m,) = correlate_people(None, [ad_only], [entra_only])
    assert m.key == "ad:CN=X,DC=corp,DC=example" and m.matched_on == {"entra": "email"}


def test_index_resolves_every_reference_kind() -> None:
    workday, ad_, entra_ = clean_people()
    entra_ = with_(entra_, EMP_OID, aliases=("jdoe@example.com",))
    index = PersonIndex([*workday, *ad_, *entra_])
    refs = [
        EMP_EID,
        " 100002",
        EMP_EMAIL.upper(),
        "jdoe@example.com",  # alias
        "CORP\\jdoe",
        "corp\\JDOE",
        "jdoe",
        EMP_DN.upper(),
        EMP_OID.upper(),
        f"{{{EMP_OID}}}",
    ]
    assert {index.resolve(r) for r in refs} == {EMP_EID}
    assert index.resolve(MGR_DN) == MGR_EID
    assert index.resolve("nobody@corp.example") is None
    assert index.resolve(None) is None
    assert index.workday(EMP_EID) is workday[1]


def test_compare_person_takes_display_names_or_ids() -> None:
    workday, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, title="X")
    index = PersonIndex([*workday, *ad_, *entra_])
    match = index.match(EMP_EID)
    assert match is not None
    a = compare_person(match, index, {"Workday", "ActiveDirectory", "Entra"})
    b = compare_person(match, index, {"workday", "ad", "entra"})
    assert [d.to_dict() for d in a] == [d.to_dict() for d in b] and len(a) == 1


def test_audit_people_subjects() -> None:
    workday, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, title="X")
    ad_ = with_(ad_, MGR_DN, title="Y")
    result = audit_people(workday, ad_, entra_, ALL, subjects=["JANE.DOE@corp.example", "ghost@corp.example"])
    assert [m.key for m in result.matches] == [EMP_EID]
    assert {d.subject for d in result.discrepancies} == {EMP_EMAIL}
    assert result.not_found == ["ghost@corp.example"]


# ------------------------------------------------------------------ the user report


def test_user_report_shape_all_available() -> None:
    workday, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, title="Senior Engineer")
    report = user_report(EMP_EMAIL, {"workday": workday[1:], "ad": ad_[1:], "entra": entra_[1:]}, errors={})
    assert report == {
        "email": EMP_EMAIL,
        "systems_checked": ["Workday", "ActiveDirectory", "Entra"],
        "systems_available": ["Workday", "ActiveDirectory", "Entra"],
        "systems_failed": [],
        "workday_found": True,
        "ad_found": True,
        "entra_found": True,
        "discrepancy_count": 1,
        "discrepancies": [
            {
                "field": "job_title",
                "system_a": "Workday",
                "value_a": "Engineer",
                "system_b": "ActiveDirectory",
                "value_b": "Senior Engineer",
                "severity": "medium",
                "subject": EMP_EMAIL,
                "matched_on": "employee_id",
                "control": "CIS 6.8",
                "remediation": "Correct the title in the directory from Workday (the system of record).",
            }
        ],
        "errors": {},
    }


def test_user_report_workday_failed_like_the_seed() -> None:
    _, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, title="Senior Engineer")
    error = {"type": "TransientError", "kind": "transient", "message": "503 Service Unavailable", "status": 503}
    report = user_report(
        EMP_EMAIL, {"Workday": None, "ActiveDirectory": ad_[1:], "Entra": entra_[1:]}, {"Workday": error}
    )
    assert report["systems_available"] == ["ActiveDirectory", "Entra"]
    assert report["systems_failed"] == ["Workday"]
    assert report["workday_found"] is None  # failed: not looked at, never False
    assert report["ad_found"] is True and report["entra_found"] is True
    assert report["discrepancy_count"] == 1
    (d,) = report["discrepancies"]
    assert (d["field"], d["system_a"], d["value_a"], d["system_b"], d["value_b"], d["severity"]) == (
        "job_title",
        "ActiveDirectory",
        "Senior Engineer",
        "Entra",
        "Engineer",
        "medium",
    )
    assert report["errors"] == {"Workday": error}


def test_user_report_not_found_vs_failed() -> None:
    workday, _, _ = clean_people()
    report = user_report(EMP_EMAIL, {"workday": workday[1:], "ad": [], "entra": None}, {})
    assert report["workday_found"] is True
    assert report["ad_found"] is False  # read, and the account is missing: drift
    assert report["entra_found"] is None  # failed (without an error given: a default one is reported)
    assert set(report["errors"]["Entra"]) >= {"type", "kind", "message"}
    assert fields_of(report["discrepancies"]) == {("account_exists", "Workday", "ActiveDirectory")}


def test_user_report_unknown_person() -> None:
    report = user_report("ghost@corp.example", {"workday": [], "ad": [], "entra": []}, {})
    assert (report["workday_found"], report["ad_found"], report["entra_found"]) == (False, False, False)
    assert report["discrepancy_count"] == 0 and report["discrepancies"] == []


def test_summarize() -> None:
    workday, ad_, entra_ = clean_people()
    workday = with_(workday, MGR_EID, status="Terminated")
    ad_ = with_(ad_, EMP_DN, title="X", department="Y")
    summary = summarize(audit(workday, ad_, entra_))
    assert summary == {
        "by_severity": {"critical": 2, "high": 1, "medium": 1, "low": 0},
        "by_field": {"account_enabled": 2, "department": 1, "job_title": 1},
        "by_control": {"CIS 6.2": 2, "CIS 6.8": 2},
        "by_system": {"ActiveDirectory": 3, "Entra": 1, "Workday": 4},
    }


# ------------------------------------------------------------------ scale


def synthetic(n: int) -> tuple[list[PersonRecord], list[PersonRecord], list[PersonRecord]]:
    """``n`` people in three systems, with noise everywhere (case, manager formats, a third of AD without employee
    ids) and one planted drift: every 1000th Entra title."""
    workday, ad_, entra_ = [], [], []
    base = ",OU=Users,DC=corp,DC=example"
    for i in range(n):
        eid, email, dept = str(200000 + i), f"user{i}@corp.example", f"Dept {i % 50}"
        boss = i // 10
        workday.append(
            PersonRecord("workday", eid, eid, email, None, None, f"User {i}", title="Engineer", department=dept,
                         manager_ref=str(200000 + boss) if i else None, enabled=True, status="Active")
        )  # fmt: skip
        ad_.append(
            PersonRecord("ad", f"CN=User {i}{base}", eid if i % 3 else None, email.upper(), email, f"u{i}",
                         f"user {i}", title="Engineer", department=dept.upper(),
                         manager_ref=f"CN=User {boss}{base}" if i else None, enabled=True)
        )  # fmt: skip
        entra_.append(
            PersonRecord("entra", f"00000000-0000-4000-8000-{i:012d}", eid, email, email, None, f"User {i}",
                         title="Engineer" if i % 1000 else "Manager", department=dept,
                         manager_ref=f"00000000-0000-4000-8000-{boss:012d}" if i else None, enabled=True)
        )  # fmt: skip
    return workday, ad_, entra_


@pytest.mark.slow
def test_100k_people_complete() -> None:
    n = 100_000
    records = synthetic(n)
    started = time.perf_counter()
    result = audit_people(*records, ALL)
    elapsed = time.perf_counter() - started
    assert len(result.matches) == n
    assert {m.matched_on["ad"] for m in result.matches} == {"employee_id", "email"}
    # the only planted drift: every 1000th Entra title
    assert len(result.discrepancies) == n // 1000
    assert fields_of(result.discrepancies) == {("job_title", "Workday", "Entra")}
    print(f"audit_people: {n} people x 3 systems in {elapsed:.2f}s")


def test_every_kind_names_the_control_it_evidences_and_a_remediation() -> None:
    from nexus.controls import CONTROL_TITLES, control_of, remediation_of
    from nexus.drift.fields import DEVICE_FIELDS, PERSON_FIELDS

    for kind in (*PERSON_FIELDS, *DEVICE_FIELDS):
        control = control_of(kind)
        assert control in CONTROL_TITLES, kind
        assert remediation_of(kind), kind
    assert control_of("account_enabled") == "CIS 6.2"  # the examples
    assert control_of("last_sync") == "CIS 1.1"
    assert control_of("not_a_kind") is None and remediation_of("not_a_kind") is None  # never a guessed control
