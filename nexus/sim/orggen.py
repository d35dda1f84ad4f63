"""The synthetic organisation generator: every system's records, with planted drift and noise, and the truth.

``generate_org(people, seed, now)`` is deterministic: the same arguments give the same :class:`Org` (one
``random.Random(seed)`` draws everything, GUIDs included, and nothing iterates a hash-ordered set). All dates are
relative to ``now``.

Pipeline (each step in its own module):

1. :mod:`~nexus.sim.orggen_people`: the workforce and its hierarchy (CEO, heads, chains 3-5 deep per department,
   contractors at the leaves, ~10% leavers);
2. :func:`~nexus.sim.orggen_plant.plan_people`: shape decisions (workers without an account yet, mail aliases,
   leavers whose account stays enabled), then identities (mail, UPN, sAMAccountName, DN) and clean records;
3. :func:`~nexus.sim.orggen_plant.plant_people`: people noise, then people drift, edited into the records;
   then :mod:`~nexus.sim.orggen_ad`: AD's rough edges (another OU tree, ``Last\\, First`` DNs, expired-but-enabled
   leavers, lastLogonTimestamp), none of them drift;
4. :mod:`~nexus.sim.orggen_devices` then :mod:`~nexus.sim.orggen_plant_devices`: laptops, return tickets and
   shipments, then device noise and drift;
5. :mod:`~nexus.sim.orggen_accounts` (orphans, duplicates, AD dormancy) and :mod:`~nexus.sim.orggen_sign_ins`
   (Entra sign-ins and dormancy);
6. :mod:`~nexus.sim.orggen_graph`: the Graph tenant's rough edges (members without mail or employeeId, B2B guests,
   empty pages that still have a nextLink), drawn from a generator of their own so steps 1-4 are unchanged.

The ground truth (``Org.truth``) lists exactly what a correct engine reports (``drift``) and the differences it
must ignore (``noise``), per docs/drift-rules.md. Every kind is planted at every size, 10 people included:

- drift: job_title, department, manager, display_name (each in AD and in Entra), account_enabled (leaver enabled in
  AD, in Entra, or both: one entry per system), account_exists (no AD / no Entra account), device_owner (Intune,
  Lansweeper), last_sync, compliance, device_active, return_shipment (in transit / exception, or unknown to FedEx);
- noise, each entry's ``note`` starting with its kind: ``case:`` and ``spacing:`` (title, department, display
  name), ``unicode:`` (NFD display name), ``manager_format:`` (a sample: DN vs employee id vs object id, true for
  everyone), ``mail alias vs UPN:`` (field ``email`` for the person, ``device_owner`` for each of their laptops).

A subject never carries drift and noise on the same field, so "noise is not reported" can be checked per
(subject, field).
"""

from __future__ import annotations

import gc
import random
from datetime import UTC, datetime
from typing import Any

from nexus.sim.org_model import AdUser, EntraUser, Org
from nexus.sim.orggen_accounts import plant_accounts
from nexus.sim.orggen_ad import age_accounts, relocate
from nexus.sim.orggen_devices import build_devices, device_counts
from nexus.sim.orggen_graph import roughen_graph
from nexus.sim.orggen_ids import IdSource
from nexus.sim.orggen_inventory import plant_inventory
from nexus.sim.orggen_people import (
    BASE_DN,
    DOMAIN,
    assign_identities,
    build_identity_records,
    build_people,
    ensure_accented,
)
from nexus.sim.orggen_plant import plan_people, plant_people
from nexus.sim.orggen_plant_devices import leaver_devices_needed, plant_devices
from nexus.sim.orggen_sign_ins import plant_sign_ins
from nexus.sim.orggen_truth import Truth

__all__ = ["MAX_PEOPLE", "MIN_PEOPLE", "generate_org", "truth_json"]

MIN_PEOPLE = 10
MAX_PEOPLE = 100_000


def generate_org(people: int, seed: int, now: datetime | None = None) -> Org:
    """Generate an organisation of ``people`` workers (10..100000) from ``seed``.

    ``now`` defaults to the current UTC time; it is converted to UTC (a naive value is taken as UTC) and rounded
    down to the second.
    """
    if isinstance(people, bool) or not isinstance(people, int) or not MIN_PEOPLE <= people <= MAX_PEOPLE:
        raise ValueError(f"people must be an integer in {MIN_PEOPLE}..{MAX_PEOPLE}, got {people!r}")
    now = _utc_second(now)
    # Hundreds of thousands of records and no reference cycles: the cyclic collector would only rescan the growing
    # heap over and over (a fifth of the run time at 100k people). Paused here, restored on the way out.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(people, seed, now)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(people: int, seed: int, now: datetime) -> Org:
    rng = random.Random(seed)
    ids = IdSource(rng)
    staff = build_people(rng, people, now)
    plan = plan_people(rng, staff, now)
    ensure_accented(rng, staff)
    assign_identities(ids, staff)
    relocate(seed, staff)
    workday, ad, entra = build_identity_records(rng, staff)
    truth = Truth()
    plant_people(rng, staff, ad, entra, plan, truth)
    age_accounts(seed, staff, ad, now)

    counts = device_counts(rng, staff, leaver_devices_needed(people))
    dev = build_devices(rng, ids, staff, counts, now)
    plant_devices(rng, staff, dev, truth, now)
    extra = plant_inventory(seed, ids, staff, {d.serial for d in dev.intune}, truth, now)
    intune = [*dev.intune, *extra.intune]

    extra_ad, extra_entra = plant_accounts(seed, staff, ad, truth, now)
    plant_sign_ins(seed, staff, entra, truth, now)
    ad_users: list[AdUser] = [*(u for u in ad if u is not None), *extra_ad]
    entra_users: list[EntraUser] = [*(u for u in entra if u is not None), *extra_entra]
    subjects = [e["subject"] for e in (*truth.drift, *truth.noise)]
    empty_pages = roughen_graph(seed, entra_users, intune, subjects)
    return Org(
        seed=seed,
        people=people,
        generated_at=now,
        domain=DOMAIN,
        base_dn=BASE_DN,
        workday=workday,
        ad=ad_users,
        entra=entra_users,
        intune=intune,
        lansweeper=[*dev.lansweeper, *extra.lansweeper],
        helix_assets=dev.helix,
        helix_tickets=[t for t in dev.ticket if t is not None],
        fedex=[s for s in dev.shipment if s is not None],
        truth={"seed": seed, "people": people, "devices": len(dev.helix), "drift": truth.drift, "noise": truth.noise},
        graph_empty_pages=empty_pages,
    )


def truth_json(org: Org) -> dict[str, Any]:
    """The ground truth as JSON-ready data (a copy: callers may edit it freely)."""
    t = org.truth
    return {
        "seed": t["seed"],
        "people": t["people"],
        "devices": t["devices"],
        "drift": [{**e, "systems": list(e["systems"])} for e in t["drift"]],
        "noise": [dict(e) for e in t["noise"]],
    }


def _utc_second(now: datetime | None) -> datetime:
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0)
