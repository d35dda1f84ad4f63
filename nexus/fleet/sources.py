"""What each snapshot stream pages through: the clients' one-request steps, described for the snapshot runner.

Two shapes:

- ``cursor``: a chain, each page naming the next (Graph's ``@odata.nextLink``, Lansweeper's ``pagination.next``,
  the LDAP paging cookie). Followed one page at a time; the checkpoint is the next page's cursor.
- ``offset``: page ``i`` is at offset ``i * page_size`` (Workday REST, Helix AR REST, FedEx tracking chunks), so
  pages are fetched with bounded concurrency once their count is known (Workday's ``total``; FedEx's number list)
  or, when the system gives no count (Helix), with a speculative window that ends at the first page without a
  ``next`` link.

LDAP is the one chain whose cursor does not survive its connection (RFC 2696: the server keeps a paged search's
state per connection; OpenLDAP and AD both do). Each AD source follows a listing of its own
(:class:`clients.ad.listing.LdapListing`, which owns that connection); a cursor presented to a listing that no longer
holds it raises :class:`clients.ad.listing.ListingLost`, and the runner restarts that stream (cheap: AD pages are
1,000 entries on a LAN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clients.paging import Page
from nexus.fleet import codec
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


def workday_source(client: Any) -> Source:
    from clients.workday import PAGE_MAX

    return Source("workday", System.WORKDAY, codec.PERSON, "offset", PAGE_MAX, client.fetch_page,
                  _offset_fetch(client.fetch_page, PAGE_MAX))


def entra_source(client: Any) -> Source:
    from clients._graph import MAX_PAGE_SIZE

    return Source("entra", System.ENTRA, codec.PERSON, "cursor", MAX_PAGE_SIZE, client.fetch_page)


def intune_source(client: Any) -> Source:
    from clients._graph import MAX_PAGE_SIZE

    return Source("intune", System.INTUNE, codec.DEVICE, "cursor", MAX_PAGE_SIZE, client.fetch_page)


def lansweeper_source(client: Any) -> Source:
    from clients.lansweeper import MAX_PAGE_SIZE

    return Source("lansweeper", System.LANSWEEPER, codec.DEVICE, "cursor", MAX_PAGE_SIZE, client.fetch_page)


def helix_sources(client: Any) -> list[Source]:
    from clients.helix import PAGE_SIZE

    return [
        Source("helix", System.HELIX, codec.DEVICE, "offset", PAGE_SIZE, client.fetch_page,
               _offset_fetch(client.fetch_page, PAGE_SIZE)),
        Source("helix_tickets", System.HELIX, codec.TICKET, "offset", PAGE_SIZE, client.fetch_ticket_page,
               _offset_fetch(client.fetch_ticket_page, PAGE_SIZE)),
    ]


def fedex_source(client: Any, numbers: Sequence[str]) -> Source:
    """Tracking as pages: chunk ``i`` is numbers ``[i*30, (i+1)*30)`` (FedEx's per-request maximum)."""
    from clients.fedex import MAX_PER_REQUEST

    def fetch_index(index: int) -> Page[Any]:
        chunk = list(numbers[index * MAX_PER_REQUEST:(index + 1) * MAX_PER_REQUEST])
        found = client.track(chunk) if chunk else {}
        return Page(list(found.values()), None, len(numbers))

    def fetch(cursor: str | None) -> Page[Any]:
        return fetch_index(int(cursor or 0) // MAX_PER_REQUEST)

    pages = math.ceil(len(numbers) / MAX_PER_REQUEST)
    return Source("fedex", System.FEDEX, codec.SHIPMENT, "offset", MAX_PER_REQUEST, fetch, fetch_index,
                  total_pages=pages)


def ad_source(client: Any) -> Source:
    """AD's person listing on a connection of its own (``ADClient.listing``), closed when the run ends."""
    listing = client.listing()
    return Source("ad", System.AD, codec.PERSON, "cursor", client.page_size, listing.fetch_page, close=listing.close)


#: The streams each system's snapshot task takes (FedEx's list comes from the Helix tickets).
STREAMS: dict[System, tuple[str, ...]] = {
    System.WORKDAY: ("workday",),
    System.AD: ("ad",),
    System.ENTRA: ("entra",),
    System.INTUNE: ("intune",),
    System.LANSWEEPER: ("lansweeper",),
    System.HELIX: ("helix", "helix_tickets"),
    System.FEDEX: ("fedex",),
}

STREAM_KIND: dict[str, str] = {
    "workday": codec.PERSON, "ad": codec.PERSON, "entra": codec.PERSON, "intune": codec.DEVICE,
    "lansweeper": codec.DEVICE, "helix": codec.DEVICE, "helix_tickets": codec.TICKET, "fedex": codec.SHIPMENT,
}

STREAM_SYSTEM: dict[str, System] = {stream: system for system, streams in STREAMS.items() for stream in streams}


def sources_for(system: System, client: Any) -> list[Source]:
    """The listing streams of ``system`` (not FedEx: see :func:`fedex_source`)."""
    if system is System.WORKDAY:
        return [workday_source(client)]
    if system is System.AD:
        return [ad_source(client)]
    if system is System.ENTRA:
        return [entra_source(client)]
    if system is System.INTUNE:
        return [intune_source(client)]
    if system is System.LANSWEEPER:
        return [lansweeper_source(client)]
    if system is System.HELIX:
        return helix_sources(client)
    raise ValueError(f"{system.display} has no listing")


__all__ = ["STREAMS", "STREAM_KIND", "STREAM_SYSTEM", "Source", "sources_for"]
