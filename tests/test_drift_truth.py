"""The engine against the generator's ground truth: every planted drift found, nothing else, no noise reported."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest

from nexus.audits.followup import MAX_ROUNDS, next_round, replay
from nexus.drift import OwnerKind, audit_devices, audit_people, device_report, norm_email, parse_owner, user_report
from nexus.drift.fields import DEVICE_FIELDS, PERSON_FIELDS, POLICY, RETURN_SHIPMENT, UNREGISTERED_DEVICE
from nexus.models import Discrepancy, PersonRecord, ReturnTicket
from nexus.sim.org_model import Org
from nexus.sim.orggen import generate_org
from nexus.sim.records import OrgRecords, org_records

NOW = datetime(2026, 4, 13, 12, 0, tzinfo=UTC)
ALL = frozenset({"workday", "ad", "entra", "intune", "lansweeper", "helix", "fedex"})
SEEDS = (1, 2, 3)

Finding = tuple[str, str, frozenset[str], str]


@cache
def org(seed: int) -> Org:
    return generate_org(300, seed, NOW)


@cache
def records(seed: int, resolve_managers: bool = True) -> OrgRecords:
    return org_records(org(seed), resolve_managers=resolve_managers)


def findings(discrepancies: Iterable[Discrepancy]) -> Counter[Finding]:
    return Counter(
        (d.subject, d.field, frozenset({d.system_a, d.system_b} - {POLICY}), d.severity) for d in discrepancies
    )


def truth(o: Org) -> Counter[Finding]:
    return Counter((e["subject"], e["field"], frozenset(e["systems"]), e["severity"]) for e in o.truth["drift"])


def noise_hits(o: Org, found: Iterable[Finding]) -> list[Finding]:
    noise = {(e["subject"], e["field"]) for e in o.truth["noise"]}
    return [f for f in found if (f[0], f[1]) in noise]


def audit(r: OrgRecords, available: frozenset[str] = ALL) -> Counter[Finding]:
    people = audit_people(r.workday, r.ad, r.entra, available, now=NOW)
    devices = audit_devices(r.intune, r.lansweeper, r.helix, r.tickets, r.shipments, r.people, available, NOW)
    return findings([*people.discrepancies, *devices.discrepancies])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("resolve_managers", [True, False], ids=["client-resolved", "raw-refs"])
def test_engine_finds_exactly_the_planted_drift(seed: int, resolve_managers: bool) -> None:
    o = org(seed)
    found = audit(records(seed, resolve_managers))
    expected = truth(o)
    assert not expected - found, f"missed: {sorted(expected - found)}"
    assert not found - expected, f"not planted: {sorted(found - expected)}"
    assert not noise_hits(o, found)
    # every kind of finding is exercised
    assert {f[1] for f in expected} >= {
        "job_title",
        "department",
        "manager",
        "display_name",
        "account_enabled",
        "account_exists",
        "device_owner",
        "last_sync",
        "compliance",
        "device_active",
        "return_shipment",
    }


def _people_drift(o: Org) -> set[tuple[str, str]]:
    return {(e["subject"], e["field"]) for e in o.truth["drift"] if "Workday" in e["systems"]}


@pytest.mark.parametrize("seed", SEEDS)
def test_workday_failed_compares_ad_with_entra(seed: int) -> None:
    o, r = org(seed), records(seed)
    found = audit_people(r.workday, r.ad, r.entra, ALL - {"workday"}, now=NOW).discrepancies
    assert found, "planted AD / Entra differences must show as AD vs Entra"
    assert {(d.system_a, d.system_b) for d in found} == {("ActiveDirectory", "Entra")}
    assert {(d.subject, d.field) for d in found} <= _people_drift(o)
    assert not noise_hits(o, findings(found))
    # text drift planted in one of AD / Entra is a difference between them
    single: Counter[tuple[str, str]] = Counter(
        (e["subject"], e["field"])
        for e in o.truth["drift"]
        if e["field"] in ("job_title", "department", "display_name", "manager")
    )
    one_sided = {k for k, n in single.items() if n == 1}
    assert one_sided <= {(d.subject, d.field) for d in found}


def _expected_without(o: Org, drop: Any) -> Counter[Finding]:
    return Counter({f: n for f, n in truth(o).items() if not drop(f)})


@pytest.mark.parametrize("seed", SEEDS)
def test_fedex_failed_hides_only_return_shipments(seed: int) -> None:
    o = org(seed)
    found = audit(records(seed), ALL - {"fedex"})
    assert found == _expected_without(o, lambda f: f[1] == RETURN_SHIPMENT)


@pytest.mark.parametrize("seed", SEEDS)
def test_helix_failed_compares_intune_with_lansweeper(seed: int) -> None:
    o = org(seed)
    found = audit(records(seed), ALL - {"helix"})
    expected: Counter[Finding] = Counter()
    for (subject, fld, systems, severity), _n in truth(o).items():
        if fld in (RETURN_SHIPMENT, UNREGISTERED_DEVICE):
            continue  # the tickets and the register live in Helix
        if fld == "device_owner":
            systems = frozenset({"Intune", "Lansweeper"})
        expected[(subject, fld, systems, severity)] = 1
    assert Counter(set(found)) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_ad_failed_leaves_lansweeper_owners_unjudged(seed: int) -> None:
    """Without AD, ``CORP\\sam`` resolves to nobody we know: Lansweeper's owner is not judged, Intune's still is."""
    o = org(seed)
    r = records(seed)
    devices = audit_devices(
        r.intune, r.lansweeper, r.helix, r.tickets, r.shipments, [*r.workday, *r.entra], ALL - {"ad"}, NOW
    )
    expected = _expected_without(
        o,
        lambda f: (
            f[1] not in {"device_owner", "last_sync", "compliance", "device_active", RETURN_SHIPMENT,
                         "unmanaged_device", UNREGISTERED_DEVICE}
            or (f[1] == "device_owner" and "Lansweeper" in f[2])
        ),
    )
    assert findings(devices.discrepancies) == expected


@pytest.mark.parametrize("seed", SEEDS[:1])
def test_user_reports_match_the_truth(seed: int) -> None:
    """The bulk path: one user report per Workday email, from what each system returns for that email alone and
    the follow-up rounds (nexus.audits.followup) answered from the same records by employee id and address."""
    o, r = org(seed), records(seed)

    def by_address(recs: list[PersonRecord]) -> dict[str, list[PersonRecord]]:
        out: dict[str, list[PersonRecord]] = {}
        for rec in recs:
            for address in {norm_email(a) for a in (rec.email, rec.upn, *rec.aliases)} - {None}:
                assert address is not None
                out.setdefault(address, []).append(rec)
        return out

    def by_id(recs: list[PersonRecord]) -> dict[str, list[PersonRecord]]:
        out: dict[str, list[PersonRecord]] = {}
        for rec in recs:
            if rec.employee_id:
                out.setdefault(rec.employee_id, []).append(rec)
        return out

    systems = {"workday": r.workday, "ad": r.ad, "entra": r.entra}
    addresses = {s: by_address(recs) for s, recs in systems.items()}
    ids = {s: by_id(recs) for s, recs in systems.items()}

    def answer(refs: dict[str, list[str]]) -> list[dict[str, Any]]:
        out = []
        for system, wanted in refs.items():
            data = {}
            for ref in wanted:
                kind, _, value = ref.partition(":")
                table = ids[system] if kind == "employee_id" else addresses[system]
                data[ref] = [rec.to_dict() for rec in table.get(value if kind == "employee_id" else
                                                                norm_email(value) or "", [])]
            out.append({"system": system, "ok": True, "data": data})
        return out

    def first(system: str, email: str) -> list[dict[str, Any]]:
        """A directory's answer for an address: the accounts carrying it, and those carrying their employee ids."""
        found = list(addresses[system].get(norm_email(email) or "", []))
        if system != "workday":
            found += [rec for f in list(found) if f.employee_id for rec in ids[system].get(f.employee_id, [])
                      if rec not in found]
        return [rec.to_dict() for rec in dict.fromkeys(found)]

    emails = [w.email for w in r.workday if w.email]
    stage1 = [{"system": s, "ok": True, "data": {e: first(s, e) for e in emails}} for s in systems]
    rounds: list[list[dict[str, Any]]] = []
    while refs := next_round(replay(emails, stage1, rounds)):
        assert len(rounds) < MAX_ROUNDS
        rounds.append(answer(refs))
    found: list[dict[str, Any]] = []
    for view in replay(emails, stage1, rounds):
        report = user_report(view.email, view.by_system, view.errors, now=NOW)
        assert report["workday_found"] is True
        found += report["discrepancies"]
    # each worker's audit reports its own findings, and an account matching it and another worker
    people_truth: Counter[Finding] = Counter()
    for e in o.truth["drift"]:
        if e["field"] in PERSON_FIELDS:
            audits = sum(1 for who in {e["subject"], *e.get("workers", ())} if who in set(emails))
            if audits:
                people_truth[(e["subject"], e["field"], frozenset(e["systems"]), e["severity"])] += audits
    got = Counter((d["subject"], d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"])
                  for d in found)
    assert got == people_truth


@pytest.mark.parametrize("seed", SEEDS[:1])
def test_device_reports_match_the_truth(seed: int) -> None:
    """The single-device path: each system's records for the serial, plus the people its owners name."""
    o, r = org(seed), records(seed)
    by_serial: dict[str, dict[str, list[Any]]] = {}
    for system, recs in (("intune", r.intune), ("lansweeper", r.lansweeper), ("helix", r.helix)):
        for rec in recs:
            by_serial.setdefault(rec.serial, {}).setdefault(system, []).append(rec)
    tickets: dict[str, list[ReturnTicket]] = {}
    for t in r.tickets:
        tickets.setdefault(t.serial, []).append(t)
    shipments = {s.tracking_number: s for s in r.shipments}

    def lookup(recs: list[PersonRecord], ref: str) -> list[PersonRecord]:
        owner = parse_owner(ref)
        assert owner is not None
        if owner.kind is OwnerKind.SAM:
            return [p for p in recs if p.username and p.username.casefold() == owner.value]
        return [p for p in recs if owner.value in {norm_email(a) for a in (p.email, p.upn, *p.aliases)}]

    found: list[dict[str, Any]] = []
    for serial, systems in by_serial.items():
        own = tickets.get(serial, [])
        refs = {d.owner for recs in systems.values() for d in recs if d.owner}
        refs |= {t.customer_email for t in own if t.customer_email}
        people = {
            name: [p for ref in sorted(refs) for p in lookup(recs, ref)]
            for name, recs in (("workday", r.workday), ("ad", r.ad), ("entra", r.entra))
        }
        ships = [shipments[t.tracking_number] for t in own if t.tracking_number in shipments]
        read = {"intune": [], "lansweeper": [], "helix": [], **systems, "fedex": ships}  # every system answered
        report = device_report(serial, read, {}, NOW, tickets=own, people=people)
        for system in ("intune", "lansweeper", "helix"):
            assert report[f"{system}_found"] is (system in systems), (serial, system)
        found += report["discrepancies"]
    device_truth = Counter({f: n for f, n in truth(o).items() if f[1] in DEVICE_FIELDS})
    got = Counter(
        (d["subject"], d["field"], frozenset({d["system_a"], d["system_b"]} - {POLICY}), d["severity"]) for d in found
    )
    assert got == device_truth
