"""Intune managed devices through Microsoft Graph v1.0 (``/deviceManagement/managedDevices``).

Shares the Graph token and paging of :mod:`clients._graph`. The owner Intune records is the primary user's UPN.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from clients._graph import MAX_PAGE_SIZE, GraphClient, as_str, odata_quote, require_str
from clients.paging import Page, iter_all, iter_pages
from nexus.models import DeviceRecord

DEVICES_PATH = "/v1.0/deviceManagement/managedDevices"
DEVICE_SELECT = ("id", "deviceName", "serialNumber", "userPrincipalName", "complianceState", "lastSyncDateTime",
                 "managementState", "model", "manufacturer", "operatingSystem", "osVersion")
#: Devices a listing page asks for (no ``$expand``, so no 100 cap; Graph's directory maximum).
PAGE_SIZE = MAX_PAGE_SIZE


class IntuneClient(GraphClient):
    system = "intune"

    def _params(self, page_size: int | None = None) -> dict[str, str]:
        top = min(max(page_size or PAGE_SIZE, 1), PAGE_SIZE)
        return {"$select": ",".join(DEVICE_SELECT), "$top": str(top)}

    def fetch_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[DeviceRecord]:
        """One page of managed devices; ``cursor`` is the previous page's ``@odata.nextLink``."""
        page = self.get_collection(DEVICES_PATH, self._params(page_size), cursor)
        return Page([self.to_device(item) for item in page.items], page.next_link, page.count)

    def list_all(self) -> Iterator[DeviceRecord]:
        return iter_all(self.fetch_page)

    def _filtered(self, flt: str) -> list[DeviceRecord]:
        params = self._params() | {"$filter": flt}

        def fetch(cursor: str | None) -> Page[DeviceRecord]:
            page = self.get_collection(DEVICES_PATH, params, cursor)
            return Page([self.to_device(item) for item in page.items], page.next_link, page.count)

        return [device for page in iter_pages(fetch) for device in page.items]

    def find_device(self, serial: str) -> DeviceRecord | None:
        """The device with this serial number, or None. Re-enrolled hardware can appear twice: the most recently
        synced record wins."""
        devices = self._filtered(f"serialNumber eq {odata_quote(serial)}")
        if not devices:
            return None
        return max(devices, key=lambda d: d.last_seen or "")

    def devices_for_user(self, upn: str) -> list[DeviceRecord]:
        """Every device whose primary user is ``upn`` (empty when none)."""
        return self._filtered(f"userPrincipalName eq {odata_quote(upn)}")

    def get_device(self, device_id: str) -> DeviceRecord | None:
        body = self.get_json(f"{DEVICES_PATH}/{quote(device_id, safe='')}", {"$select": ",".join(DEVICE_SELECT)},
                             not_found_ok=True)
        return None if body is None else self.to_device(body)

    def health(self) -> float:
        return self.timed_probe(DEVICES_PATH)

    def to_device(self, item: Mapping[str, Any]) -> DeviceRecord:
        return DeviceRecord(
            system=self.system,
            key=require_str(item, "id", self.system),
            serial=as_str(item.get("serialNumber")) or "",
            name=as_str(item.get("deviceName")),
            owner=as_str(item.get("userPrincipalName")) or None,
            last_seen=as_str(item.get("lastSyncDateTime")),
            compliance=as_str(item.get("complianceState")),
            status=as_str(item.get("managementState")),
            model=as_str(item.get("model")),
            manufacturer=as_str(item.get("manufacturer")),
        )
