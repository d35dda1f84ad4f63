"""Account rules (nexus.drift.accounts): orphaned, ambiguous and dormant accounts, with the policy's exclusions and
threshold. Hand-built records (tests/_drift_fixtures.py); the clean organisation has none of them."""

from __future__ import annotations

from datetime import timedelta

from nexus.drift.engine import audit_people, user_report
from nexus.findings_policy import parse_policy
from nexus.models import Discrepancy
from tests._drift_fixtures import (
    BASE,
    EMP_DN,
    EMP_EID,
    EMP_EMAIL,
    MGR_EMAIL,
    NOW,
    ad,
    clean_people,
    entra,
    iso,
    with_,
)

ALL = {"workday", "ad", "entra"}


def _found(workday: list, ad_: list, entra_: list, available: set[str] = ALL, **kw: object) -> list[Discrepancy]:
    return audit_people(workday, ad_, entra_, available, now=NOW, **kw).discrepancies  # type: ignore[arg-type]


def _keys(found: list[Discrepancy]) -> set[tuple[str, str, str, str]]:
    return {(d.field, d.subject, d.system_a, d.system_b) for d in found}


def test_a_clean_org_has_no_account_findings() -> None:
    assert _found(*clean_people()) == []


def test_an_enabled_account_of_no_worker_is_orphaned_a_disabled_or_excluded_one_is_not() -> None:
    workday, ad_, entra_ = clean_people()
    leftover = ad("C900001", "old.contractor@corp.example", "Old Contractor",
                  f"CN=Old Contractor,OU=Contractors,OU=External Staff,{BASE}", "ctr00001")
    gone = ad(None, "gone@corp.example", "Gone Person", f"CN=Gone Person,OU=Users,{BASE}", "gone", enabled=False)
    service = ad(None, "backup@corp.example", "Backup", f"CN=svc-backup,OU=Service Accounts,{BASE}", "svc-backup")
    in_service_ou = ad(None, "app@corp.example", "App", f"CN=app01,OU=Service Accounts,OU=IT,{BASE}", "app01")
    tester = entra(None, "Test.Account1@corp.example", "Test Account", "0f6c1b8e-3333-4a8b-9c1d-000000000003")
    found = _found(workday, [*ad_, leftover, gone, service, in_service_ou], [*entra_, tester])
    assert _keys(found) == {("orphaned_account", "old.contractor@corp.example", "ActiveDirectory", "Policy"),
                            ("orphaned_account", "test.account1@corp.example", "Entra", "Policy")}
    orphan = next(d for d in found if d.system_a == "ActiveDirectory")
    assert orphan.severity == "high" and orphan.to_dict()["control"] == "CIS 5.1"
    # the policy decides what is not a person: without the defaults the service accounts are orphans too
    bare = parse_policy("[exclusions]\naccounts = []\nous = []\n")
    assert len(_found(workday, [*ad_, service, in_service_ou], entra_, policy=bare)) == 2
    # an orphan is only an orphan when Workday was read (else the worker may be there)
    assert _found(workday, [*ad_, leftover], entra_, {"ad", "entra"}) == []


def test_two_accounts_for_one_worker_are_ambiguous_and_both_are_compared() -> None:
    workday, ad_, entra_ = clean_people()
    second = ad(EMP_EID, "jane.admin@corp.example", "Jane Doe", f"CN=Jane Doe (admin),OU=Admins,{BASE}", "jdoe-adm",
                title="Administrator")
    found = _found(workday, [*ad_, second], entra_)
    ambiguous = [d for d in found if d.field == "ambiguous_account"]
    assert len(ambiguous) == 1 and ambiguous[0].subject == EMP_EMAIL
    assert ambiguous[0].value_b == ["jane.admin@corp.example", EMP_EMAIL]  # every candidate, none picked
    assert ambiguous[0].system_a == "Workday" and ambiguous[0].system_b == "ActiveDirectory"
    assert ("job_title", EMP_EMAIL, "Workday", "ActiveDirectory") in _keys(found)  # the second one is compared too


def test_one_account_matching_two_workers_is_ambiguous() -> None:
    workday, ad_, entra_ = clean_people()
    # Jane's employee id, the manager's mail: which worker owns it cannot be told
    crossed = ad(EMP_EID, MGR_EMAIL, "Jane Doe", f"CN=jd2,OU=Users,{BASE}", "jd2", upn="jd2@corp.example")
    found = _found(workday, [*ad_, crossed], entra_)
    disputed = [d for d in found if d.field == "ambiguous_account" and d.subject == "jd2@corp.example"]
    assert len(disputed) == 1 and disputed[0].value_a == sorted([EMP_EMAIL, MGR_EMAIL])
    # a user audit of either worker shows it
    report = user_report(EMP_EMAIL, {"workday": workday, "ad": [*ad_, crossed], "entra": entra_}, {}, now=NOW)
    assert "jd2@corp.example" in {d["subject"] for d in report["discrepancies"]}


def test_an_enabled_account_without_a_recent_sign_in_is_dormant() -> None:
    workday, ad_, entra_ = clean_people()
    ad_ = with_(ad_, EMP_DN, last_logon=iso(NOW - timedelta(days=46)))
    found = _found(workday, ad_, entra_)
    assert _keys(found) == {("dormant_account", EMP_EMAIL, "ActiveDirectory", "Policy")}
    assert found[0].severity == "medium" and found[0].value_b == "within 45 days"
    assert _found(workday, with_(ad_, EMP_DN, last_logon=iso(NOW - timedelta(days=40))), entra_) == []  # lag room
    assert _found(workday, with_(ad_, EMP_DN, enabled=False, last_logon=iso(NOW - timedelta(days=90))),
                  entra_) == []  # a disabled account cannot sign in: not dormant
    assert _found(workday, with_(ad_, EMP_DN, last_logon=None), entra_) == []  # never signed in: no evidence
    later = parse_policy("[thresholds]\ndormant_after_days = 60\n")
    assert _found(workday, ad_, entra_, policy=later) == []
