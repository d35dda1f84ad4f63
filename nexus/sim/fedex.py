"""FedEx simulator: OAuth client-credentials token and the Track API (``POST /track/v1/trackingnumbers``).

Contract: FedEx's own OpenAPI documents from developer.fedex.com (Track API "Basic Integrated Visibility" 1.0.0,
``TrackingNumbers-Resource.json``; ``APIAuthorization-Resource.json``), as mirrored unchanged in
ShipStream/fedex-rest-php-sdk ``resources/models/.raw/``. The part Nexus uses is stored as JSON Schema in
``nexus/sim/fedex_track_contract.json`` (its ``$comment`` cites the source): request and response property names,
types and enums, the 1..30 limit on ``trackingInfo``, the error body. Every track request is validated against its
``TrackRequest`` (``includeDetailedScans`` and ``trackingInfo`` required, ``trackingNumberInfo.trackingNumber``
required, ``carrierCode`` from the vendor's enum), and ``Content-Type`` must be JSON (a required header in the
vendor document); the tests validate this simulator's answers against ``TrackResponse``/``ErrorResponse``.

Wire shapes (mounted under ``/fedex``, so ``FEDEX_BASE_URL`` is ``http://host:port/fedex``):

- ``POST /oauth/token`` (form ``grant_type=client_credentials&client_id&client_secret``) ->
  ``{"access_token", "token_type": "bearer", "expires_in": 3599, "scope": "CXS"}``; bad credentials -> 401
  ``NOT.AUTHORIZED.ERROR``.
- ``POST /track/v1/trackingnumbers`` with ``{"includeDetailedScans": false, "trackingInfo":
  [{"trackingNumberInfo": {"trackingNumber": "..."}}]}`` (1 to 30 numbers) -> ``{"transactionId", "output":
  {"completeTrackResults": [{"trackingNumber", "trackResults": [{"trackingNumberInfo", "latestStatusDetail":
  {"code", "derivedCode", "statusByLocale", "description"}, "dateAndTimes": [{"type": "ACTUAL_DELIVERY" | "SHIP",
  "dateTime"}], "serviceDetail"}]}]}}``. Times are local to the scan (rendered at US Central standard time,
  ``-06:00``). An unknown number is answered inside the 200: ``trackResults[0].error = {"code":
  "TRACKING.TRACKINGNUMBER.NOTFOUND", "message": ...}``.
- Errors: ``{"transactionId", "errors": [{"code", "message"}]}`` (``ErrorResponseVO``) -- 400
  ``INVALID.INPUT.EXCEPTION`` (body not JSON, not JSON content, or not the request schema; the message names the
  first violation), ``TRACKING.TRACKINGNUMBER.EMPTY`` (no numbers, or a blank one: the vendor's example error),
  ``TRACKING.TRACKINGNUMBER.LIMIT.EXCEEDED`` (more than 30; the vendor documents the limit, not this code: it is
  this simulator's name for it, and the client never sends more than 30); 401 ``NOT.AUTHORIZED.ERROR`` (bad or
  expired token); 429 ``TOO.MANY.REQUESTS`` (not in the vendor document); 500 ``INTERNAL.SERVER.ERROR``; 503
  ``SERVICE.UNAVAILABLE.ERROR`` (401/403/404/500/503 codes and messages are the vendor's examples).
  ``TRACKING.TRACKINGNUMBER.NOTFOUND`` is not in the vendor document either; it is the code live answers carry (as
  captured in public client tests); the client takes any ``error.code`` inside a track result as "not found".

Not published, so not relied on: which exact code FedEx uses for each schema violation (the client treats every
400 as a bad request, whatever its code); whether unknown request properties are refused (the vendor document does
not forbid them, so neither does this simulator); how ``dateTime`` offsets are chosen (the client converts any ISO
offset to UTC). An unknown number's ``trackingNumberInfo`` carries no ``carrierCode`` here: live answers show it as
``""``, which the vendor's enum does not allow, and the client reads only ``trackingNumber`` and ``error``.

The POSTed body is noted in the request log (``/_sim/requests?recent=1``) so tests can see what reached FedEx.
Faults: ``expired_token`` -> the 401; ``truncated`` does not apply (FedEx has no listing).
"""

from __future__ import annotations

import hmac
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from nexus.sim.base import SimContext, SystemSim
from nexus.sim.contracts import problems
from nexus.sim.org_model import FedexShipment
from nexus.sim.tokens import TokenCheck

MAX_NUMBERS = 30
LOCAL_TZ = timezone(timedelta(hours=-6))  # scans are reported in local time; the simulator uses US Central (CST)
NOT_FOUND_CODE = "TRACKING.TRACKINGNUMBER.NOTFOUND"
NOT_FOUND_MESSAGE = "Tracking number cannot be found. Please correct the tracking number and try again."

STATUS_LABELS = {
    "DL": "Delivered",
    "IT": "In transit",
    "DE": "Delivery exception",
    "PU": "Picked up",
    "OC": "Label created",
}

_STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID.INPUT.EXCEPTION", "Invalid field value in the input"),
    401: ("NOT.AUTHORIZED.ERROR", "Access token expired. Please modify your request and try again."),
    403: ("FORBIDDEN.ERROR", "We could not authorize your credentials. Please check your permissions and try "
                             "again."),
    404: ("NOT.FOUND.ERROR", "The resource you requested is no longer available. Please modify your request and "
                             "try again."),
    429: ("TOO.MANY.REQUESTS", "We have received too many requests in a short duration. Please wait a while to "
                               "try again."),
    500: ("INTERNAL.SERVER.ERROR", "We encountered an unexpected error and are working to resolve the issue. We "
                                   "apologize for any inconvenience. Please check back at a later time."),
    503: ("SERVICE.UNAVAILABLE.ERROR", "The service is currently unavailable and we are working to resolve the "
                                       "issue. We apologize for any inconvenience. Please check back at a later "
                                       "time."),
}


def fedex_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"transactionId": str(uuid.uuid4()), "errors": [{"code": code, "message": message}]},
                        status_code=status, headers=headers)


def _local(when: datetime) -> str:
    return when.astimezone(LOCAL_TZ).isoformat(timespec="seconds")


class FedexSim(SystemSim):
    prefix = "/fedex"
    system = "fedex"

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.by_number: dict[str, FedexShipment] = {s.tracking_number: s for s in ctx.org.fedex}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/track/v1/trackingnumbers", self.track, methods=["POST"]),
        ]

    def error(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None) -> Response:
        fx_code, fx_message = _STATUS_ERRORS.get(status, ("INTERNAL.SERVER.ERROR", message))
        return fedex_error(status, fx_code, fx_message, headers=headers)

    def malformed(self) -> Response:
        # A 200 from a gateway that lost the payload: JSON, but neither a token nor track output.
        return JSONResponse({"transactionId": str(uuid.uuid4()), "output": {"alerts": "partial response"}})

    async def token(self, request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return fedex_error(400, "INVALID.INPUT.EXCEPTION", "Invalid field value in the input: grant_type")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        creds = self.ctx.creds
        if not isinstance(client_id, str) or not isinstance(secret, str) or not (
                hmac.compare_digest(client_id, creds.fedex_client_id)
                and hmac.compare_digest(secret, creds.fedex_client_secret)):
            return fedex_error(401, "NOT.AUTHORIZED.ERROR", "The given client credentials were not valid. Please "
                                                            "modify your request and try again.")
        token, expires_in = self.ctx.tokens.issue(self.system)
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": expires_in,
                             "scope": "CXS"})

    async def track(self, request: Request) -> Response:
        check = self.check_token(self.system, self.bearer(request, "Bearer"))
        if check is not TokenCheck.OK:
            return self.error(401, "")
        raw = await request.body()
        text = raw.decode("utf-8", errors="replace")
        self.ctx.log.note(self.system, "/track/v1/trackingnumbers", text)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return fedex_error(400, "INVALID.INPUT.EXCEPTION", "Invalid field value in the input: content-type")
        numbers = self._numbers(text)
        if isinstance(numbers, Response):
            return numbers
        results = [self.render(n) for n in numbers]
        return JSONResponse({"transactionId": str(uuid.uuid4()), "output": {"completeTrackResults": results}})

    @staticmethod
    def _numbers(text: str) -> list[str] | Response:
        try:
            body: Any = json.loads(text)
        except ValueError:
            return fedex_error(400, "INVALID.INPUT.EXCEPTION", "Invalid field value in the input")
        infos = body.get("trackingInfo") if isinstance(body, dict) else None
        if isinstance(infos, list) and not infos:
            return fedex_error(400, "TRACKING.TRACKINGNUMBER.EMPTY", "Please provide tracking number.")
        if isinstance(infos, list) and len(infos) > MAX_NUMBERS:
            return fedex_error(400, "TRACKING.TRACKINGNUMBER.LIMIT.EXCEEDED",
                               f"Tracking number limit exceeded. Please submit {MAX_NUMBERS} or fewer tracking "
                               "numbers.")
        violations = problems("fedex_track", "TrackRequest", body)
        if violations:
            message = f"Invalid field value in the input: {violations[0]}"
            return fedex_error(400, "INVALID.INPUT.EXCEPTION", message[:300])
        numbers = [info["trackingNumberInfo"]["trackingNumber"] for info in body["trackingInfo"]]
        if any(not n.strip() for n in numbers):
            return fedex_error(400, "TRACKING.TRACKINGNUMBER.EMPTY", "Please provide tracking number.")
        return numbers

    def render(self, number: str) -> dict[str, Any]:
        shipment = self.by_number.get(number.strip())
        if shipment is None:
            return {"trackingNumber": number, "trackResults": [{
                "trackingNumberInfo": {"trackingNumber": number, "trackingNumberUniqueId": ""},
                "error": {"code": NOT_FOUND_CODE, "message": NOT_FOUND_MESSAGE},
            }]}
        times = []
        if shipment.delivered_at is not None:
            times.append({"type": "ACTUAL_DELIVERY", "dateTime": _local(shipment.delivered_at)})
        times.append({"type": "SHIP", "dateTime": _local(shipment.ship_date)})
        code = shipment.status_code
        return {"trackingNumber": number, "trackResults": [{
            "trackingNumberInfo": {"trackingNumber": shipment.tracking_number, "carrierCode": "FDXG",
                                   "trackingNumberUniqueId": f"12029~{shipment.tracking_number}~FDEG"},
            "latestStatusDetail": {"code": code, "derivedCode": code,
                                   "statusByLocale": STATUS_LABELS.get(code, shipment.description),
                                   "description": shipment.description},
            "dateAndTimes": times,
            "serviceDetail": {"type": "FEDEX_GROUND", "description": "FedEx Ground", "shortDescription": "FG"},
        }]}
