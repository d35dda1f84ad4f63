"""The synthetic organisation generator: structure, determinism, and a ground truth that matches the drift rules.

``_reference_findings`` is a deliberately small, independent reading of docs/drift-rules.md over the generator's
records; the truth must equal its findings exactly (nothing missing, nothing extra), and every noise entry must be
a raw difference that vanishes after normalisation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clients.ad.dn import escape_dn_value
from nexus.drift import fields as F
from nexus.sim.org_model import AdUser, EntraUser, Org
from nexus.sim.orggen import generate_org, truth_json
from nexus.sim.orggen_ad import CONTRACTOR_OU

NOW = datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)
SIZES = (10, 200, 2000)

DRIFT_KINDS = {
    (F.JOB_TITLE, ("Workday", "ActiveDirectory")),
    (F.JOB_TITLE, ("Workday", "Entra")),
    (F.DEPARTMENT, ("Workday", "ActiveDirectory")),
    (F.DEPARTMENT, ("Workday", "Entra")),
    (F.MANAGER, ("Workday", "ActiveDirectory")),
    (F.MANAGER, ("Workday", "Entra")),
    (F.DISPLAY_NAME, ("Workday", "ActiveDirectory")),
    (F.DISPLAY_NAME, ("Workday", "Entra")),
    (F.ACCOUNT_ENABLED, ("Workday", "ActiveDirectory")),
    (F.ACCOUNT_ENABLED, ("Workday", "Entra")),
    (F.ACCOUNT_EXISTS, ("Workday", "ActiveDirectory")),
    (F.ACCOUNT_EXISTS, ("Workday", "Entra")),
    (F.DEVICE_OWNER, ("Helix", "Intune")),
    (F.DEVICE_OWNER, ("Helix", "Lansweeper")),
    (F.LAST_SYNC, ("Intune",)),
    (F.COMPLIANCE, ("Intune",)),
    (F.DEVICE_ACTIVE, ("Workday", "Intune")),
    (F.RETURN_SHIPMENT, ("Helix", "FedEx")),
    (F.ORPHANED_ACCOUNT, ("ActiveDirectory",)),
    (F.ORPHANED_ACCOUNT, ("Entra",)),
    (F.AMBIGUOUS_ACCOUNT, ("Workday", "ActiveDirectory")),
    (F.DORMANT_ACCOUNT, ("ActiveDirectory",)),
    (F.DORMANT_ACCOUNT, ("Entra",)),
    (F.UNMANAGED_DEVICE, ("Lansweeper", "Intune")),
    (F.UNREGISTERED_DEVICE, ("Helix", "Intune")),
    (F.UNREGISTERED_DEVICE, ("Helix", "Lansweeper")),
}
NOISE_KINDS = {"case", "spacing", "unicode", "manager_format", "mail alias vs UPN", "disabled account of no worker",
               "service account", "service account (svc-*)", "last logon", "last seen",
               "last Entra sign-in", "Entra account that never signed in"}
#: Non-person accounts under the default findings policy (nexus.findings_policy), read independently here.
SERVICE_NAMES = ("svc-", "svc_")


def norm(text: str | None) -> str:
    """NFC, case-folded, whitespace trimmed and collapsed (the rules' text comparison)."""
    return " ".join(unicodedata.normalize("NFC", text or "").casefold().split())


@pytest.fixture(scope="module")
def orgs() -> dict[int, Org]:
    return {n: generate_org(n, seed=7, now=NOW) for n in SIZES}


def entra_members(org: Org) -> dict[str, EntraUser]:
    """The Entra members by employee id: guests left out, and a member without ``employeeId`` (a rough edge of the
    tenant, nexus.sim.orggen_graph) placed by its UPN or mail, which is then its worker's Workday email."""
    by_email = {w.email.casefold(): w.employee_id for w in org.workday}
    out: dict[str, EntraUser] = {}
    for e in org.entra:
        if e.user_type == "Guest":
            continue
        eid = e.employee_id or by_email.get(e.upn.casefold()) or by_email.get((e.mail or "").casefold())
        if eid is not None:
            out[eid] = e
    return out


def primary_ad(org: Org) -> dict[str | None, AdUser]:
    """Each worker's first AD account by employee id (a planted second account comes after it)."""
    out: dict[str | None, AdUser] = {}
    for u in org.ad:
        out.setdefault(u.employee_id, u)
    return out


def entra_orphans(org: Org) -> list[EntraUser]:
    """Members that belong to no worker (no employee id, no worker's address)."""
    by_email = {w.email.casefold() for w in org.workday}
    return [e for e in org.entra if e.user_type != "Guest" and not e.employee_id
            and e.upn.casefold() not in by_email and (e.mail or "").casefold() not in by_email]


# -- a reference reading of the rules --------------------------------------------------------------------------


class _Directory:
    """Who a reference (email, UPN, alias, CORP\\sam, DN, Entra id) points at: an employee id."""

    def __init__(self, org: Org) -> None:
        self.by_address: dict[str, str] = {}
        self.by_sam: dict[str, str] = {}
        self.by_dn: dict[str, str] = {}
        self.by_entra_id: dict[str, str] = {}
        for w in org.workday:
            self.by_address[w.email.casefold()] = w.employee_id
        for u in org.ad:
            if u.employee_id is None:
                continue  # an account of no worker
            for address in (u.upn, u.mail or "", *(p.split(":", 1)[1] for p in u.proxy_addresses)):
                self.by_address.setdefault(address.casefold(), u.employee_id)
            self.by_sam[u.sam.casefold()] = u.employee_id
            self.by_dn[u.dn.casefold()] = u.employee_id
        for eid, e in entra_members(org).items():
            for address in (e.upn, e.mail or ""):
                self.by_address.setdefault(address.casefold(), eid)
            self.by_entra_id[e.id] = eid

    def email(self, ref: str | None) -> str | None:
        return self.by_address.get((ref or "").strip().casefold())

    def sam(self, ref: str | None) -> str | None:
        domain, _, sam = (ref or "").rpartition("\\")
        return self.by_sam.get(sam.casefold()) if domain.upper() == "CORP" else None


def _reference_findings(org: Org) -> Counter[tuple[str, str, tuple[str, ...]]]:
    found: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
    people = _Directory(org)
    workers = {w.employee_id: w for w in org.workday}
    ad: dict[str | None, list[Any]] = {}
    for u in org.ad:
        ad.setdefault(u.employee_id, []).append(u)
    entra = entra_members(org)
    now = org.generated_at
    for u in org.ad:  # accounts of no worker
        if u.employee_id not in workers and u.can_sign_in(now) and not u.sam.casefold().startswith(SERVICE_NAMES) \
                and "ou=service accounts," not in u.dn.casefold():
            found[(u.upn.lower(), F.ORPHANED_ACCOUNT, ("ActiveDirectory",))] += 1
    by_email = {w.email.casefold(): w for w in org.workday}
    for u in org.ad:  # an account one worker's by employee id and another's by address
        owner = workers.get(u.employee_id or "")
        rivals = {by_email[a.casefold()].employee_id for a in (u.mail, u.upn) if a and a.casefold() in by_email}
        if owner is not None and rivals - {owner.employee_id}:
            found[(u.upn.lower(), F.AMBIGUOUS_ACCOUNT, ("Workday", "ActiveDirectory"))] += 1
    for member in entra_orphans(org):
        if member.account_enabled and not member.upn.casefold().startswith(SERVICE_NAMES):
            found[(member.upn.lower(), F.ORPHANED_ACCOUNT, ("Entra",))] += 1
    for w in org.workday:
        if not w.active:
            for u in ad.get(w.employee_id, []):
                if u.can_sign_in(datetime.now(UTC)):
                    found[(w.email, F.ACCOUNT_ENABLED, ("Workday", "ActiveDirectory"))] += 1
            if (e := entra.get(w.employee_id)) is not None and e.account_enabled:
                found[(w.email, F.ACCOUNT_ENABLED, ("Workday", "Entra"))] += 1
            continue
        views: list[tuple[str, Any, str | None, str | None, str | None, str | None]] = []
        accounts = ad.get(w.employee_id, [])
        if not accounts:
            found[(w.email, F.ACCOUNT_EXISTS, ("Workday", "ActiveDirectory"))] += 1
        if len(accounts) > 1:
            found[(w.email, F.AMBIGUOUS_ACCOUNT, ("Workday", "ActiveDirectory"))] += 1
        for u in accounts:
            boss = people.by_dn.get((u.manager_dn or "").casefold())
            views.append(("ActiveDirectory", u.manager_dn, boss, u.title, u.department, u.display_name))
            if u.can_sign_in(now) and u.last_logon is not None and u.last_logon < now - timedelta(days=45):
                found[(w.email, F.DORMANT_ACCOUNT, ("ActiveDirectory",))] += 1
        if (e := entra.get(w.employee_id)) is None:
            found[(w.email, F.ACCOUNT_EXISTS, ("Workday", "Entra"))] += 1
        else:
            boss = people.by_entra_id.get(e.manager_id or "")
            views.append(("Entra", e.manager_id, boss, e.job_title, e.department, e.display_name))
            signed_in = [t for t in (e.last_sign_in, e.last_non_interactive_sign_in) if t is not None]
            if w.active and e.account_enabled and signed_in and max(signed_in) < now - timedelta(days=45):
                found[(w.email, F.DORMANT_ACCOUNT, ("Entra",))] += 1
        for system, raw_boss, boss, title, dept, display in views:
            if norm(title) != norm(w.title):
                found[(w.email, F.JOB_TITLE, ("Workday", system))] += 1
            if norm(dept) != norm(w.department):
                found[(w.email, F.DEPARTMENT, ("Workday", system))] += 1
            if norm(display) != norm(w.display_name):
                found[(w.email, F.DISPLAY_NAME, ("Workday", system))] += 1
            if (boss, raw_boss is None) != (w.manager_id, w.manager_id is None):
                found[(w.email, F.MANAGER, ("Workday", system))] += 1
    intune = {d.serial.strip().upper(): d for d in org.intune}
    lansweeper = {a.serial.strip().upper(): a for a in org.lansweeper}
    shipments = {s.tracking_number: s for s in org.fedex}
    for asset in org.helix_assets:
        serial = asset.serial.strip().upper()
        owner_id = people.email(asset.owner_email)
        assert owner_id is not None, asset
        device, seen = intune[serial], lansweeper[serial]
        if people.email(device.upn) != owner_id:
            found[(asset.serial, F.DEVICE_OWNER, ("Helix", "Intune"))] += 1
        if people.sam(seen.user_name) != owner_id:
            found[(asset.serial, F.DEVICE_OWNER, ("Helix", "Lansweeper"))] += 1
        owner = workers[owner_id]
        if owner.active and asset.status == "Deployed":
            if device.last_sync < org.generated_at - timedelta(days=F.STALE_AFTER_DAYS):
                found[(asset.serial, F.LAST_SYNC, ("Intune",))] += 1
            if device.compliance_state == "noncompliant":
                found[(asset.serial, F.COMPLIANCE, ("Intune",))] += 1
        elif not owner.active:
            assert owner.termination_date is not None
            if device.last_sync.date() > owner.termination_date:
                found[(asset.serial, F.DEVICE_ACTIVE, ("Workday", "Intune"))] += 1
    registered = {a.serial.strip().upper() for a in org.helix_assets}
    recent = org.generated_at - timedelta(days=14)
    for serial, seen in lansweeper.items():
        if seen.last_seen >= recent and serial not in intune:
            found[(seen.serial, F.UNMANAGED_DEVICE, ("Lansweeper", "Intune"))] += 1
        if seen.last_seen >= recent and serial not in registered:
            found[(seen.serial, F.UNREGISTERED_DEVICE, ("Helix", "Lansweeper"))] += 1
    for serial, device in intune.items():
        if serial not in registered:
            found[(device.serial, F.UNREGISTERED_DEVICE, ("Helix", "Intune"))] += 1
    for ticket in org.helix_tickets:
        shipment = shipments.get(ticket.tracking_number)
        overdue = ticket.submit_date < org.generated_at - timedelta(days=F.RETURN_OVERDUE_DAYS)
        if overdue and (shipment is None or shipment.status_code != "DL"):
            found[(ticket.serial, F.RETURN_SHIPMENT, ("Helix", "FedEx"))] += 1
    return found


def _truth_drift(org: Org) -> Counter[tuple[str, str, tuple[str, ...]]]:
    return Counter((e["subject"], e["field"], tuple(e["systems"])) for e in org.truth["drift"])


def _noise_kind(entry: dict[str, str]) -> str:
    return entry["note"].split(":", 1)[0]


# -- tests ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [9, 0, -5, 100_001, 10**9])
def test_people_bounds_are_validated(bad: int) -> None:
    with pytest.raises(ValueError, match=r"10\.\.100000"):
        generate_org(bad, seed=1, now=NOW)


def test_non_integer_people_are_rejected() -> None:
    with pytest.raises(ValueError):
        generate_org(True, seed=1, now=NOW)
    with pytest.raises(ValueError):
        generate_org(10.0, seed=1, now=NOW)  # type: ignore[arg-type]


def test_bounds_themselves_are_accepted() -> None:
    assert len(generate_org(10, seed=1, now=NOW).workday) == 10


def test_same_seed_and_now_give_identical_orgs() -> None:
    assert generate_org(300, seed=42, now=NOW) == generate_org(300, seed=42, now=NOW)


def test_different_seeds_differ() -> None:
    a, b = generate_org(300, seed=1, now=NOW), generate_org(300, seed=2, now=NOW)
    assert a.truth != b.truth
    assert [w.email for w in a.workday] != [w.email for w in b.workday]


def test_deterministic_across_processes_whatever_the_hash_seed() -> None:
    """String hashing is salted per process: nothing in the output may depend on set or hash order."""
    script = (
        "import hashlib, json, sys; from datetime import datetime, UTC; from dataclasses import asdict;"
        "from nexus.sim.orggen import generate_org;"
        "org = generate_org(500, 3, datetime(2026, 3, 2, tzinfo=UTC));"
        "print(hashlib.sha256(json.dumps(asdict(org), default=str, sort_keys=True).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_now_defaults_to_the_current_second_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    org = generate_org(10, seed=1)
    assert before <= org.generated_at <= datetime.now(UTC)
    assert org.generated_at.microsecond == 0 and org.generated_at.tzinfo is not None


def test_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert generate_org(10, seed=5, now=naive) == generate_org(10, seed=5, now=NOW)


@pytest.mark.parametrize("n", SIZES)
def test_every_drift_and_noise_kind_is_planted(orgs: dict[int, Org], n: int) -> None:
    org = orgs[n]
    drift_kinds = {(e["field"], tuple(e["systems"])) for e in org.truth["drift"]}
    assert drift_kinds == DRIFT_KINDS
    noise = org.truth["noise"]
    assert {_noise_kind(e) for e in noise} == NOISE_KINDS
    assert {e["field"] for e in noise if _noise_kind(e) == "mail alias vs UPN"} == {"email", F.DEVICE_OWNER}
    assert {e["field"] for e in noise if _noise_kind(e) == "case"} == {F.JOB_TITLE, F.DEPARTMENT}
    for e in org.truth["drift"]:
        assert e["severity"] == F.SEVERITY[e["field"]].value


@pytest.mark.parametrize("seed", range(40))
def test_tiny_orgs_still_hold_every_kind_and_match_the_rules(seed: int) -> None:
    org = generate_org(10, seed=seed, now=NOW)
    assert {(e["field"], tuple(e["systems"])) for e in org.truth["drift"]} == DRIFT_KINDS
    assert {_noise_kind(e) for e in org.truth["noise"]} == NOISE_KINDS
    assert _reference_findings(org) == _truth_drift(org)
    workers = org.workday
    assert any(not w.active for w in workers) and any(w.worker_type == "Contractor" for w in workers)


@pytest.mark.parametrize("n", SIZES)
def test_truth_drift_is_exactly_what_the_rules_find(orgs: dict[int, Org], n: int) -> None:
    org = orgs[n]
    truth = _truth_drift(org)
    assert max(truth.values()) == 1, "duplicate truth entries"
    assert _reference_findings(org) == truth


def test_truth_matches_the_rules_at_5000_people() -> None:
    org = generate_org(5000, seed=11, now=NOW)
    assert _reference_findings(org) == _truth_drift(org)
    counts = Counter(e["field"] for e in org.truth["drift"])
    for field in (F.JOB_TITLE, F.DEPARTMENT, F.MANAGER, F.DISPLAY_NAME, F.LAST_SYNC, F.COMPLIANCE):
        assert 0.01 * 5000 <= counts[field] <= 0.03 * 5000, field


@pytest.mark.parametrize("n", SIZES)
def test_drift_entries_really_differ_after_normalisation(orgs: dict[int, Org], n: int) -> None:
    org = orgs[n]
    workers = {w.email: w for w in org.workday}
    ad = primary_ad(org)
    entra = entra_members(org)
    for e in org.truth["drift"]:
        if e["field"] not in (F.JOB_TITLE, F.DEPARTMENT, F.DISPLAY_NAME):
            continue
        w = workers[e["subject"]]
        if e["systems"][1] == "ActiveDirectory":
            u = ad[w.employee_id]
            value = {F.JOB_TITLE: u.title, F.DEPARTMENT: u.department, F.DISPLAY_NAME: u.display_name}[e["field"]]
        else:
            x = entra[w.employee_id]
            value = {F.JOB_TITLE: x.job_title, F.DEPARTMENT: x.department, F.DISPLAY_NAME: x.display_name}[e["field"]]
        expected = {F.JOB_TITLE: w.title, F.DEPARTMENT: w.department, F.DISPLAY_NAME: w.display_name}[e["field"]]
        assert norm(value) != norm(expected), e


@pytest.mark.parametrize("n", SIZES)
def test_noise_differs_raw_but_not_after_normalisation(orgs: dict[int, Org], n: int) -> None:
    org = orgs[n]
    directory = _Directory(org)
    workers = {w.email: w for w in org.workday}
    ad = primary_ad(org)
    entra = entra_members(org)
    intune = {d.serial: d for d in org.intune}
    helix = {a.serial: a for a in org.helix_assets}
    drift_keys = {(e["subject"], e["field"]) for e in org.truth["drift"]}
    for e in org.truth["noise"]:
        assert (e["subject"], e["field"]) not in drift_keys, e
        kind = _noise_kind(e)
        if e["field"] == F.ORPHANED_ACCOUNT:  # an account of no worker that must not be reported
            upns = [a.upn for a in org.ad] + [x.upn for x in org.entra]
            upn = next(u for u in upns if u.lower() == e["subject"])
            assert upn.casefold() not in {w.casefold() for w in workers}
            continue
        if e["field"] == F.DORMANT_ACCOUNT and kind.startswith(("last Entra", "Entra")):
            member = entra[workers[e["subject"]].employee_id]
            times = [t for t in (member.last_sign_in, member.last_non_interactive_sign_in) if t is not None]
            if kind == "Entra account that never signed in":
                assert not times, e
            else:
                assert times and timedelta(days=14) < org.generated_at - max(times) <= timedelta(days=45), e
            continue
        if e["field"] == F.DORMANT_ACCOUNT:
            last = ad[workers[e["subject"]].employee_id].last_logon
            assert last is not None and timedelta(days=14) < org.generated_at - last <= timedelta(days=45), e
            continue
        if e["field"] == F.UNMANAGED_DEVICE:  # a machine Lansweeper last saw long ago, nobody else knows
            seen = next(a for a in org.lansweeper if a.serial == e["subject"])
            assert org.generated_at - seen.last_seen > timedelta(days=14)
            assert e["subject"] not in intune and e["subject"] not in helix
            continue
        if e["field"] == F.DEVICE_OWNER:
            device, asset = intune[e["subject"]], helix[e["subject"]]
            assert device.upn != asset.owner_email
            assert directory.email(device.upn) == directory.email(asset.owner_email) is not None
            continue
        w = workers[e["subject"]]
        u, x = ad[w.employee_id], entra[w.employee_id]
        if e["field"] == "email":
            assert w.email == u.mail == x.mail != u.upn == x.upn
        elif e["field"] == F.MANAGER:
            boss = next(b for b in org.workday if b.employee_id == w.manager_id)
            assert u.manager_dn is not None and x.manager_id is not None
            assert directory.by_dn[u.manager_dn.casefold()] == directory.by_entra_id[x.manager_id] == boss.employee_id
        else:
            attr = {F.JOB_TITLE: ("title", "job_title", "title"), F.DEPARTMENT: ("department",) * 3}.get(
                e["field"], ("display_name",) * 3
            )
            expected = getattr(w, attr[2])
            values = [getattr(u, attr[0]), getattr(x, attr[1])]
            assert any(v != expected for v in values), e
            assert all(norm(v) == norm(expected) for v in values), e
            if kind == "unicode":
                assert any(v == unicodedata.normalize("NFD", expected) for v in values)
            if kind == "case":
                assert any(v != expected and v.casefold() == expected.casefold() for v in values)


@pytest.mark.parametrize("n", SIZES)
def test_baseline_is_clean_outside_the_truth(orgs: dict[int, Org], n: int) -> None:
    org = orgs[n]
    listed = {(e["subject"], e["field"]) for e in org.truth["drift"] + org.truth["noise"]}
    ad = primary_ad(org)
    entra = entra_members(org)
    for w in org.workday:
        u, x = ad.get(w.employee_id), entra.get(w.employee_id)
        if not w.active:
            assert u is not None, "leavers stay in AD so CORP\\sam still resolves"
            if (w.email, F.ACCOUNT_ENABLED) not in listed:
                assert not u.can_sign_in(NOW) and (x is None or not x.account_enabled)  # disabled, or expired
            continue
        if (w.email, F.ACCOUNT_EXISTS) in listed:
            continue
        assert u is not None and x is not None and u.enabled and x.account_enabled
        if (w.email, F.JOB_TITLE) not in listed:
            assert u.title == x.job_title == w.title
        if (w.email, F.DEPARTMENT) not in listed:
            assert u.department == x.department == w.department
        if (w.email, F.DISPLAY_NAME) not in listed:
            assert u.display_name == x.display_name == w.display_name
        if (w.email, "email") not in listed:
            assert w.email == u.mail == u.upn == x.upn
    by_email = {w.email: w for w in org.workday}
    ad_by_upn = {u.upn: u for u in org.ad}
    intune = {d.serial: d for d in org.intune}
    lansweeper = {a.serial: a for a in org.lansweeper}
    for asset in org.helix_assets:
        if (asset.serial, F.DEVICE_OWNER) in listed:
            continue
        assert asset.owner_email is not None
        owner = by_email[asset.owner_email]
        device = intune[asset.serial]
        assert device.upn == asset.owner_email
        assert lansweeper[asset.serial].user_name == f"CORP\\{ad_by_upn[device.upn].sam}"
        if owner.active:
            assert asset.status == "Deployed" or (asset.serial, F.RETURN_SHIPMENT) in listed
        else:
            assert owner.termination_date is not None
            if (asset.serial, F.DEVICE_ACTIVE) not in listed:
                assert device.last_sync.date() < owner.termination_date


def test_structure_is_realistic(orgs: dict[int, Org]) -> None:
    org = orgs[2000]
    workers = {w.employee_id: w for w in org.workday}
    active = [w for w in org.workday if w.active]
    ceos = [w for w in active if w.manager_id is None]
    assert len(ceos) == 1 and ceos[0].title == "Chief Executive Officer"
    departments = {w.department for w in org.workday} - {ceos[0].department}
    assert 10 <= len(departments) <= 15
    depths = []
    for w in active:
        depth, cur = 0, w
        while cur.manager_id is not None:
            boss = workers[cur.manager_id]
            assert boss.active
            if boss.manager_id is not None:  # only department heads report across departments (to the CEO)
                assert boss.department == cur.department
            cur, depth = boss, depth + 1
        depths.append(depth)
    assert 3 <= max(depths) <= 5
    assert all(re.fullmatch(r"\d{6}", w.employee_id) for w in org.workday)
    assert all(re.fullmatch(r"[0-9a-f]{32}", w.wid) for w in org.workday)
    leavers = [w for w in org.workday if not w.active]
    assert 0.08 <= len(leavers) / len(org.workday) <= 0.12
    assert 0.06 <= sum(w.worker_type == "Contractor" for w in org.workday) / len(org.workday) <= 0.10
    for w in leavers:
        assert w.termination_date is not None and w.hire_date < w.termination_date
        assert 20 <= (NOW.date() - w.termination_date).days <= 400
    assert any(unicodedata.normalize("NFD", w.display_name) != w.display_name for w in org.workday)
    primaries = {id(u) for u in primary_ad(org).values()}
    for u in org.ad:
        assert u.cn.count(",") <= 1 and len(u.sam) <= 20  # some are named "Last, First" (nexus.sim.orggen_ad)
        if u.employee_id not in workers or id(u) not in primaries:
            continue  # planted accounts of no worker, and second accounts (nexus.sim.orggen_accounts)
        w = workers[u.employee_id or ""]
        parent = CONTRACTOR_OU if w.worker_type == "Contractor" else f"OU=Users,OU={w.department},DC=corp,DC=example"
        assert u.dn == f"CN={escape_dn_value(u.cn)},{parent}"
        assert u.upn.endswith("@corp.example") and f"SMTP:{u.mail}" in u.proxy_addresses
        assert u.user_account_control == (512 if u.enabled else 514)
    guid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(guid.fullmatch(e.id) for e in org.entra) and all(guid.fullmatch(u.object_guid) for u in org.ad)
    assert all(guid.fullmatch(d.id) for d in org.intune)


def test_devices_tickets_and_shipments_are_well_formed(orgs: dict[int, Org]) -> None:
    org = orgs[2000]
    serial = re.compile(r"[0-9BCDFGHJKLMNPQRSTVWXYZ]{7}|5CG\d{4}[A-Z]{3}|PF[0-9A-Z]{6}|C02[0-9A-Z]{9}")
    registered = len(org.helix_assets)
    assert all(serial.fullmatch(d.serial) for d in org.intune[:registered])
    extra = [d.serial for d in org.intune[registered:]] + [a.serial for a in org.lansweeper[registered:]]
    assert extra and all(re.fullmatch(r"NX[0-9A-F]{10}", s) for s in extra)  # planted machines of no register
    assert ([d.serial for d in org.intune[:registered]] == [a.serial for a in org.lansweeper[:registered]]
            == [h.serial for h in org.helix_assets])
    assert org.truth["devices"] == registered
    per_owner = Counter(h.owner_email for h in org.helix_assets)
    for w in org.workday:
        assert per_owner[w.email] <= 2
    for t in org.helix_tickets:
        assert re.fullmatch(r"INC\d{12}", t.incident_number) and re.fullmatch(r"\d{12}", t.tracking_number)
    delivered = [s for s in org.fedex if s.status_code == "DL"]
    assert delivered and all(s.delivered_at is not None and s.delivered_at <= NOW for s in delivered)
    codes = {s.status_code for s in org.fedex}
    assert {"DL"} < codes <= {"DL", "IT", "DE", "OC"}


@pytest.mark.parametrize("n", SIZES)
def test_identifiers_are_unique(orgs: dict[int, Org], n: int) -> None:
    org = orgs[n]

    def unique(values: list[str]) -> None:
        assert len(values) == len(set(values)), Counter(values).most_common(2)

    unique([w.employee_id for w in org.workday])
    unique([w.email.casefold() for w in org.workday] + [u.upn for u in org.ad if u.mail != u.upn])
    unique([u.upn for u in org.ad])
    unique([u.sam.casefold() for u in org.ad])
    unique([u.dn.casefold() for u in org.ad])
    unique([e.id for e in org.entra] + [u.object_guid for u in org.ad] + [d.id for d in org.intune])
    unique([d.serial for d in org.intune])
    unique([a.key for a in org.lansweeper])
    unique([h.reconciliation_id for h in org.helix_assets])
    unique([t.incident_number for t in org.helix_tickets])
    unique([t.tracking_number for t in org.helix_tickets])
    unique([s.tracking_number for s in org.fedex])


def test_truth_json_is_a_json_ready_copy(orgs: dict[int, Org]) -> None:
    org = orgs[200]
    data = truth_json(org)
    assert set(data) == {"seed", "people", "devices", "drift", "noise"}
    assert (data["seed"], data["people"]) == (7, 200)
    assert json.loads(json.dumps(data)) == org.truth
    data["drift"][0]["systems"].append("x")
    assert org.truth["drift"][0]["systems"] != data["drift"][0]["systems"]
