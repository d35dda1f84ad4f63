"""The Graph tenant's rough edges: what a real Entra ID / Intune tenant holds that a tidy generator would not.

:func:`roughen_graph` edits the generated Entra users in place and returns the offsets of the empty pages:

* members without ``mail`` (cloud-only accounts without a mailbox) and members without ``employeeId`` (accounts
  created by hand, never stamped by HR provisioning), a few with neither. They are chosen among people nobody
  reports to, whose ``mail`` is their UPN and who are no subject of the ground truth, so each still correlates
  (by employee id, UPN or mail) and the truth is unchanged;
* B2B guests (``userType`` ``Guest``; UPN ``<address with _ for @>#EXT#@corpexample.onmicrosoft.com`` as Entra
  writes invited users; the invited address as ``mail``; no employee id, department or manager): other
  organisations' people, which the Entra client must not take for employees;
* empty pages that still have a nextLink (``Org.graph_empty_pages``): the first page of the user listing and one
  page somewhere in each listing; Graph's paging guide says "A page of results may contain zero or more results".

Its random draws come from a generator of their own (seeded from the org's seed), so the rest of the org is the
same with or without it.
"""

from __future__ import annotations

import random
from collections.abc import Collection

from nexus.sim.org_model import EntraUser, IntuneDevice
from nexus.sim.orggen_ids import IdSource

GUEST_TENANT = "corpexample.onmicrosoft.com"  # the tenant's initial domain: where #EXT# UPNs live
_PARTNERS = ("fabrikam.example", "contoso-partners.example", "northwind.example", "gmail.example")
_GUEST_NAMES = ("alex.kim", "sam.okafor", "jordan.lee", "maria.rossi", "tomas.novak", "aiko.tanaka", "li.wei",
                "noor.haddad", "pat.murphy", "ines.costa")
RATE = 0.02  # per kind of missing value: no mail, no employeeId


def guest_upn(address: str, tenant: str = GUEST_TENANT) -> str:
    """``pat@fabrikam.example`` -> ``pat_fabrikam.example#EXT#@corpexample.onmicrosoft.com``."""
    return f"{address.replace('@', '_')}#EXT#@{tenant}"


def roughen_graph(seed: int, entra: list[EntraUser], intune: list[IntuneDevice],
                  truth_subjects: Collection[str]) -> dict[str, list[int]]:
    """Blank some members' mail / employeeId, append guests, and return ``Org.graph_empty_pages``."""
    rng = random.Random(f"nexus-graph-rough-edges-{seed}")
    ids = IdSource(rng)
    managers = {u.manager_id for u in entra if u.manager_id}
    subjects = {s.casefold() for s in truth_subjects}
    plain = [u for u in entra if u.id not in managers and u.mail and u.mail == u.upn and u.employee_id
             and u.account_enabled and u.upn.casefold() not in subjects]
    rng.shuffle(plain)
    n = max(1, round(len(entra) * RATE)) if len(plain) >= 3 else 0
    for user in plain[:n]:
        user.mail = None
    for user in plain[n:2 * n]:
        user.employee_id = None
    for user in plain[2 * n:2 * n + max(1, n // 2)] if n else ():
        user.mail, user.employee_id = None, None
    for i in range(max(2, len(entra) // 40) if entra else 0):
        local = _GUEST_NAMES[i % len(_GUEST_NAMES)] + (str(i // len(_GUEST_NAMES)) if i >= len(_GUEST_NAMES) else "")
        address = f"{local}@{rng.choice(_PARTNERS)}"
        first, _, last = local.partition(".")
        entra.append(EntraUser(
            id=ids.guid(), upn=guest_upn(address), mail=address, display_name=f"{first.title()} {last.title()}",
            given_name=first.title(), surname=last.title(), job_title=None, department=None, employee_id=None,
            account_enabled=True, manager_id=None, user_type="Guest"))
    pages: dict[str, list[int]] = {}
    if entra:
        pages["users"] = sorted({0, rng.randrange(len(entra))})
    if intune:
        pages["deviceManagement/managedDevices"] = [rng.randrange(len(intune))]
    return pages


__all__ = ["GUEST_TENANT", "guest_upn", "roughen_graph"]
