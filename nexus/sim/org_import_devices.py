"""Devices, tickets and shipments from export files: Intune, Lansweeper, Helix and FedEx, each in its API's shape.

- ``intune.json``: ``GET /v1.0/deviceManagement/managedDevices`` -> ``{"value": [...]}`` (``@odata.*`` keys
  tolerated; Graph's "List managedDevices", https://learn.microsoft.com/en-us/graph/api/intune-devices-manageddevice-list).
  Required: ``id``, ``serialNumber``, ``lastSyncDateTime``. An absent ``enrolledDateTime`` is served as
  ``0001-01-01T00:00:00Z``, Graph's own "unknown" date.
- ``lansweeper.json``: the ``items`` of ``site(id) { assetResources(fields: [...]) { items } }`` with the field
  paths Nexus asks for (:data:`clients.lansweeper.ASSET_FIELDS`): ``{"items": [{"key", "assetBasicInfo": {"name",
  "type", "userName", "userDomain", "lastSeen", "ipAddress"}, "assetCustom": {"serialNumber", "model",
  "manufacturer"}}]}``. Required: ``key``, ``assetCustom.serialNumber``, ``assetBasicInfo.lastSeen``.
- ``helix.json``: per form, what ``GET /api/arsys/v1/entry/{form}`` answers: ``{"AST:ComputerSystem": {"entries":
  [{"values": {...}}]}, "HPD:Help Desk": {"entries": [...]}}`` (field names as in :mod:`nexus.sim.helix_forms`).
  Assets need ``Reconciliation Identity`` and ``Serial Number``; tickets need ``Incident Number``, and only those
  with a ``Serial Number`` are return tickets (the others are counted in a note and left out: the simulator's
  ticket form holds return tickets).
- ``fedex.json``: the Track API's ``output.completeTrackResults`` (the whole answer ``{"output": {...}}``, the
  ``{"completeTrackResults": [...]}`` object, or a list of either, one per request of at most 30 numbers). A
  result with ``error`` (``TRACKING.TRACKINGNUMBER.NOTFOUND``) is a number FedEx does not know: left out, which is
  exactly how the simulator then answers it. Others need ``latestStatusDetail.code`` and a ``SHIP`` (or
  ``ACTUAL_PICKUP``) time in ``dateAndTimes``; ``ACTUAL_DELIVERY`` is the delivery time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from nexus.sim.helix_forms import ASSET_FORM, TICKET_FORM
from nexus.sim.org_import_json import (
    EntryError,
    JsonPath,
    Notes,
    collection,
    graph_collection,
    items,
    obj,
    opt_str,
    opt_time,
    req_str,
    req_time,
    unique,
)
from nexus.sim.org_model import FedexShipment, HelixAsset, HelixReturnTicket, IntuneDevice, LansweeperAsset

#: What Graph writes for a date it does not know.
GRAPH_UNKNOWN_DATE = datetime(1, 1, 1, tzinfo=UTC)


def intune_devices(document: Any, notes: Notes | None = None) -> list[IntuneDevice]:
    devices = graph_collection(document, notes, "intune.json", "the managed devices")
    seen: dict[str, int] = {}
    out: list[IntuneDevice] = []
    for i, raw in enumerate(devices):
        path: JsonPath = ("value", i)
        d = obj(raw, path)
        device_id = req_str(d, "id", path)
        unique(seen, device_id, i, path, "id")
        out.append(IntuneDevice(
            id=device_id, device_name=opt_str(d, "deviceName", path) or "",
            serial=req_str(d, "serialNumber", path), upn=opt_str(d, "userPrincipalName", path),
            compliance_state=opt_str(d, "complianceState", path) or "unknown",
            last_sync=req_time(d, "lastSyncDateTime", path),
            enrolled=opt_time(d, "enrolledDateTime", path) or GRAPH_UNKNOWN_DATE,
            operating_system=opt_str(d, "operatingSystem", path) or "", os_version=opt_str(d, "osVersion", path) or "",
            model=opt_str(d, "model", path) or "", manufacturer=opt_str(d, "manufacturer", path) or "",
            management_state=opt_str(d, "managementState", path) or "managed",
        ))
    return out


def lansweeper_assets(document: Any) -> list[LansweeperAsset]:
    assets = collection(document, "items", allowed=frozenset({"total", "pagination"}))
    seen: dict[str, int] = {}
    out: list[LansweeperAsset] = []
    for i, raw in enumerate(assets):
        path: JsonPath = ("items", i)
        a = obj(raw, path)
        key = req_str(a, "key", path)
        unique(seen, key, i, path, "key")
        basic = obj(a.get("assetBasicInfo"), (*path, "assetBasicInfo"), "an assetBasicInfo object")
        custom = obj(a.get("assetCustom"), (*path, "assetCustom"), "an assetCustom object")
        bpath, cpath = (*path, "assetBasicInfo"), (*path, "assetCustom")
        user, domain = opt_str(basic, "userName", bpath), opt_str(basic, "userDomain", bpath)
        out.append(LansweeperAsset(
            key=key, name=opt_str(basic, "name", bpath) or "", serial=req_str(custom, "serialNumber", cpath),
            user_name=f"{domain}\\{user}" if user and domain else user, asset_type=opt_str(basic, "type", bpath) or "",
            last_seen=req_time(basic, "lastSeen", bpath), manufacturer=opt_str(custom, "manufacturer", cpath) or "",
            model=opt_str(custom, "model", cpath) or "", ip_address=opt_str(basic, "ipAddress", bpath) or "",
        ))
    return out


def _form_values(document: Mapping[str, Any], form: str) -> list[tuple[JsonPath, Mapping[str, Any]]]:
    if form not in document:
        return []
    entries = items(obj(document[form], (form,), 'an object with "entries"').get("entries"), (form, "entries"))
    out = []
    for i, entry in enumerate(entries):
        path: JsonPath = (form, "entries", i)
        out.append((path, obj(obj(entry, path).get("values"), path, 'an entry with "values"')))
    return out


def helix_records(document: Any, notes: Notes | None = None) -> tuple[list[HelixAsset], list[HelixReturnTicket]]:
    top = obj(document, (), "an object of forms")
    unknown = sorted(k for k in top if k not in (ASSET_FORM, TICKET_FORM))
    if unknown:
        raise EntryError((), f"unknown form {unknown[0]!r} (expected {ASSET_FORM!r} and {TICKET_FORM!r})")
    assets: list[HelixAsset] = []
    seen: dict[str, int] = {}
    for i, (path, v) in enumerate(_form_values(top, ASSET_FORM)):
        rid = req_str(v, "Reconciliation Identity", path)
        unique(seen, rid, i, path, "Reconciliation Identity")
        assets.append(HelixAsset(
            reconciliation_id=rid, name=opt_str(v, "Name", path) or "", serial=req_str(v, "Serial Number", path),
            owner_email=opt_str(v, "Owner Email", path), status=opt_str(v, "AssetLifecycleStatus", path) or "",
            model=opt_str(v, "Model Number", path) or "", manufacturer=opt_str(v, "Manufacturer", path) or "",
        ))
    tickets: list[HelixReturnTicket] = []
    numbers: dict[str, int] = {}
    other = 0
    for i, (path, v) in enumerate(_form_values(top, TICKET_FORM)):
        number = req_str(v, "Incident Number", path)
        unique(numbers, number, i, path, "Incident Number")
        serial = opt_str(v, "Serial Number", path)
        if serial is None:
            other += 1
            continue
        tickets.append(HelixReturnTicket(
            incident_number=number, serial=serial, customer_email=opt_str(v, "Internet E-mail", path) or "",
            tracking_number=opt_str(v, "Tracking Number", path) or "", status=opt_str(v, "Status", path) or "",
            submit_date=req_time(v, "Submit Date", path),
        ))
    if other and notes is not None:
        notes.add(f"helix.json: {other} {TICKET_FORM} entries without a Serial Number left out (not return tickets)")
    return assets, tickets


def _track_results(document: Any) -> list[tuple[JsonPath, Any]]:
    """Every element of ``completeTrackResults`` with its path, whichever of the accepted shapes the file has."""
    def of(doc: Any, path: JsonPath) -> list[tuple[JsonPath, Any]]:
        top = obj(doc, path, 'a Track API answer ({"output": {"completeTrackResults": [...]}})')
        if "output" in top:
            top, path = obj(top["output"], (*path, "output")), (*path, "output")
        results = items(top.get("completeTrackResults"), (*path, "completeTrackResults"))
        return [((*path, "completeTrackResults", i), r) for i, r in enumerate(results)]

    if isinstance(document, list):
        out: list[tuple[JsonPath, Any]] = []
        for i, part in enumerate(document):
            if isinstance(part, dict) and ("output" in part or "completeTrackResults" in part):
                out += of(part, (i,))
            else:
                out.append(((i,), part))
        return out
    return of(document, ())


def _times(result: Mapping[str, Any], path: JsonPath) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for i, stamp in enumerate(items(result.get("dateAndTimes") or [], (*path, "dateAndTimes"))):
        spath = (*path, "dateAndTimes", i)
        s = obj(stamp, spath)
        kind = opt_str(s, "type", spath)
        if kind:
            out.setdefault(kind, req_time(s, "dateTime", spath))
    return out


def fedex_shipments(document: Any) -> list[FedexShipment]:
    out: list[FedexShipment] = []
    seen: dict[str, int] = {}
    for n, (path, raw) in enumerate(_track_results(document)):
        complete = obj(raw, path)
        results: Sequence[Any] = items(complete.get("trackResults"), (*path, "trackResults"))
        if not results:
            raise EntryError(path, "trackResults is empty")
        rpath = (*path, "trackResults", 0)
        result = obj(results[0], rpath)
        if result.get("error") is not None:
            continue  # a number FedEx does not know: the simulator answers it the same way
        info = result.get("trackingNumberInfo")
        number = (opt_str(obj(info, (*rpath, "trackingNumberInfo")), "trackingNumber", rpath) if info is not None
                  else None) or req_str(complete, "trackingNumber", path)
        unique(seen, number.strip(), n, path, "tracking number")
        latest = obj(result.get("latestStatusDetail"), (*rpath, "latestStatusDetail"), "a latestStatusDetail object")
        code = req_str(latest, "code", (*rpath, "latestStatusDetail"))
        times = _times(result, rpath)
        shipped = times.get("SHIP") or times.get("ACTUAL_PICKUP")
        if shipped is None:
            raise EntryError(rpath, "dateAndTimes has no SHIP (or ACTUAL_PICKUP) time")
        out.append(FedexShipment(
            tracking_number=number.strip(), status_code=code,
            description=opt_str(latest, "description", rpath) or opt_str(latest, "statusByLocale", rpath) or code,
            ship_date=shipped, delivered_at=times.get("ACTUAL_DELIVERY"),
        ))
    return out


__all__ = ["GRAPH_UNKNOWN_DATE", "fedex_shipments", "helix_records", "intune_devices", "lansweeper_assets"]
