"""What each snapshot stream pages through: the clients' one-request steps, described for the snapshot runner.

Two shapes:

- ``cursor``: a chain, each page naming the next (Graph's ``@odata.nextLink``, Lansweeper's ``pagination.next``,
  the LDAP paging cookie, a chunk of Workday's one-request RaaS report). Followed one page at a time; the
  checkpoint is the next page's cursor.
- ``offset``: page ``i`` is at offset ``i * page_size`` (Helix AR REST, FedEx tracking chunks), so pages are
  fetched with bounded concurrency once their count is known (FedEx's number list) or, when the system gives no
  count (Helix), with a speculative window that ends at the first page without a ``next`` link.

LDAP is the one chain whose cursor does not survive its connection (RFC 2696: the server keeps a paged search's
state per connection; OpenLDAP and AD both do). Its stream opens a listing of its own per run
(:meth:`clients.ad.ADClient.listing`), which owns that connection; a cursor presented to a listing that no longer
holds it raises :class:`nexus.errors.ListingLost`, and the runner restarts that stream (cheap: AD pages are 1,000
entries on a LAN). Workday's report listing (:class:`clients.workday.ReportListing`) is the same kind of chain: its
records live in the process that read the report, so a retried task's cursor raises ``ListingLost`` and the stream
restarts with the one report request. Which shape each system's streams have is its registry entry
(:mod:`nexus.registry`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clients.paging import Page
from nexus.registry import CURSOR, DERIVED, OFFSET, SPECS, StreamSpec
from nexus.systems import System


@dataclass(slots=True)
class Source:
    """One stream of one system."""

    stream: str
    system: System
    kind: str  # codec kind: person | device | ticket | shipment
    mode: str  # "cursor" | "offset"
    page_size: int
    fetch: Callable[[str | None], Page[Any]]  # cursor mode: the page the cursor names (None: the first)
    fetch_index: Callable[[int], Page[Any]] | None = None  # offset mode: page i
    total_pages: int | None = None  # offset mode, when known before the first page (FedEx)
    close: Callable[[], None] | None = None


def _offset_fetch(fetch_page: Callable[..., Page[Any]], page_size: int) -> Callable[[int], Page[Any]]:
    def fetch(index: int) -> Page[Any]:
        return fetch_page(str(index * page_size), page_size)

    return fetch


def derived_source(system: System, client: Any, numbers: Sequence[str]) -> Source:
    """A derived stream as pages: chunk ``i`` is numbers ``[i*n, (i+1)*n)``, ``n`` the system's per-request
    maximum (FedEx tracks at most 30 numbers a request)."""
    stream = SPECS[system].streams[0]
    size = stream.page_size or 1

    def fetch_index(index: int) -> Page[Any]:
        chunk = list(numbers[index * size:(index + 1) * size])
        found = client.track(chunk) if chunk else {}
        return Page(list(found.values()), None, len(numbers))

    def fetch(cursor: str | None) -> Page[Any]:
        return fetch_index(int(cursor or 0) // size)

    pages = math.ceil(len(numbers) / size)
    return Source(stream.name, system, stream.kind, "offset", size, fetch, fetch_index, total_pages=pages)


def fedex_source(client: Any, numbers: Sequence[str]) -> Source:
    """FedEx's tracking of ``numbers`` (chunks of 30, FedEx's per-request maximum)."""
    return derived_source(System.FEDEX, client, numbers)


def _source(system: System, stream: StreamSpec, client: Any) -> Source:
    if stream.mode == DERIVED:
        raise ValueError(f"{stream.name} is derived from another system's snapshot: see derived_source")
    if stream.listing is not None:  # a listing of its own for this run (its paging state is server-side)
        listing = getattr(client, stream.listing)()
        fetch_page, close = listing.fetch_page, listing.close
    else:
        fetch_page, close = getattr(client, stream.fetch), None
    page_size = stream.page_size or int(client.page_size)
    if stream.mode == OFFSET:
        return Source(stream.name, system, stream.kind, OFFSET, page_size, fetch_page,
                      _offset_fetch(fetch_page, page_size), close=close)
    return Source(stream.name, system, stream.kind, CURSOR, page_size, fetch_page, close=close)


def sources_for(system: System, client: Any) -> list[Source]:
    """The listing streams of ``system``, as its registry entry describes them (not derived ones: FedEx)."""
    streams = [s for s in SPECS[system].streams if s.mode != DERIVED]
    if not streams:
        raise ValueError(f"{system.display} has no listing")
    return [_source(system, stream, client) for stream in streams]


__all__ = ["Source", "derived_source", "fedex_source", "sources_for"]
