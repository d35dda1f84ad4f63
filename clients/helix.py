"""BMC Helix client: assets (``AST:ComputerSystem``) and return tickets (``HPD:Help Desk``) over the AR REST API.

- Auth: ``POST /api/jwt/login`` (form) returns the bare token; requests carry ``Authorization: AR-JWT <token>``.
  The login answer has no lifetime, so the token is kept for :data:`TOKEN_LIFETIME_S` (the AR server's default JWT
  lifetime) and a 401 triggers one fresh login (the shared client base). :meth:`close` logs out, releasing the
  server session.
- Listing: ``GET /api/arsys/v1/entry/{form}?offset=&limit=&fields=values(...)``. ``fetch_page`` takes an offset or
  the ``_links.next`` href of the previous page as its cursor and returns that href as the next cursor, re-rooted on
  the configured server (its path and query are kept, its host never used: the token goes nowhere else). Helix gives
  no total. A next link that fails is raised like any failed request (the ``truncated`` fault's 500 is
  :class:`TransientError`: retrying that one page may succeed).
- Lookups use qualifications built from :func:`qual_eq`: every value is double-quoted with inner quotes doubled,
  so input can only ever be a literal. No match -> None / []; a 404 on a direct entry read -> None.

- Incidents (remediation): :meth:`HelixClient.create_incident` posts to ``HPD:IncidentInterface_Create`` (the
  ITSM interface form; z1D_Action ``CREATE``), which answers 201 with a ``Location``; the new ``Incident Number``
  comes back in the body (``fields=values(Incident Number)``) or from that location. A POST is never repeated by
  this client: callers make creation idempotent with :meth:`HelixClient.find_incidents` on a correlation value they
  store in ``Vendor Ticket Number`` (see :mod:`nexus.remediation`).

Field names are those of BMC's contract as stored in ``nexus/sim/helix_rest_contract.json`` (sources cited there and
in :mod:`nexus.sim.helix`): ``Serial Number``, ``AssetLifecycleStatus``, ``Manufacturer``, ``Model Number``,
``Incident Number``, ``Internet E-mail``, ``Submit Date``, ``Vendor Ticket Number``; ``Owner Email`` and the
incident's ``Serial Number``/``Tracking Number`` are site fields. Every value but the two keys (``Reconciliation
Identity``, ``Serial Number``; ``Incident Number``) may be null or absent in an entry and reads as None.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from clients._http import HttpSystemClient
from clients._http_errors import transport_error
from clients.paging import Page, iter_all
from nexus.errors import AuthError, MalformedResponseError
from nexus.models import DeviceRecord, ReturnTicket
from nexus.settings import Settings

ASSET_FORM = "AST:ComputerSystem"
TICKET_FORM = "HPD:Help Desk"
INCIDENT_CREATE_FORM = "HPD:IncidentInterface_Create"
#: The HPD:Help Desk field that carries a caller's correlation value (a free-text field of every incident).
CORRELATION_FIELD = "Vendor Ticket Number"
ASSET_FIELDS = ("Reconciliation Identity", "Name", "Serial Number", "AssetLifecycleStatus", "Owner Email",
                "Manufacturer", "Model Number")
TICKET_FIELDS = ("Incident Number", "Serial Number", "Internet E-mail", "Tracking Number", "Status", "Submit Date")
PAGE_SIZE = 500
TOKEN_LIFETIME_S = 3600.0
#: Serials per OR-ed qualification in :meth:`HelixClient.tickets_for_serials` (keeps the URL well below 8 KB).
SERIALS_PER_QUERY = 40

_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9._~+/=-]{8,8192}$")


def qual_quote(value: str) -> str:
    """A qualification string literal: double quotes around, inner double quotes doubled."""
    return '"' + value.replace('"', '""') + '"'


def qual_eq(field: str, value: str) -> str:
    """``'Field' = "value"`` with ``value`` safely quoted (field names are constants of this module)."""
    return f"'{field}' = {qual_quote(value)}"


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _iso_utc(value: Any) -> str | None:
    """``2024-05-01T10:20:30.000+0000`` (AR REST) -> ``2024-05-01T10:20:30+00:00``; blank -> None."""
    if value is None or value == "":
        return None
    text = str(value)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedResponseError(f"bad Helix timestamp {text[:40]!r}", system="helix") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


class HelixClient(HttpSystemClient):
    system = "helix"
    auth_scheme = "AR-JWT"

    base_url_setting = "helix_base_url"

    def _configure(self, settings: Settings) -> None:
        self._session_token: str | None = None

    # -- auth ----------------------------------------------------------------------------------------------------
    def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        data = {"username": s.helix_username, "password": s.helix_password.get_secret_value()}
        try:
            response = self.http.post("/api/jwt/login", data=data)
        except httpx.TransportError as exc:
            raise transport_error(exc, system=self.system, what="login ", detail=False) from exc
        if 400 <= response.status_code < 500 and response.status_code != 429:
            raise AuthError(f"login refused: HTTP {response.status_code}: {self._error_message(response)}",
                            system=self.system, status=response.status_code)
        self.check(response)
        token = response.text.strip()
        if not _TOKEN_SHAPE.match(token):
            raise MalformedResponseError("login answer is not an AR-JWT token", system=self.system)
        self._session_token = token
        return token, TOKEN_LIFETIME_S

    def close(self) -> None:
        """Log out (best effort: the session times out on its own anyway), then close the connection pool."""
        token, self._session_token = self._session_token, None
        if token is not None:
            try:
                self.http.post("/api/jwt/logout", headers={"Authorization": f"{self.auth_scheme} {token}"})
            except httpx.HTTPError:
                pass
        super().close()

    def _error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200] or response.reason_phrase
        if isinstance(body, list):
            parts = []
            for msg in body:
                if isinstance(msg, dict):
                    text = f"ARERR {msg.get('messageNumber')}: {msg.get('messageText', '')}"
                    if msg.get("messageAppendedText"):
                        text += f" ({msg['messageAppendedText']})"
                    parts.append(text)
            return "; ".join(parts)[:300]
        return str(body)[:300]

    # -- generic entry access --------------------------------------------------------------------------------------
    def _entries_path(self, form: str) -> str:
        return f"/api/arsys/v1/entry/{quote(form, safe=':')}"

    def _own_link(self, href: str) -> str:
        """The href re-rooted on the configured server: its path and query, never its host.

        Helix behind a load balancer often writes links with an internal host name; following the path on the
        configured root works there, and our token is never sent to a host named by a response. A link whose path
        is outside the API root is refused.
        """
        try:
            url = httpx.URL(href)
        except httpx.InvalidURL as exc:
            raise MalformedResponseError("next link is not a URL", system=self.system) from exc
        base = self.http.base_url
        root = base.raw_path.rstrip(b"/") + b"/"
        if not url.raw_path.startswith(root):
            raise MalformedResponseError("next link points outside the Helix API root", system=self.system)
        return str(base.copy_with(raw_path=url.raw_path))

    def _get_entries(self, form: str, fields: tuple[str, ...], cursor: str | None, page_size: int | None,
                     q: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of entries' ``values`` and the next cursor (the ``_links.next`` href)."""
        if cursor and cursor.startswith(("http://", "https://")):
            response = self.send("GET", self._own_link(cursor))
        else:
            params: dict[str, str | int] = {"offset": int(cursor) if cursor else 0, "limit": page_size or PAGE_SIZE,
                                            "fields": f"values({','.join(fields)})"}
            if q:
                params["q"] = q
            response = self.send("GET", self._entries_path(form), params=params)
        body = self.parse_json(response)
        entries = self.require(body, "entries")
        if not isinstance(entries, list):
            raise MalformedResponseError("entries is not a list", system=self.system)
        values = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
                raise MalformedResponseError("entry lacks values", system=self.system)
            values.append(entry["values"])
        links = body.get("_links") if isinstance(body, dict) else None
        nxt = links.get("next") if isinstance(links, dict) else None
        next_href = None
        if isinstance(nxt, list) and nxt and isinstance(nxt[0], dict) and nxt[0].get("href"):
            next_href = self._own_link(str(nxt[0]["href"]))
        return values, next_href

    def _query(self, form: str, fields: tuple[str, ...], q: str) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            values, cursor = self._get_entries(form, fields, cursor, PAGE_SIZE, q)
            yield from values
            if cursor is None or cursor in seen:
                return
            seen.add(cursor)

    # -- assets ----------------------------------------------------------------------------------------------------
    def fetch_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[DeviceRecord]:
        """One page of ``AST:ComputerSystem``; ``cursor`` is an offset or the previous page's next href."""
        values, next_href = self._get_entries(ASSET_FORM, ASSET_FIELDS, cursor, page_size)
        return Page(items=[self._asset(v) for v in values], next_cursor=next_href)

    def list_all(self) -> Iterator[DeviceRecord]:
        return iter_all(self.fetch_page)

    def find_device(self, serial: str) -> DeviceRecord | None:
        """The asset with this serial number (case-insensitive), or None."""
        for values in self._query(ASSET_FORM, ASSET_FIELDS, qual_eq("Serial Number", serial.strip())):
            return self._asset(values)
        return None

    def get_asset(self, entry_id: str) -> DeviceRecord | None:
        """One asset by its entry id (the reconciliation identity); None when Helix has no such entry."""
        response = self.send("GET", f"{self._entries_path(ASSET_FORM)}/{quote(entry_id, safe='')}",
                             params={"fields": f"values({','.join(ASSET_FIELDS)})"}, not_found_ok=True)
        if response.status_code == 404:
            return None
        body = self.parse_json(response)
        values = self.require(body, "values")
        if not isinstance(values, dict):
            raise MalformedResponseError("entry values is not an object", system=self.system)
        return self._asset(values)

    def assets_for_owner(self, email: str) -> list[DeviceRecord]:
        """Every asset whose owner is this email (case-insensitive)."""
        return [self._asset(v) for v in self._query(ASSET_FORM, ASSET_FIELDS, qual_eq("Owner Email", email.strip()))]

    # -- tickets ---------------------------------------------------------------------------------------------------
    def fetch_ticket_page(self, cursor: str | None = None, page_size: int | None = None) -> Page[ReturnTicket]:
        """One page of ``HPD:Help Desk``; incidents without a serial number are not return tickets and skipped."""
        values, next_href = self._get_entries(TICKET_FORM, TICKET_FIELDS, cursor, page_size)
        return Page(items=[t for v in values if (t := self._ticket(v)) is not None], next_cursor=next_href)

    def list_tickets(self) -> Iterator[ReturnTicket]:
        return iter_all(self.fetch_ticket_page)

    def tickets_for_serial(self, serial: str) -> list[ReturnTicket]:
        q = qual_eq("Serial Number", serial.strip())
        return [t for v in self._query(TICKET_FORM, TICKET_FIELDS, q) if (t := self._ticket(v)) is not None]

    def tickets_for_serials(self, serials: Iterable[str]) -> dict[str, list[ReturnTicket]]:
        """Return tickets per serial, in few requests (serials OR-ed, :data:`SERIALS_PER_QUERY` at a time).

        Keys are the serials as given; a serial without tickets maps to ``[]``.
        """
        wanted: dict[str, list[str]] = {}  # upper-cased serial -> the spellings the caller used
        for serial in serials:
            clean = serial.strip()
            if clean:
                wanted.setdefault(clean.upper(), []).append(serial)
        out: dict[str, list[ReturnTicket]] = {s: [] for group in wanted.values() for s in group}
        keys = list(wanted)
        for start in range(0, len(keys), SERIALS_PER_QUERY):
            chunk = keys[start:start + SERIALS_PER_QUERY]
            q = " OR ".join(qual_eq("Serial Number", s) for s in chunk)
            for values in self._query(TICKET_FORM, TICKET_FIELDS, q):
                ticket = self._ticket(values)
                if ticket is None:
                    continue
                for original in wanted.get(ticket.serial.strip().upper(), []):
                    out[original].append(ticket)
        return out

    # -- incidents -------------------------------------------------------------------------------------------------
    def find_incidents(self, correlation: str) -> list[dict[str, str | None]]:
        """Every incident whose ``Vendor Ticket Number`` is ``correlation``: ``{"incident", "status"}`` each."""
        q = qual_eq(CORRELATION_FIELD, correlation)
        found: list[dict[str, str | None]] = []
        for values in self._query(TICKET_FORM, ("Incident Number", "Status", CORRELATION_FIELD), q):
            if not values.get("Incident Number"):
                raise MalformedResponseError("incident entry lacks Incident Number", system=self.system)
            found.append({"incident": str(values["Incident Number"]), "status": _str(values.get("Status"))})
        return found

    def create_incident(
        self,
        *,
        summary: str,
        details: str,
        first_name: str,
        last_name: str,
        impact: str = "2-Significant/Large",
        urgency: str = "1-Critical",
        reported_source: str = "Systems Management",
        service_type: str = "Infrastructure Event",
        correlation: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """Create one incident (status Assigned) and return its Incident Number. Sent once: never retried here.

        ``summary`` is the incident's Description (Helix keeps 100 characters); ``first_name``/``last_name`` name the
        customer People record the site set up for Nexus; ``correlation`` goes to ``Vendor Ticket Number``.
        """
        values: dict[str, str] = {
            "First_Name": first_name,
            "Last_Name": last_name,
            "Description": summary[:100],
            "Detailed_Decription": details,
            "Impact": impact,
            "Urgency": urgency,
            "Status": "Assigned",
            "Reported Source": reported_source,
            "Service_Type": service_type,
            "z1D_Action": "CREATE",
            **(extra or {}),
        }
        if correlation is not None:
            values[CORRELATION_FIELD] = correlation
        response = self.send("POST", self._entries_path(INCIDENT_CREATE_FORM), json_body={"values": values},
                             params={"fields": "values(Incident Number)"})
        if response.status_code != 201:
            raise MalformedResponseError(f"incident create answered HTTP {response.status_code}, not 201",
                                         system=self.system)
        number = None
        if response.content.strip():
            body = self.parse_json(response)
            found = body.get("values") if isinstance(body, dict) else None
            number = found.get("Incident Number") if isinstance(found, dict) else None
        if not number:
            location = response.headers.get("location")
            if not location:
                raise MalformedResponseError("incident create answer has no Location", system=self.system)
            entry = self.parse_json(self.send("GET", self._own_link(location),
                                              params={"fields": "values(Incident Number)"}))
            found = self.require(entry, "values")
            number = found.get("Incident Number") if isinstance(found, dict) else None
        if not isinstance(number, str) or not number:
            raise MalformedResponseError("created incident has no Incident Number", system=self.system)
        return number

    def health(self) -> float:
        """Elapsed ms of one authenticated one-entry read of the asset form."""
        start = time.perf_counter()
        self.send("GET", self._entries_path(ASSET_FORM), params={"limit": 1, "fields": "values(Serial Number)"})
        return (time.perf_counter() - start) * 1000

    # -- parsing ---------------------------------------------------------------------------------------------------
    def _asset(self, values: dict[str, Any]) -> DeviceRecord:
        key, serial = values.get("Reconciliation Identity"), values.get("Serial Number")
        if not key or not serial:
            raise MalformedResponseError("asset entry lacks Reconciliation Identity or Serial Number",
                                         system=self.system)
        return DeviceRecord(
            system=self.system,
            key=str(key),
            serial=str(serial),
            name=_str(values.get("Name")),
            owner=_str(values.get("Owner Email")),
            status=_str(values.get("AssetLifecycleStatus")),
            model=_str(values.get("Model Number")),
            manufacturer=_str(values.get("Manufacturer")),
        )

    def _ticket(self, values: dict[str, Any]) -> ReturnTicket | None:
        if not values.get("Incident Number"):
            raise MalformedResponseError("incident entry lacks Incident Number", system=self.system)
        if not values.get("Serial Number"):
            return None
        return ReturnTicket(
            ticket_id=str(values["Incident Number"]),
            serial=str(values["Serial Number"]),
            customer_email=_str(values.get("Internet E-mail")),
            tracking_number=_str(values.get("Tracking Number")),
            status=_str(values.get("Status")),
            opened_at=_iso_utc(values.get("Submit Date")),
        )


__all__ = ["CORRELATION_FIELD", "HelixClient", "qual_eq", "qual_quote"]
