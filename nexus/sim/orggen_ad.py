"""The rough edges of a real Active Directory, added to the generated org's AD accounts.

Drift-free by construction (the ground truth does not change): these are the shapes a client must read right, not
findings.

- **Another OU tree**: contractors live under ``OU=Contractors,OU=External Staff`` instead of their department's
  ``OU=Users`` (a common layout; the client searches the whole base DN).
- **Comma-escaped DNs**: a share of accounts are named ``CN=Last\\, First`` (the "Last, First" naming convention
  many domains use), so their DNs (and their reports' ``manager`` values) carry RFC 4514 escapes.
- **Expired but enabled**: some leavers' accounts were expired on their last day (``accountExpires``,
  https://learn.microsoft.com/en-us/windows/win32/adschema/a-accountexpires) but never disabled
  (``userAccountControl`` 512). A DC refuses their logon, so they are NOT an enabled account of a terminated
  worker (``account_enabled``): the client reads them as disabled.
- **lastLogonTimestamp** (https://learn.microsoft.com/en-us/windows/win32/adschema/a-lastlogontimestamp): within the
  last two weeks for active accounts (it replicates with up to ~14 days' lag), around the last day for leavers,
  and never (absent) for a few accounts.

Non-ASCII names are already there (:func:`nexus.sim.orggen_people.ensure_accented` and the name pools). Built-in
accounts (Administrator, Guest, krbtgt), the bind account and a computer are part of every simulated directory
(:mod:`nexus.sim.ldap_entries`), not of the org.

Uses its own random stream (derived from the seed), so the rest of the org is what it was without these edges.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, time, timedelta

from nexus.sim.org_model import AdUser
from nexus.sim.orggen_people import BASE_DN, Person

#: Where contractors' accounts live (another OU tree than the departments').
CONTRACTOR_OU = f"OU=Contractors,OU=External Staff,{BASE_DN}"
LAST_FIRST_SHARE = 0.1  # accounts named "Last, First"
EXPIRED_SHARE = 0.3  # disabled leavers' accounts that were expired instead of disabled (at least one)
NEVER_LOGGED_ON_SHARE = 0.02


def _escape(value: str) -> str:
    from clients.ad.dn import escape_dn_value

    return escape_dn_value(value)


def relocate(seed: int, people: Sequence[Person]) -> None:
    """Before the records are built: "Last, First" names and the contractors' OU (DNs only)."""
    rng = random.Random(f"ad-layout-{seed}")
    taken = {p.cn for p in people}
    for p in people:
        if rng.random() < LAST_FIRST_SHARE:
            cn = f"{p.last}, {p.first}"
            if cn not in taken:
                taken.add(cn)
                p.cn = cn
        parent = CONTRACTOR_OU if p.contractor else f"OU=Users,OU={_escape(p.dept)},{BASE_DN}"
        p.dn = f"CN={_escape(p.cn)},{parent}"


def age_accounts(seed: int, people: Sequence[Person], ad: Sequence[AdUser | None], now: datetime) -> None:
    """After drift is planted: lastLogonTimestamp for everyone, and expired-but-enabled leavers (only accounts that
    are disabled, i.e. carry no planted ``account_enabled`` drift)."""
    rng = random.Random(f"ad-age-{seed}")
    disabled_leavers: list[tuple[Person, AdUser]] = []
    for p, user in zip(people, ad, strict=True):
        if user is None:
            continue
        if rng.random() >= NEVER_LOGGED_ON_SHARE:
            if p.term is not None:
                last_day = datetime.combine(p.term, time(17), tzinfo=now.tzinfo)
                user.last_logon = last_day - timedelta(seconds=rng.randrange(0, 5 * 86400))
            else:
                user.last_logon = now - timedelta(seconds=rng.randrange(3600, 14 * 86400))
        if p.term is not None and not user.enabled:
            disabled_leavers.append((p, user))
    if not disabled_leavers:
        return
    count = max(1, round(len(disabled_leavers) * EXPIRED_SHARE))
    for p, user in rng.sample(disabled_leavers, count):
        assert p.term is not None
        user.enabled = True  # userAccountControl 512: never disabled...
        user.account_expires = datetime.combine(p.term + timedelta(days=1), time(0), tzinfo=now.tzinfo)  # ...expired


__all__ = ["CONTRACTOR_OU", "age_accounts", "relocate"]
