"""People of the synthetic organisation: who they are, who they report to, and their clean identity records.

:func:`build_people` draws the workforce (a CEO, department heads, manager chains inside each department,
contractors at the leaves, leavers); :func:`assign_identities` derives mail, UPN, sAMAccountName and AD ``cn``/DN;
:func:`build_identity_records` renders the drift-free Workday, AD and Entra records (one list per system, indexed
like the people, ``None`` where a system holds no account). Drift and noise are planted afterwards
(:mod:`nexus.sim.orggen_plant`).
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TypeAlias

from nexus.sim.names import (
    ASCII_FOLD,
    CEO_TITLE,
    DEPARTMENTS,
    EXECUTIVE,
    FIRST_NAMES,
    LAST_NAMES,
    LOCATIONS,
    DepartmentSpec,
)
from nexus.sim.org_model import AdUser, EntraUser, WorkdayWorker
from nexus.sim.orggen_ids import IdSource

DOMAIN = "corp.example"
ALIAS_DOMAIN = "example.com"
BASE_DN = "DC=corp,DC=example"
NETBIOS = "CORP"
SAM_MAX = 20

TERMINATED_SHARE = 0.10
CONTRACTOR_SHARE = 0.08


@dataclass(slots=True)
class Person:
    """One worker as the generator knows them (the truth behind every system's record)."""

    idx: int
    employee_id: str
    first: str
    last: str
    dept: str
    title: str
    manager: int | None  # index of the manager (Workday's view)
    active: bool
    hire: date
    location: str
    depth: int = 0  # 0 = CEO, 1 = department head, ...
    leaf: bool = True  # nobody reports to this person
    contractor: bool = False
    term: date | None = None
    entra_deleted: bool = False  # leavers only: account removed from Entra rather than disabled
    missing_ad: bool = False  # planted account_exists drift
    missing_entra: bool = False
    alias: bool = False  # mail is flast@example.com, not the UPN
    display: str = ""
    email: str = ""  # Workday email = primary mail
    upn: str = ""
    sam: str = ""
    cn: str = ""
    dn: str = ""
    wid: str = ""
    ad_guid: str = ""
    entra_id: str = ""

    @property
    def has_ad(self) -> bool:
        return not self.missing_ad

    @property
    def has_entra(self) -> bool:
        return not (self.missing_entra or self.entra_deleted)


#: ``(idx, dept, title, manager, active, hire) -> Person`` with drawn name and location.
PersonFactory: TypeAlias = Callable[[int, str, str, "int | None", bool, date], Person]


def day_start(d: date) -> datetime:
    return datetime.combine(d, time(0), UTC)


@lru_cache(maxsize=4096)
def ascii_fold(name: str) -> str:
    """``"Ødegaard"`` -> ``"odegaard"``, ``"de la Cruz"`` -> ``"delacruz"``: the form names take in addresses."""
    decomposed = unicodedata.normalize("NFD", name)
    plain = "".join(ASCII_FOLD.get(c, c) for c in decomposed if not unicodedata.combining(c))
    return "".join(c for c in plain.lower() if c.isascii() and (c.isalnum() or c == "-"))


@lru_cache(maxsize=4096)
def has_decomposable(text: str) -> bool:
    """True when NFD changes ``text``: such a name can carry Unicode-form noise."""
    return unicodedata.normalize("NFD", text) != text


ACCENTED_FIRST_NAMES: tuple[str, ...] = tuple(n for n in FIRST_NAMES if has_decomposable(n))


def department_count(people: int) -> int:
    """How many departments an organisation of this size has (small ones merge functions)."""
    return max(2, min(len(DEPARTMENTS), people // 20))


def _branching(members: int) -> int:
    # Span of control grows slowly with size so that chains stay 3-5 deep (head + up to 3 levels below).
    return max(4, math.ceil(members**0.25))


def build_people(rng: random.Random, n: int, now: datetime) -> list[Person]:
    """The workforce: index 0 is the CEO; actives are organised per department; leavers come last."""
    today = now.date()
    depts = DEPARTMENTS[: department_count(n)]
    n_term = max(2, round(TERMINATED_SHARE * n))
    n_active = n - n_term
    ids = sorted(rng.sample(range(100000, 1000000), n))
    first_names, last_names, locations = FIRST_NAMES, LAST_NAMES, LOCATIONS
    n_first, n_last, n_loc = len(first_names), len(last_names), len(locations)
    rand, randrange = rng.random, rng.randrange

    def new(idx: int, dept: str, title: str, manager: int | None, active: bool, hire: date) -> Person:
        # int(random() * k) rather than choice(): a third of the cost, and the bias is far below anything visible.
        return Person(
            idx, str(ids[idx]), first_names[int(rand() * n_first)], last_names[int(rand() * n_last)], dept, title,
            manager, active, hire, locations[int(rand() * n_loc)],
        )  # fmt: skip

    people = [new(0, EXECUTIVE, CEO_TITLE, None, True, today - timedelta(days=randrange(1500, 5000)))]
    people[0].leaf = False
    cum = [0.0]
    for d in depts:
        cum.append(cum[-1] + d.weight)
    per_dept: list[list[int]] = [[] for _ in depts]
    for k in rng.choices(range(len(depts)), cum_weights=cum[1:], k=n_active - 1):
        idx = len(people)
        per_dept[k].append(idx)
        people.append(new(idx, depts[k].name, "", None, True, today - timedelta(days=30 + int(rand() * 3970))))
    managers_by_dept: dict[str, list[int]] = {}
    leaves: list[int] = []
    for spec, members in zip(depts, per_dept, strict=True):
        managers_by_dept[spec.name] = _organise(rng, people, spec, members, leaves)
    for idx in rng.sample(leaves, min(len(leaves), max(1, round(CONTRACTOR_SHARE * n_active)))):
        people[idx].contractor = True
    _add_leavers(rng, people, depts, cum, n_term, managers_by_dept, today, new)
    return people


def _organise(
    rng: random.Random, people: list[Person], spec: DepartmentSpec, members: list[int], leaves: list[int]
) -> list[int]:
    """A k-ary tree over ``members`` (member 0 heads the department and reports to the CEO); returns managers."""
    if not members:
        return []
    k = _branching(len(members))
    ic_titles, mgr_titles = spec.ic_titles, spec.manager_titles
    n_ic, rand = len(ic_titles), rng.random
    managers: list[int] = []
    for pos, idx in enumerate(members):
        p = people[idx]
        if pos == 0:
            p.manager, p.depth = 0, 1
        else:
            boss = people[members[(pos - 1) // k]]
            p.manager, p.depth = boss.idx, boss.depth + 1
        if pos * k + 1 < len(members):
            p.leaf = False
            managers.append(idx)
            p.title = spec.head_title if pos == 0 else mgr_titles[min(p.depth - 2, len(mgr_titles) - 1)]
        else:
            # The product of two uniforms leans to 0: juniors (listed first) outnumber principals.
            p.title = spec.head_title if pos == 0 else ic_titles[int(n_ic * rand() * rand())]
            if pos:
                leaves.append(idx)
    return managers


def _add_leavers(
    rng: random.Random,
    people: list[Person],
    depts: tuple[DepartmentSpec, ...],
    cum: list[float],
    n_term: int,
    managers_by_dept: dict[str, list[int]],
    today: date,
    make: PersonFactory,
) -> None:
    for k in rng.choices(range(len(depts)), cum_weights=cum[1:], k=n_term):
        spec = depts[k]
        bosses = managers_by_dept.get(spec.name) or [0]
        term = today - timedelta(days=rng.randrange(20, 401))
        hire = term - timedelta(days=rng.randrange(60, 3000))
        p = make(len(people), spec.name, rng.choice(spec.ic_titles), rng.choice(bosses), False, hire)
        p.term = term
        p.contractor = rng.random() < CONTRACTOR_SHARE
        p.entra_deleted = rng.random() < 0.5
        people.append(p)


def ensure_accented(rng: random.Random, people: list[Person]) -> None:
    """Guarantee one active worker with an accented name (Unicode-form noise needs one, even with 10 people)."""
    pool = [p for p in people[1:] if p.active and p.has_ad and p.has_entra]
    if not any(has_decomposable(p.first) or has_decomposable(p.last) for p in pool):
        rng.choice(pool).first = rng.choice(ACCENTED_FIRST_NAMES)


def _dedupe(base: str, taken: dict[str, int], limit: int | None = None, sep: str = "") -> str:
    """``base``, or ``base<sep>2``, ``base<sep>3``... (truncated to ``limit``) whichever is free first."""
    candidate = base[:limit] if limit else base
    n = taken.get(candidate, 0)
    if not n:
        taken[candidate] = 1
        return candidate
    while True:
        n += 1
        suffix = f"{sep}{n}"
        out = (base[: limit - len(suffix)] if limit else base) + suffix
        if out not in taken:
            taken[candidate] = n
            taken[out] = 1
            return out


_RDN_SPECIAL = re.compile(r'[,+"\\<>;=]|^[# ]| $')


def _escape_rdn(value: str) -> str:
    """RFC 4514 escaping of an RDN value (names avoid these characters; kept for safety)."""
    if _RDN_SPECIAL.search(value):
        value = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
        if value.startswith(("#", " ")):
            value = "\\" + value
        if value.endswith(" "):
            value = value[:-1] + "\\ "
    return value


def assign_identities(ids: IdSource, people: list[Person]) -> None:
    """Display name, UPN, mail (alias for some), sAMAccountName, AD cn/DN and object ids, all unique."""
    locals_: dict[str, int] = {}
    aliases: dict[str, int] = {}
    sams: dict[str, int] = {}
    cns: dict[str, int] = {}
    for p in people:
        p.display = f"{p.first} {p.last}"
        first, last = ascii_fold(p.first), ascii_fold(p.last)
        local = _dedupe(f"{first}.{last}", locals_)
        p.upn = f"{local}@{DOMAIN}"
        p.email = p.upn
        if p.alias:
            p.email = f"{_dedupe(first[:1] + last.replace('-', ''), aliases)}@{ALIAS_DOMAIN}"
        p.sam = _dedupe(local, sams, SAM_MAX)
        p.cn = _dedupe(p.display, cns, sep=" ")
        p.dn = f"CN={_escape_rdn(p.cn)},OU=Users,OU={p.dept},{BASE_DN}"
        p.wid = ids.hex(16)
        p.ad_guid = ids.guid()
        p.entra_id = ids.guid()


def build_identity_records(
    rng: random.Random, people: list[Person]
) -> tuple[list[WorkdayWorker], list[AdUser | None], list[EntraUser | None]]:
    """Drift-free records, indexed like ``people`` (``None``: the system has no account for that person)."""
    workday: list[WorkdayWorker] = []
    ad: list[AdUser | None] = []
    entra: list[EntraUser | None] = []
    rand = rng.random
    for p in people:
        boss = people[p.manager] if p.manager is not None else None
        workday.append(
            WorkdayWorker(
                p.employee_id, p.wid, p.first, p.last, p.display, p.email, p.title, p.dept,
                boss.employee_id if boss else None, p.location, "Contractor" if p.contractor else "Employee",
                p.active, p.hire, p.term,
            )
        )  # fmt: skip
        proxies = [f"SMTP:{p.email}", f"smtp:{p.upn}"] if p.alias else [f"SMTP:{p.email}"]
        ad.append(
            AdUser(
                p.dn, p.cn, p.sam, p.upn, p.email, p.display, p.first, p.last, p.title, p.dept,
                boss.dn if boss else None, p.employee_id, p.active, proxies, p.ad_guid,
            )
            if p.has_ad
            else None
        )  # fmt: skip
        created = day_start(p.hire) - timedelta(seconds=86400 + int(rand() * 13 * 86400))
        entra.append(
            EntraUser(
                p.entra_id, p.upn, p.email, p.display, p.first, p.last, p.title, p.dept, p.employee_id, p.active,
                boss.entra_id if boss else None, [], created,
            )
            if p.has_entra
            else None
        )  # fmt: skip
    return workday, ad, entra
