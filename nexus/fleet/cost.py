"""When a bulk audit of a list of people is cheaper as a snapshot of the people systems than person by person.

The per-person path sends about :data:`PER_PERSON_REQUESTS` requests per email (a Workday report lookup, an AD
search and a manager read, an Entra filter query). A snapshot of Workday, AD and Entra costs their page counts,
known from the last good snapshots' sizes (the guard's memory). ``NEXUS_FLEET_BULK_SNAPSHOT``: ``auto`` switches
when the list costs more requests than the snapshot (and stays per person while no size is known yet),
``always``/``never`` force one path.
"""

from __future__ import annotations

import math

from nexus.fleet.store import SnapshotStore

#: Requests per email on the per-person path (Workday 1, AD about 2 with the manager read, Entra 1), rounded down.
PER_PERSON_REQUESTS = 3
#: Page sizes of the people listings (clients' maxima).
PEOPLE_PAGE_SIZES = {"workday": 100, "ad": 1000, "entra": 999}


def snapshot_requests(store: SnapshotStore) -> int | None:
    """Pages of a people snapshot, from the last good sizes; None while any is unknown."""
    total = 0
    for stream, size in PEOPLE_PAGE_SIZES.items():
        good = store.last_good(stream)
        if good is None:
            return None
        total += max(1, math.ceil(good["records"] / size))
    return total


def prefer_snapshot(emails: int, mode: str, store: SnapshotStore) -> bool:
    if mode == "always":
        return True
    if mode == "never":
        return False
    pages = snapshot_requests(store)
    return pages is not None and emails * PER_PERSON_REQUESTS > pages


__all__ = ["PEOPLE_PAGE_SIZES", "PER_PERSON_REQUESTS", "prefer_snapshot", "snapshot_requests"]
