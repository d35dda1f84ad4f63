"""`nexus sim --org DIR`: an organisation read from export files instead of generated.

Each system's file is in that system's own export format, so an operator can replay an export of their tenant and
a tester can feed data its authors did not write. The result is the same :class:`~nexus.sim.org_model.Org` the
generator builds, so every simulator serves it unchanged.

=================  ==============================================================  ==================================
file               format                                                          parser
=================  ==============================================================  ==================================
``workday.json``   RaaS JSON report ``{"Report_Entry": [...]}``                    :mod:`~nexus.sim.org_import_people`
``ad.ldif``        LDIF (``ldifde`` / ``ldapsearch -LLL``, RFC 2849)               :mod:`~nexus.sim.org_import_ldif`
``entra.json``     Graph ``GET /v1.0/users`` collection ``{"value": [...]}``       :mod:`~nexus.sim.org_import_people`
``intune.json``    Graph ``GET /v1.0/deviceManagement/managedDevices`` collection  :mod:`~nexus.sim.org_import_devices`
``lansweeper.json`` ``assetResources`` ``{"items": [...]}``                        :mod:`~nexus.sim.org_import_devices`
``helix.json``     ``{"<form>": {"entries": [{"values": {...}}]}}``                :mod:`~nexus.sim.org_import_devices`
``fedex.json``     Track API ``output.completeTrackResults``                       :mod:`~nexus.sim.org_import_devices`
=================  ==============================================================  ==================================

A missing file is a system with no records (a directory with none of them is refused: it is a typo, not an org).
A file that cannot be read is one :class:`OrgImportError` naming the file and the line; nothing is served.

Time. The drift rules judge ages against the audit's clock (a device unsynced for 30 days is stale). An export is
a snapshot taken at ``exported_at``: every timestamp and date of the org is moved forward by the whole days between
``exported_at`` and ``now``, so the org is served as if exported today (a device last synced 3 days before the
export is 3 days stale in the audit). Whole days keep dates and timestamps in order (a termination date and a last
sync on the same day stay on the same day); ages are kept to within 12 hours. ``exported_at`` defaults to ``now``
(no shift). Graph's "unknown" date (year 1) is not moved.

What an export cannot tell: the ground truth (an imported org has none, so ``--truth`` is refused), the Graph
tenant's empty pages (none), and the credentials (the simulators' own, as for a generated org).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from clients.ad.dn import split_unescaped
from nexus.sim.ldap_entries import rdn_value
from nexus.sim.org_import_devices import (
    GRAPH_UNKNOWN_DATE,
    fedex_shipments,
    helix_records,
    intune_devices,
    lansweeper_assets,
)
from nexus.sim.org_import_json import Notes, OrgImportError, load_records
from nexus.sim.org_import_ldif import load_ad
from nexus.sim.org_import_people import entra_users, raas_fields, workday_workers
from nexus.sim.org_model import (
    AdUser,
    EntraUser,
    FedexShipment,
    HelixAsset,
    HelixReturnTicket,
    IntuneDevice,
    LansweeperAsset,
    Org,
    WorkdayWorker,
)
from nexus.sim.orggen_people import BASE_DN, DOMAIN
from nexus.workday_fields import parse_fields

R = TypeVar("R")

#: The files an org directory may hold, in the order they are read.
FILES = ("workday.json", "ad.ldif", "entra.json", "intune.json", "lansweeper.json", "helix.json", "fedex.json")


@dataclass(slots=True)
class ImportedOrg:
    org: Org
    files: list[str]  # the files that were read
    notes: list[str]  # what the operator should know (skipped built-ins, a nextLink left in an export...)


def parse_exported_at(text: str) -> datetime:
    """``--exported-at``: an ISO 8601 date or timestamp (naive: UTC). ValueError with a clear message."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--exported-at {text!r} is not an ISO 8601 date or timestamp "
                         "(2026-11-30 or 2026-11-30T09:00:00Z)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def load_org(directory: str | Path, *, exported_at: datetime | None = None,
             now: datetime | None = None) -> ImportedOrg:
    """Read every export file in ``directory`` into an :class:`Org` (see the module docstring)."""
    root = Path(directory)
    if not root.is_dir():
        raise OrgImportError(str(root), 0, "not a directory")
    present = [name for name in FILES if (root / name).is_file()]
    if not present:
        raise OrgImportError(str(root), 0, f"holds none of the export files ({', '.join(FILES)})")
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    notes = Notes([])

    def read(name: str, convert: Callable[[Any], R], empty: R) -> R:
        path = root / name
        if not path.is_file():
            return empty
        try:
            return load_records(path, convert)
        except OSError as exc:
            raise OrgImportError(name, 0, f"cannot be read: {exc.strerror or exc}") from None

    # the report's field names as the clients are told them (NEXUS_WORKDAY_FIELDS), like the Workday simulator
    names = raas_fields(parse_fields(os.environ.get("NEXUS_WORKDAY_FIELDS", "")))
    workday: list[WorkdayWorker] = read("workday.json", lambda doc: workday_workers(doc, names), [])
    ad: list[AdUser] = []
    base_dn: str | None = None
    if (root / "ad.ldif").is_file():
        try:
            ad, base_dn = load_ad(root / "ad.ldif", notes)
        except OSError as exc:
            raise OrgImportError("ad.ldif", 0, f"cannot be read: {exc.strerror or exc}") from None
    entra: list[EntraUser] = read("entra.json", lambda d: entra_users(d, notes), [])
    intune: list[IntuneDevice] = read("intune.json", lambda d: intune_devices(d, notes), [])
    lansweeper: list[LansweeperAsset] = read("lansweeper.json", lansweeper_assets, [])
    no_helix: tuple[list[HelixAsset], list[HelixReturnTicket]] = ([], [])
    helix = read("helix.json", lambda d: helix_records(d, notes), no_helix)
    helix_assets, helix_tickets = helix
    fedex: list[FedexShipment] = read("fedex.json", fedex_shipments, [])
    base_dn = base_dn or BASE_DN
    org = Org(
        seed=0, people=len(workday), generated_at=now, domain=_domain(base_dn) or DOMAIN, base_dn=base_dn,
        workday=workday, ad=ad, entra=entra, intune=intune, lansweeper=lansweeper, helix_assets=helix_assets,
        helix_tickets=helix_tickets, fedex=fedex, truth={}, graph_empty_pages={},
    )
    if exported_at is not None:
        days = round((now - exported_at.astimezone(UTC)).total_seconds() / 86400)
        if days:
            shift_org(org, timedelta(days=days))
    return ImportedOrg(org, present, notes.lines)


def _domain(base_dn: str) -> str:
    """``DC=corp,DC=example`` -> ``corp.example``."""
    return ".".join(rdn_value(rdn) for rdn in split_unescaped(base_dn, ",") if rdn.strip().lower().startswith("dc="))


def shift_org(org: Org, delta: timedelta) -> None:
    """Move every date and timestamp of ``org`` by ``delta`` (whole days), in place."""
    for records in (org.workday, org.ad, org.entra, org.intune, org.lansweeper, org.helix_tickets, org.fedex):
        for record in records:
            changes = {f.name: _shifted(getattr(record, f.name), delta) for f in dataclasses.fields(record)
                       if isinstance(getattr(record, f.name), date)}
            for name, value in changes.items():
                setattr(record, name, value)


def _shifted(value: date, delta: timedelta) -> date:
    if isinstance(value, datetime) and value.year == GRAPH_UNKNOWN_DATE.year:
        return value
    try:
        return value + delta
    except OverflowError:  # a "never" far in the future (or a sentinel near year 1): not a real moment
        return value


__all__ = ["FILES", "ImportedOrg", "OrgImportError", "load_org", "parse_exported_at", "shift_org"]
