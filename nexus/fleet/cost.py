"""When a bulk audit of a list of people is cheaper as a snapshot of the people systems than person by person.

The per-person path sends about :data:`PER_PERSON_REQUESTS` requests per email (a Workday report lookup, an AD
search and a manager read, an Entra filter query). A snapshot of Workday, AD and Entra costs ONE request for
Workday (its RaaS report, however many workers) plus the page counts of AD and Entra, known from the last good
snapshots' sizes (the guard's memory). ``NEXUS_FLEET_BULK_SNAPSHOT``: ``auto`` switches
when the list costs more requests than the snapshot (and stays per person while no size is known yet),
``always``/``never`` force one path.
"""

from __future__ import annotations

import math

from clients.entra import PAGE_SIZE as ENTRA_PAGE_SIZE
from nexus.fleet.store import SnapshotStore

#: Requests per email on the per-person path (Workday 1, AD about 2 with the manager read, Entra 1), rounded down.
PER_PERSON_REQUESTS = 3
#: Page sizes of the people listings, as the clients page them (None: one request, whatever the size: Workday's
#: report). Entra's is Graph's ``$expand`` cap (100 users a page, whatever ``$top`` asks: the listing expands the
#: manager), not the 999 of ``$top``; see clients/_graph.py.
PEOPLE_PAGE_SIZES: dict[str, int | None] = {"workday": None, "ad": 1000, "entra": ENTRA_PAGE_SIZE}


def snapshot_requests(store: SnapshotStore) -> int | None:
    """Requests of a people snapshot, from the last good sizes; None while any is unknown."""
    total = 0
    for stream, size in PEOPLE_PAGE_SIZES.items():
        good = store.last_good(stream)
        if good is None:
            return None
        total += 1 if size is None else max(1, math.ceil(good["records"] / size))
    return total


def prefer_snapshot(emails: int, mode: str, store: SnapshotStore) -> bool:
    if mode == "always":
        return True
    if mode == "never":
        return False
    pages = snapshot_requests(store)
    return pages is not None and emails * PER_PERSON_REQUESTS > pages


__all__ = ["PEOPLE_PAGE_SIZES", "PER_PERSON_REQUESTS", "prefer_snapshot", "snapshot_requests"]
