"""Planted people drift and noise (docs/drift-rules.md, "People").

Two steps. :func:`plan_people` runs before any record exists and decides what changes the records' shape: who has
no AD / Entra account yet (new hires without reports or laptops, so no reference to them dangles), whose mail is
an alias, which leavers keep an enabled account (and so must still exist in Entra). :func:`plant_people` then edits
the clean records: noise first (its candidates are scarce: accented names), then drift on other fields.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nexus.drift import fields as F
from nexus.sim.names import DEPARTMENTS, EXECUTIVE, LAST_NAMES
from nexus.sim.org_model import AdUser, EntraUser
from nexus.sim.orggen_people import Person, has_decomposable
from nexus.sim.orggen_truth import Truth, pick, quota
from nexus.systems import System

AD, ENTRA, WORKDAY = System.AD, System.ENTRA, System.WORKDAY

# Share of the organisation per planted kind (each also has a minimum of one).
TEXT_DRIFT_RATE = 0.012  # per (field, system): job_title, department, manager, display_name x AD, Entra
MISSING_RATE = 0.008  # account_exists, per system
ENABLED_RATE = 0.004  # account_enabled, per variant (AD only, Entra only, both)
ALIAS_RATE = 0.03
CASE_RATE = 0.015
SPACING_RATE = 0.015
UNICODE_RATE = 0.01
MANAGER_FORMAT_SAMPLE = (0.005, 200)  # rate, cap

#: Attribute holding each text field, per system record type.
_ATTR = {
    (AD, F.JOB_TITLE): "title",
    (AD, F.DEPARTMENT): "department",
    (AD, F.DISPLAY_NAME): "display_name",
    (ENTRA, F.JOB_TITLE): "job_title",
    (ENTRA, F.DEPARTMENT): "department",
    (ENTRA, F.DISPLAY_NAME): "display_name",
}
_WIRE = {"title": "title", "department": "department", "display_name": "displayName", "job_title": "jobTitle"}
_ALL_TITLES = tuple(sorted({t for d in DEPARTMENTS for t in (d.head_title, *d.manager_titles, *d.ic_titles)}))
_TITLES_BY_DEPT = {d.name: (d.head_title, *d.manager_titles, *d.ic_titles) for d in DEPARTMENTS}
_DEPT_NAMES = (*(d.name for d in DEPARTMENTS), EXECUTIVE)


def norm(text: str | None) -> str:
    """The engine's text comparison: NFC, case-folded, whitespace trimmed and collapsed."""
    return " ".join(unicodedata.normalize("NFC", text or "").casefold().split())


@dataclass(slots=True)
class PeoplePlan:
    """Shape decisions taken before records exist."""

    enabled_ad: list[int] = field(default_factory=list)  # leavers whose AD account stays enabled
    enabled_entra: list[int] = field(default_factory=list)


def plan_people(rng: random.Random, people: list[Person], now: datetime) -> PeoplePlan:
    n = len(people)
    today = now.date()
    new_hires = [p.idx for p in people[1:] if p.active and p.leaf]

    def no_account_yet(i: int) -> bool:
        return people[i].missing_ad or people[i].missing_entra

    for attr in ("missing_ad", "missing_entra"):

        def ok(i: int, attr: str = attr) -> bool:
            return not getattr(people[i], attr)

        for i in pick(rng, new_hires, quota(MISSING_RATE, n), ok, no_account_yet):
            setattr(people[i], attr, True)
            people[i].hire = today - timedelta(days=rng.randrange(0, 11))
    actives = [p.idx for p in people[1:] if p.active and p.has_ad and p.has_entra]
    for i in pick(rng, actives, quota(ALIAS_RATE, n), ok=lambda _i: True):
        people[i].alias = True
    plan = PeoplePlan()
    leavers = [p.idx for p in people if not p.active]
    variants = ((True, True, 1), (True, False, 0), (False, True, 0))  # (AD enabled, Entra enabled, minimum)
    used: set[int] = set()
    for in_ad, in_entra, minimum in variants:
        for i in pick(rng, leavers, quota(ENABLED_RATE, n, minimum), ok=lambda i: i not in used):
            used.add(i)
            if in_ad:
                plan.enabled_ad.append(i)
            if in_entra:
                people[i].entra_deleted = False
                plan.enabled_entra.append(i)
    return plan


def plant_people(
    rng: random.Random,
    people: list[Person],
    ad: list[AdUser | None],
    entra: list[EntraUser | None],
    plan: PeoplePlan,
    truth: Truth,
) -> None:
    _Planter(rng, people, ad, entra, truth).run(plan)


class _Planter:
    def __init__(
        self,
        rng: random.Random,
        people: list[Person],
        ad: list[AdUser | None],
        entra: list[EntraUser | None],
        truth: Truth,
    ) -> None:
        self.rng, self.people, self.ad, self.entra, self.truth = rng, people, ad, entra, truth
        self.n = len(people)
        # Active workers with both accounts: the only ones whose records can carry comparable differences.
        self.comparable = [p.idx for p in people if p.active and p.has_ad and p.has_entra]
        self.managers_by_dept: dict[str, list[int]] = {}
        for p in people:
            if p.active and not p.leaf:
                self.managers_by_dept.setdefault(p.dept, []).append(p.idx)

    def record(self, system: System, i: int) -> AdUser | EntraUser:
        rec = self.ad[i] if system is AD else self.entra[i]
        assert rec is not None
        return rec

    def busy(self, i: int) -> bool:
        return self.truth.busy(("p", i))

    def run(self, plan: PeoplePlan) -> None:
        self.noise_unicode()
        self.noise_text("case", F.JOB_TITLE, F.DEPARTMENT, rate=CASE_RATE)
        self.noise_text("spacing", F.JOB_TITLE, F.DEPARTMENT, F.DISPLAY_NAME, rate=SPACING_RATE)
        self.noise_manager_format()
        self.noise_alias()
        self.drift_missing()
        for fld in (F.JOB_TITLE, F.DEPARTMENT, F.DISPLAY_NAME, F.MANAGER):
            for system in (AD, ENTRA):
                self.drift_text(fld, system)
        self.drift_enabled(plan)

    # -- noise ---------------------------------------------------------------------------------------------------

    def noise_unicode(self) -> None:
        people, truth = self.people, self.truth
        pool = [i for i in self.comparable if has_decomposable(people[i].display)]
        for i in pick(self.rng, pool, quota(UNICODE_RATE, self.n), ok=lambda _i: True):
            p = people[i]
            system = self.rng.choice((AD, ENTRA))
            decomposed = unicodedata.normalize("NFD", p.display)
            self.record(system, i).display_name = decomposed
            note = f"unicode: {system.display} displayName is NFD ({len(decomposed)} code points), Workday NFC"
            truth.add_noise(("p", i), p.email, F.DISPLAY_NAME, note)

    def noise_text(self, kind: str, *flds: str, rate: float) -> None:
        for fld in flds:
            self._noise_field(kind, fld, quota(rate / len(flds), self.n))

    def _noise_field(self, kind: str, fld: str, k: int) -> None:
        rng, people, truth = self.rng, self.people, self.truth
        for i in pick(rng, self.comparable, k, lambda i: truth.field_free(("p", i), fld), self.busy):
            system = rng.choice((AD, ENTRA))
            rec = self.record(system, i)
            attr = _ATTR[(system, fld)]
            before = getattr(rec, attr)
            after = _recase(rng, before) if kind == "case" else _respace(rng, before)
            setattr(rec, attr, after)
            note = f"{kind}: {system.display} {_WIRE[attr]} {after!r} vs Workday {before!r}"
            truth.add_noise(("p", i), people[i].email, fld, note)

    def noise_manager_format(self) -> None:
        rate, cap = MANAGER_FORMAT_SAMPLE
        k = min(cap, quota(rate, self.n, minimum=3))
        people, truth = self.people, self.truth
        pool = [i for i in self.comparable if people[i].manager is not None]
        for i in pick(self.rng, pool, k, lambda i: truth.field_free(("p", i), F.MANAGER), self.busy):
            p = people[i]
            boss = people[p.manager] if p.manager is not None else p
            note = (
                f"manager_format: Workday {boss.employee_id}, ActiveDirectory DN {boss.dn}, "
                f"Entra object id {boss.entra_id}: the same person"
            )
            truth.add_noise(("p", i), p.email, F.MANAGER, note)

    def noise_alias(self) -> None:
        for p in self.people:
            if p.alias:
                note = f"mail alias vs UPN: mail {p.email}, userPrincipalName {p.upn}"
                self.truth.add_noise(("p", p.idx), p.email, "email", note)

    # -- drift ---------------------------------------------------------------------------------------------------

    def drift_missing(self) -> None:
        for p in self.people:
            if p.missing_ad:
                self.truth.add_drift(("p", p.idx), p.email, F.ACCOUNT_EXISTS, (WORKDAY, AD))
            if p.missing_entra:
                self.truth.add_drift(("p", p.idx), p.email, F.ACCOUNT_EXISTS, (WORKDAY, ENTRA))

    def drift_text(self, fld: str, system: System) -> None:
        rng, people, truth = self.rng, self.people, self.truth

        def ok(i: int) -> bool:
            key = ("p", i)
            if truth.has_noise(key, fld) or truth.has_drift(key, fld, system):
                return False
            return fld != F.MANAGER or people[i].manager is not None

        for i in pick(rng, self.comparable, quota(TEXT_DRIFT_RATE, self.n), ok, self.busy):
            p = people[i]
            rec = self.record(system, i)
            if fld == F.MANAGER:
                boss = people[self._other_manager(p)]
                if isinstance(rec, AdUser):
                    rec.manager_dn = boss.dn
                else:
                    rec.manager_id = boss.entra_id
            elif fld == F.DISPLAY_NAME:
                last = _differing(rng, LAST_NAMES, p.last)
                rec.display_name = f"{p.first} {last}"
                if isinstance(rec, AdUser):
                    rec.sn = last
                else:
                    rec.surname = last
            else:
                attr = _ATTR[(system, fld)]
                choices = _DEPT_NAMES if fld == F.DEPARTMENT else _TITLES_BY_DEPT.get(p.dept, _ALL_TITLES)
                setattr(rec, attr, _differing(rng, choices, getattr(rec, attr)))
            truth.add_drift(("p", i), p.email, fld, (WORKDAY, system))

    def _other_manager(self, p: Person) -> int:
        """Another real person (with both accounts) as a stale manager: a manager of the same department if any."""
        excluded = (p.idx, p.manager)
        same_dept = pick(self.rng, self.managers_by_dept.get(p.dept, []), 1, ok=lambda m: m not in excluded)
        if same_dept:
            return same_dept[0]
        if 0 not in excluded:
            return 0  # the CEO
        return pick(self.rng, self.comparable, 1, ok=lambda i: i not in excluded)[0]

    def drift_enabled(self, plan: PeoplePlan) -> None:
        for system, chosen in ((AD, plan.enabled_ad), (ENTRA, plan.enabled_entra)):
            for i in chosen:
                rec = self.record(system, i)
                if isinstance(rec, AdUser):
                    rec.enabled = True
                else:
                    rec.account_enabled = True
                self.truth.add_drift(("p", i), self.people[i].email, F.ACCOUNT_ENABLED, (WORKDAY, system))


def _recase(rng: random.Random, text: str) -> str:
    options = [s for s in (text.upper(), text.lower()) if s != text]
    return rng.choice(options) if options else text.swapcase()


def _respace(rng: random.Random, text: str) -> str:
    spaces = [j for j, c in enumerate(text) if c == " "]
    if spaces and rng.random() < 0.6:
        j = rng.choice(spaces)
        return text[:j] + "  " + text[j + 1 :]
    return text + " "


def _differing(rng: random.Random, choices: tuple[str, ...], current: str | None) -> str:
    """A value from ``choices`` that differs from ``current`` even after normalisation."""
    target = norm(current)
    while True:
        value = rng.choice(choices)
        if norm(value) != target:
            return value
