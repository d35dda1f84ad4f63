"""Planted account drift (docs/drift-rules.md, "Accounts") and the look-alikes the default policy must leave alone.

Runs after the AD accounts are aged (:func:`nexus.sim.orggen_ad.age_accounts`), on the final account lists:

- drift: orphaned AD accounts (leftover contractor accounts under the contractors' OU, no worker behind them),
  orphaned Entra members (test accounts), a second AD account for a worker (same mail and employee id: a re-hire's
  new account next to the old one), an AD account matching two workers (one worker's employee id and values, another
  worker's mail, a UPN of its own: the account a copy-and-edit left behind), and dormant AD accounts of active
  workers (``lastLogonTimestamp`` 46-400 days old);
- noise: a disabled orphan (it cannot sign in), service accounts the default policy excludes (``svc-*``/``svc_*``
  names, an entry under ``OU=Service Accounts``, an Entra ``svc-`` member), and accounts whose last logon is 20-30
  days old (inside the threshold: AD's replication lag is up to 14 days).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from clients.ad.dn import escape_dn_value
from nexus.drift import fields as F
from nexus.sim.ldap_entries import split_rdn
from nexus.sim.org_model import AdUser, EntraUser
from nexus.sim.orggen_ad import CONTRACTOR_OU
from nexus.sim.orggen_people import BASE_DN, DOMAIN, Person
from nexus.sim.orggen_truth import Truth, pick, quota
from nexus.systems import System

ORPHAN_RATE = 0.003  # per system
DUPLICATE_RATE = 0.002
CROSSED_RATE = 0.001
DORMANT_RATE = 0.005
RECENT_NOISE_RATE = 0.003

SERVICE_OU = f"OU=Service Accounts,{BASE_DN}"


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ad_account(rng: random.Random, sam: str, display: str, parent: str, *, enabled: bool,
                employee_id: str | None = None, title: str | None = None) -> AdUser:
    first, _, last = display.partition(" ")
    return AdUser(f"CN={escape_dn_value(display)},{parent}", display, sam, f"{sam}@{DOMAIN}", None, display, first,
                  last or first, title, None, None, employee_id, enabled, [], _guid(rng))


def _entra_account(rng: random.Random, local: str, display: str, now: datetime) -> EntraUser:
    first, _, last = display.partition(" ")
    upn = f"{local}@{DOMAIN}"
    return EntraUser(_guid(rng), upn, upn, display, first, last or first, None, None, None, True, None, [],
                     now - timedelta(days=rng.randrange(60, 400)))


class _AccountPlanter:
    def __init__(self, seed: int, people: list[Person], ad: list[AdUser | None], truth: Truth, now: datetime) -> None:
        self.rng = random.Random(f"accounts-{seed}")
        self.people, self.ad, self.truth, self.now = people, ad, truth, now
        self.n = len(people)
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def orphans(self) -> tuple[list[AdUser], list[EntraUser]]:
        rng, truth = self.rng, self.truth
        ad_out: list[AdUser] = []
        entra_out: list[EntraUser] = []
        for _ in range(quota(ORPHAN_RATE, self.n)):
            seq = self._next()
            user = _ad_account(rng, f"ctr{seq:05d}", f"Former Contractor{seq}", CONTRACTOR_OU, enabled=True,
                               employee_id=f"X{seq:06d}", title="Contractor")
            user.last_logon = self.now - timedelta(days=rng.randrange(1, 200))
            ad_out.append(user)
            truth.add_drift(("o", seq), user.upn.lower(), F.ORPHANED_ACCOUNT, (System.AD,))
        for _ in range(quota(ORPHAN_RATE, self.n)):
            seq = self._next()
            member = _entra_account(rng, f"test.account{seq}", f"Test Account{seq}", self.now)
            entra_out.append(member)
            truth.add_drift(("o", seq), member.upn.lower(), F.ORPHANED_ACCOUNT, (System.ENTRA,))
        # look-alikes: a disabled orphan, and service accounts the default policy excludes
        seq = self._next()
        gone = _ad_account(rng, f"old{seq:05d}", f"Old Account{seq}", f"OU=Users,{BASE_DN}", enabled=False)
        ad_out.append(gone)
        truth.add_noise(("o", seq), gone.upn.lower(), F.ORPHANED_ACCOUNT, "disabled account of no worker")
        for sam, parent in (("svc-backup", SERVICE_OU), ("svc_reports", f"OU=Users,{BASE_DN}"),
                            (f"app{self._next():03d}", SERVICE_OU)):
            seq = self._next()
            service = _ad_account(rng, sam, f"Service {sam}", parent, enabled=True)
            ad_out.append(service)
            truth.add_noise(("o", seq), service.upn.lower(), F.ORPHANED_ACCOUNT,
                            "service account: excluded by the default policy (svc-*/svc_* or OU=Service Accounts)")
        seq = self._next()
        sync = _entra_account(rng, "svc-sync", "Directory Sync", self.now)
        entra_out.append(sync)
        truth.add_noise(("o", seq), sync.upn.lower(), F.ORPHANED_ACCOUNT, "service account (svc-*): excluded")
        return ad_out, entra_out

    def _candidates(self) -> list[int]:
        """Active workers with an enabled AD account that has signed in."""
        return [p.idx for p, user in zip(self.people, self.ad, strict=True)
                if p.active and user is not None and user.enabled and user.account_expires is None
                and user.last_logon is not None]

    def _busy(self, i: int) -> bool:
        return self.truth.busy(("p", i))

    def _second_account(self, rng: random.Random, i: int, suffix: str, mail: str, taken: set[str],
                        names: set[str]) -> AdUser | None:
        """Another AD account for worker ``i`` with the worker's own (Workday) values, named ``<sam><suffix>`` /
        ``<cn> (<suffix>)``, with ``mail``; None when the name is taken (a directory refuses a second entry)."""
        p, user = self.people[i], self.ad[i]
        assert user is not None
        sam = f"{user.sam[:19 - len(suffix)]}{suffix}"
        cn = f"{p.cn} ({suffix})"
        dn = f"CN={escape_dn_value(cn)},{split_rdn(user.dn)[1]}"
        upn = f"{sam}@{DOMAIN}"
        if sam.casefold() in taken or dn.casefold() in names or upn.casefold() in names:
            return None
        taken.add(sam.casefold())
        names |= {dn.casefold(), upn.casefold()}
        boss = self.people[p.manager] if p.manager is not None else None
        return replace(user, dn=dn, cn=cn, sam=sam, upn=upn, mail=mail, display_name=p.display, given_name=p.first,
                       sn=p.last, title=p.title, department=p.dept, manager_dn=boss.dn if boss else None,
                       proxy_addresses=[], object_guid=_guid(rng),
                       last_logon=self.now - timedelta(days=rng.randrange(1, 14)))

    def duplicates(self) -> list[AdUser]:
        """A second account per chosen worker, with the worker's own (Workday) values: only the ambiguity is drift,
        whatever else was planted on the first account."""
        out = []
        taken = {u.sam.casefold() for u in self.ad if u is not None}
        names = {n.casefold() for u in self.ad if u is not None for n in (u.dn, u.upn)}
        self.twinned: set[int] = set()
        for i in pick(self.rng, self._candidates(), quota(DUPLICATE_RATE, self.n), lambda _i: True, self._busy):
            p = self.people[i]
            twin = self._second_account(self.rng, i, "2", p.email, taken, names)
            if twin is None:
                continue
            out.append(twin)
            self.twinned.add(i)
            self.truth.add_drift(("p", i), p.email, F.AMBIGUOUS_ACCOUNT, (System.WORKDAY, System.AD))
        return out

    def crossed(self, seed: int) -> list[AdUser]:
        """An extra AD account per chosen worker X that carries X's employee id and X's values but another worker
        Y's mail, under a name of its own. It correlates to X by employee id and to Y by address: one account
        matching two workers (subject: its UPN), and X's second account (subject: X's email). Its own generator,
        so adding it moved none of the other plants."""
        rng = random.Random(f"crossed-{seed}")
        taken = {u.sam.casefold() for u in self.ad if u is not None}
        names = {n.casefold() for u in self.ad if u is not None for n in (u.dn, u.upn, u.mail or "")}
        out: list[AdUser] = []
        candidates = self._candidates()
        for i in pick(rng, candidates, quota(CROSSED_RATE, self.n), lambda i: not self._busy(i)):
            others = [j for j in candidates if j != i and not self._busy(j)]
            if not others:
                break
            p, y = self.people[i], self.people[rng.choice(others)]
            account = self._second_account(rng, i, "x", y.email, taken, names)
            if account is None:
                continue
            out.append(account)
            upn = account.upn
            self.truth.add_drift(("p", i), p.email, F.AMBIGUOUS_ACCOUNT, (System.WORKDAY, System.AD))
            self.truth.add_drift(("a", len(out)), upn.lower(), F.AMBIGUOUS_ACCOUNT, (System.WORKDAY, System.AD),
                                 workers=(p.email, y.email))
        return out

    def dormancy(self) -> None:
        rng, truth = self.rng, self.truth
        dormant: set[int] = set()
        for i in pick(rng, self._candidates(), quota(DORMANT_RATE, self.n), lambda i: i not in self.twinned,
                      self._busy):
            user = self.ad[i]
            assert user is not None
            user.last_logon = self.now - timedelta(days=rng.randrange(46, 400), seconds=rng.randrange(86400))
            truth.add_drift(("p", i), self.people[i].email, F.DORMANT_ACCOUNT, (System.AD,))
            dormant.add(i)
        for i in pick(rng, self._candidates(), quota(RECENT_NOISE_RATE, self.n), lambda i: i not in dormant,
                      self._busy):
            user = self.ad[i]
            assert user is not None
            days = rng.randrange(20, 31)  # 15 days of room: a simulator runs on after it generated the org
            user.last_logon = self.now - timedelta(days=days)
            truth.add_noise(("p", i), self.people[i].email, F.DORMANT_ACCOUNT,
                            f"last logon: {days} days ago, within 45 (lastLogonTimestamp lags up to 14 days)")


def plant_accounts(seed: int, people: list[Person], ad: list[AdUser | None], truth: Truth,
                   now: datetime) -> tuple[list[AdUser], list[EntraUser]]:
    """Plant dormancy on the workers' accounts; return the extra accounts (orphans, duplicates, look-alikes) to
    append to the AD and Entra lists."""
    planter = _AccountPlanter(seed, people, ad, truth, now)
    duplicates = planter.duplicates()
    planter.dormancy()
    extra_ad, extra_entra = planter.orphans()
    crossed = planter.crossed(seed)
    return [*duplicates, *extra_ad, *crossed], extra_entra


__all__ = ["plant_accounts"]
