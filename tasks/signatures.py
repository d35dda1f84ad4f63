"""The chords an audit is made of, built from the registry and task NAMES (no task module imports another).

    user / bulk part:  chord([fetch_<s>("people", emails) for each people directory], compare.people)
                       then its follow-up rounds (nexus.audits.followup: the employee ids and addresses the
                       records found name and nobody has asked for yet), each one
                       chord([fetch_<s>("people_followup", refs) ...], compare.people(stage=n))
    device, stage 1:   chord([fetch_<s>("devices", [serial]) for each device inventory], compare.device_stage2)
    device, stage 2:   chord([fetch_<s>("people", refs)...] + [fetch_fedex("track", numbers)], compare.device)
    fleet:             chord([chord([snapshot_<s> for each people directory], compare.fleet_people),
                              snapshot_<s> for each other listed system,
                              chain(snapshot_helix, snapshot_fedex)    # a system runs ``after`` the one it needs
                             ], compare.fleet)

Every dispatcher marks what it published AFTER publishing (:meth:`AuditStore.mark`): a dispatcher killed in between
leaves the work to its redelivered task, which publishes it again (a duplicate only repeats lookups: results are
stored once). A mark taken before the publish would leave the audit waiting forever (tests/test_worker_death.py).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import chain, chord
from celery.canvas import Signature

from nexus.audits.store import AuditStore
from nexus.fleet.conclude import audit_systems
from nexus.lookups import FOLLOWUP_OP
from nexus.registry import SPECS, listed_systems
from nexus.systems import DEVICE_INVENTORIES, USER_SYSTEMS, Role, System, systems_with
from workers.app import celery_app

log = logging.getLogger("nexus.tasks")

COMPARE_PEOPLE = "nexus.compare.people"
DEVICE_STAGE2 = "nexus.compare.device_stage2"
COMPARE_DEVICE = "nexus.compare.device"
COMPARE_FLEET_PEOPLE = "nexus.compare.fleet_people"
COMPARE_FLEET = "nexus.compare.fleet"
REMEDIATE = "nexus.compare.remediate"


def task(name: str, *args: Any, immutable: bool = False) -> Signature:
    return celery_app.signature(name, args=args, immutable=immutable)


def fetch(system: System, audit_id: str, op: str, subjects: list[str]) -> Signature:
    return task(SPECS[system].fetch_task, audit_id, op, subjects)


# -- user and bulk audits ---------------------------------------------------------------------------------------------
def people_part_signature(audit_id: str, part: int, total_parts: int, emails: list[str], chunk_size: int) -> Any:
    header = [fetch(s, audit_id, "people", emails) for s in USER_SYSTEMS]
    return chord(header, task(COMPARE_PEOPLE, audit_id, part, total_parts, chunk_size))


def dispatch_people_followup(store: AuditStore, audit_id: str, part: int, total_parts: int, chunk_size: int,
                             stage: int, refs: dict[str, list[str]]) -> bool:
    """Follow-up round ``stage - 1`` of a people part (stage 1 is the first lookups): each system asked for the
    references :func:`nexus.audits.followup.next_round` chose for it. Once."""
    mark = f"dispatched:{part}:stage{stage}"
    if store.is_marked(audit_id, mark):
        return False
    header = [fetch(s, audit_id, FOLLOWUP_OP, refs[s.value]) for s in USER_SYSTEMS if refs.get(s.value)]
    chord(header, task(COMPARE_PEOPLE, audit_id, part, total_parts, chunk_size, stage)).apply_async()
    store.mark(audit_id, mark)
    return True


def dispatch_people_part(store: AuditStore, audit_id: str, part: int, default_chunk_size: int,
                         subjects_count: int | None = None) -> bool:
    """Enqueue one part, once (a redelivered task that dispatches again is a no-op). ``subjects_count`` saves a
    read when the caller already has the audit's meta."""
    size = store.chunk_size(audit_id, default_chunk_size)
    total = store.meta(audit_id)["subjects_count"] if subjects_count is None else subjects_count
    total_parts = max(1, -(-total // size))
    if part >= total_parts:
        return False
    mark = f"dispatched:{part}"
    if store.is_marked(audit_id, mark):
        return False
    emails = store.subjects(audit_id, part * size, part * size + size - 1)
    people_part_signature(audit_id, part, total_parts, emails, size).apply_async()
    store.mark(audit_id, mark)
    return True


# -- device audits --------------------------------------------------------------------------------------------------
def start_device_audit(store: AuditStore, audit_id: str) -> dict[str, Any]:
    serials = store.subjects(audit_id)
    store.set_total(audit_id, 2)  # two stages
    header = [fetch(s, audit_id, "devices", serials) for s in DEVICE_INVENTORIES]
    chord(header, task(DEVICE_STAGE2, audit_id)).apply_async()
    return {"audit_id": audit_id, "stage": 1}


def dispatch_device_stage2(store: AuditStore, audit_id: str, refs: list[str], numbers: list[str]) -> bool:
    """Stage 2 of a device audit: the people its records name, the shipments its tickets name. Once."""
    mark = "dispatched:stage2"
    if store.is_marked(audit_id, mark):
        return False  # a redelivered stage 1: stage 2 is already on its way
    header = [fetch(s, audit_id, "people", refs) for s in USER_SYSTEMS] if refs else []
    if numbers:
        header += [fetch(s, audit_id, "track", numbers) for s in systems_with(Role.SHIPMENTS)]
    if not header:
        task(COMPARE_DEVICE, [], audit_id).apply_async()
    else:
        chord(header, task(COMPARE_DEVICE, audit_id)).apply_async()
    store.mark(audit_id, mark)
    return True


# -- fleet audits ---------------------------------------------------------------------------------------------------
def _snapshot(system: System, audit_id: str, *, after: bool = False) -> Signature:
    """A snapshot task's signature. One that runs after another receives that one's marker first (a chain), so its
    signature is partial; the others ignore what precedes them."""
    return task(SPECS[system].snapshot_task, audit_id, immutable=not after)


def fleet_canvas(audit_id: str, kind: str) -> Any:
    people = [_snapshot(s, audit_id) for s in USER_SYSTEMS]
    if kind == "bulk":
        return chord(people, task(COMPARE_FLEET, audit_id))
    # the people part of the comparison starts as soon as the people systems are in, while the device systems
    # are still paging (Lansweeper's budget makes it the longest chain)
    header: list[Any] = [chord(people, task(COMPARE_FLEET_PEOPLE, audit_id))]
    dependants = {SPECS[s].after: s for s in listed_systems() if SPECS[s].after is not None}
    for system in listed_systems():
        if system in USER_SYSTEMS or SPECS[system].after is not None:
            continue
        if system in dependants:
            header.append(chain(_snapshot(system, audit_id), _snapshot(dependants[system], audit_id, after=True)))
        else:
            header.append(_snapshot(system, audit_id))
    return chord(header, task(COMPARE_FLEET, audit_id))


def start_fleet(store: AuditStore, audit_id: str) -> dict[str, Any]:
    """Enqueue the snapshot chord of a fleet audit (or of a bulk audit switched to snapshots). Idempotent."""
    kind = store.meta(audit_id)["kind"]
    systems = audit_systems(kind)
    if store.is_marked(audit_id, "fleet_started"):
        return {"audit_id": audit_id, "duplicate": True}
    store.set_total(audit_id, len(systems))
    fleet_canvas(audit_id, kind).apply_async()
    store.mark(audit_id, "fleet_started")
    log.info("%s audit %s: snapshots of %s", kind, audit_id, ", ".join(s.display for s in systems),
             extra={"audit_id": audit_id})
    return {"audit_id": audit_id, "snapshots": [s.value for s in systems]}


def publish_remediation(audit_id: str) -> None:
    """Publish the remediation task (raises when the broker refuses: :func:`tasks.guards.enqueue_remediation` is the
    guarded form every chord body uses)."""
    task(REMEDIATE, audit_id).apply_async(retry=False)
