"""FedEx client: the Track API for the shipments of return tickets.

- Token: ``POST /oauth/token`` (client credentials, form); cached until shortly before ``expires_in``; one fresh
  token on a 401.
- ``track(numbers)``: ``POST /track/v1/trackingnumbers`` in chunks of :data:`MAX_PER_REQUEST` (FedEx's limit) ->
  ``{number: ShipmentRecord}``. Numbers are stripped and de-duplicated; keys are the stripped numbers. A number
  FedEx does not know comes back inside the 200 as ``trackResults[0].error`` and becomes ``found=False`` with that
  error code (never an exception). A number missing from FedEx's answer is a :class:`MalformedResponseError`.
- ``health()``: one token-authenticated track of :data:`HEALTH_PROBE_NUMBER` (FedEx's published test number; an
  unknown-number answer is a healthy answer). A token fetch alone would prove nothing once the token is cached.
- No ``fetch_page``: FedEx has no listing; the fleet audit tracks the numbers Helix's return tickets name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from clients._http import HttpSystemClient
from nexus.errors import MalformedResponseError
from nexus.models import ShipmentRecord

MAX_PER_REQUEST = 30
HEALTH_PROBE_NUMBER = "123456789012"
TRACK_PATH = "/track/v1/trackingnumbers"


def _iso_utc(value: Any) -> str | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise MalformedResponseError(f"bad FedEx dateTime {str(value)[:40]!r}", system="fedex") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


class FedexClient(HttpSystemClient):
    system = "fedex"

    base_url_setting = "fedex_base_url"

    def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        return self.token_request("/oauth/token", {
            "grant_type": "client_credentials",
            "client_id": s.fedex_client_id,
            "client_secret": s.fedex_client_secret.get_secret_value(),
        })

    def _error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200] or response.reason_phrase
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list):
            return "; ".join(f"{e.get('code')}: {e.get('message', '')}" for e in errors if isinstance(e, dict))[:300]
        return str(body)[:300]

    def track(self, numbers: Iterable[str]) -> dict[str, ShipmentRecord]:
        """FedEx's view of each tracking number (unknown numbers: ``found=False``)."""
        unique = list(dict.fromkeys(n.strip() for n in numbers if n and n.strip()))
        out: dict[str, ShipmentRecord] = {}
        for start in range(0, len(unique), MAX_PER_REQUEST):
            chunk = unique[start:start + MAX_PER_REQUEST]
            out.update(self._track_chunk(chunk))
        return out

    def _track_chunk(self, chunk: list[str]) -> dict[str, ShipmentRecord]:
        payload = {"includeDetailedScans": False,
                   "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in chunk]}
        body = self.parse_json(self.send("POST", TRACK_PATH, json_body=payload))
        results = self.require(body, "output", "completeTrackResults")
        if not isinstance(results, list):
            raise MalformedResponseError("completeTrackResults is not a list", system=self.system)
        answered: dict[str, ShipmentRecord] = {}
        for item in results:
            record = self._record(item)
            answered[record.tracking_number] = record
        missing = [n for n in chunk if n not in answered]
        if missing:
            raise MalformedResponseError(f"FedEx did not answer for {len(missing)} of {len(chunk)} numbers",
                                         system=self.system)
        return {n: answered[n] for n in chunk}

    def _record(self, item: Any) -> ShipmentRecord:
        if not isinstance(item, dict) or not item.get("trackingNumber"):
            raise MalformedResponseError("track result lacks trackingNumber", system=self.system)
        number = str(item["trackingNumber"])
        results = item.get("trackResults")
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise MalformedResponseError("track result lacks trackResults", system=self.system)
        result = results[0]
        error = result.get("error")
        if isinstance(error, dict):
            return ShipmentRecord(tracking_number=number, found=False, error=str(error.get("code") or "UNKNOWN"))
        latest = result.get("latestStatusDetail")
        if not isinstance(latest, dict) or not latest.get("code"):
            raise MalformedResponseError("track result lacks latestStatusDetail.code", system=self.system)
        code = str(latest["code"])
        delivered_at = None
        for stamp in result.get("dateAndTimes") or []:
            if isinstance(stamp, dict) and stamp.get("type") == "ACTUAL_DELIVERY":
                delivered_at = _iso_utc(stamp.get("dateTime"))
        return ShipmentRecord(
            tracking_number=number,
            found=True,
            delivered=code == "DL",
            status_code=code,
            status=str(latest.get("description") or latest.get("statusByLocale") or "") or None,
            delivered_at=delivered_at,
        )

    def health(self) -> float:
        """Elapsed ms of one authenticated track request (of FedEx's test number)."""
        start = time.perf_counter()
        self._track_chunk([HEALTH_PROBE_NUMBER])
        return (time.perf_counter() - start) * 1000
