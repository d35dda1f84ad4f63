"""One adapter entry per system: how to build its client, what it can be asked, and what a fleet audit pages.

Everything outside this table that needs to know about "each system" reads it: the fetch and snapshot tasks (one
Celery task per entry, routed to the system's queue), the lookups (by role), the fleet's listing streams and chord,
the health check and the fault drill. Adding a system means: its id and display name in :mod:`nexus.systems`, a
client module in ``clients/`` (implementing the roles of :mod:`clients.roles`), a simulator in ``nexus/sim/``, an
entry here, and its connection settings in :mod:`nexus.settings` (and ``.env.example``).

Streams: ``cursor`` chains follow the page's own next cursor one page at a time (Graph's ``@odata.nextLink``,
Lansweeper's ``pagination.next``, the LDAP paging cookie; Workday's RaaS report, ONE request whose records the
listing hands out as chunks of ``page_size``, so a 100k-worker report is stored as 100 pages, not one); ``offset``
pages are fetched with bounded concurrency (page ``i`` at offset ``i * page_size``: Helix AR REST); ``derived``
streams get their subjects from another system's snapshot (FedEx tracks the numbers of Helix's return tickets, so
it runs ``after`` Helix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from clients.ad import ADClient
from clients.entra import PAGE_SIZE as ENTRA_PAGE_SIZE
from clients.entra import EntraClient
from clients.fedex import MAX_PER_REQUEST, FedexClient
from clients.helix import PAGE_SIZE as HELIX_PAGE_SIZE
from clients.helix import HelixClient
from clients.intune import PAGE_SIZE as INTUNE_PAGE_SIZE
from clients.intune import IntuneClient
from clients.lansweeper import MAX_PAGE_SIZE as LANSWEEPER_PAGE_SIZE
from clients.lansweeper import LansweeperClient
from clients.workday import REPORT_CHUNK as WORKDAY_CHUNK
from clients.workday import WorkdayClient
from nexus.models import KIND_DEVICE, KIND_PERSON, KIND_SHIPMENT, KIND_TICKET
from nexus.settings import Settings
from nexus.systems import Role, System

CURSOR = "cursor"
OFFSET = "offset"
DERIVED = "derived"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One listing of one system in a fleet audit (Helix has two: its assets and its return tickets)."""

    name: str
    kind: str  # the record kind it holds (nexus.models KIND_*)
    mode: str  # CURSOR | OFFSET | DERIVED
    page_size: int | None = None  # None: the client's own ``page_size`` (AD's LDAP page)
    fetch: str = "fetch_page"  # the client's one-request page method
    listing: str | None = None  # or: a client method opening a listing of its own (``fetch_page`` + ``close``),
    #                             for chains whose paging state lives on one connection (AD's paging cookie)


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """Everything Nexus needs to know about one system beyond its client module."""

    system: System
    build: Callable[..., Any]  # the client class: (settings, **runtime options)
    streams: tuple[StreamSpec, ...] = ()
    after: System | None = None  # fleet audits: runs once this system's snapshot is in (its subjects come from it)

    @property
    def display(self) -> str:
        return self.system.display

    @property
    def queue(self) -> str:
        return self.system.value

    @property
    def fetch_task(self) -> str:
        return f"nexus.fetch_{self.system.value}"

    @property
    def snapshot_task(self) -> str:
        return f"nexus.snapshot_{self.system.value}"

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(stream.name for stream in self.streams)

    @property
    def roles(self) -> frozenset[Role]:
        return self.system.roles

    def has(self, role: Role) -> bool:
        return role in self.system.roles


def _entry(system: System, build: Callable[[Settings], Any], *streams: StreamSpec,
           after: System | None = None) -> SystemSpec:
    return SystemSpec(system, build, tuple(streams), after)


SPECS: dict[System, SystemSpec] = {spec.system: spec for spec in (
    _entry(System.WORKDAY, WorkdayClient, StreamSpec("workday", KIND_PERSON, CURSOR, WORKDAY_CHUNK, listing="listing")),
    _entry(System.AD, ADClient, StreamSpec("ad", KIND_PERSON, CURSOR, None, listing="listing")),
    _entry(System.ENTRA, EntraClient, StreamSpec("entra", KIND_PERSON, CURSOR, ENTRA_PAGE_SIZE)),
    _entry(System.INTUNE, IntuneClient, StreamSpec("intune", KIND_DEVICE, CURSOR, INTUNE_PAGE_SIZE)),
    _entry(System.LANSWEEPER, LansweeperClient, StreamSpec("lansweeper", KIND_DEVICE, CURSOR, LANSWEEPER_PAGE_SIZE)),
    _entry(System.HELIX, HelixClient,
           StreamSpec("helix", KIND_DEVICE, OFFSET, HELIX_PAGE_SIZE),
           StreamSpec("helix_tickets", KIND_TICKET, OFFSET, HELIX_PAGE_SIZE, fetch="fetch_ticket_page")),
    _entry(System.FEDEX, FedexClient, StreamSpec("fedex", KIND_SHIPMENT, DERIVED, MAX_PER_REQUEST),
           after=System.HELIX),
)}


def spec(system: System | str) -> SystemSpec:
    return SPECS[System.parse(str(system))]


def specs() -> Iterator[SystemSpec]:
    """Every entry, in report order."""
    return iter(SPECS.values())


def listed_systems() -> tuple[System, ...]:
    """Systems a fleet audit snapshots (every one with a stream), in report order."""
    return tuple(s.system for s in SPECS.values() if s.streams)


#: stream name -> its spec and its system
STREAMS: dict[System, tuple[str, ...]] = {s.system: s.stream_names for s in SPECS.values()}
STREAM_SPECS: dict[str, StreamSpec] = {st.name: st for s in SPECS.values() for st in s.streams}
STREAM_SYSTEM: dict[str, System] = {st.name: s.system for s in SPECS.values() for st in s.streams}
STREAM_KIND: dict[str, str] = {name: st.kind for name, st in STREAM_SPECS.items()}


__all__ = ["CURSOR", "DERIVED", "OFFSET", "SPECS", "STREAMS", "STREAM_KIND", "STREAM_SPECS", "STREAM_SYSTEM",
           "StreamSpec", "SystemSpec", "listed_systems", "spec", "specs"]
