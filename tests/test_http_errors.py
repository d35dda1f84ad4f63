"""The one httpx-to-error mapping and the one Retry-After parser (clients/_http_errors.py).

The HTTP clients (``HttpSystemClient.check``) and the seed's decorator (``translate_httpx_error``) must classify
every status the same way, Retry-After included.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from clients._http import HttpSystemClient
from clients._http_errors import parse_retry_after, status_error, translate_httpx_error, transport_error
from nexus.errors import (
    AuthError,
    BadRequestError,
    MalformedResponseError,
    NexusClientError,
    NotFoundError,
    ThrottledError,
    TransientError,
)

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()


def at_now() -> float:
    return NOW


# -- Retry-After -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("1.5", 1.5)])
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, clock=at_now) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:30:00 GMT",  # IMF-fixdate, the preferred form
        "Wednesday, 21-Oct-15 07:30:00 GMT",  # obsolete RFC 850
        "Wed Oct 21 07:30:00 2015",  # obsolete asctime (no zone: GMT)
        "Wed, 21 Oct 2015 07:30:00 -0000",  # no zone information: GMT, not the host's local time
        "Wed, 21 Oct 2015 09:30:00 +0200",
    ],
)
def test_http_date_is_the_seconds_until_that_moment(value: str) -> None:
    assert parse_retry_after(value, clock=at_now) == pytest.approx(120.0)


def test_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", clock=at_now) == 0.0


def test_http_date_uses_the_wall_clock_by_default() -> None:
    soon = format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=True)
    wait = parse_retry_after(soon)
    assert wait is not None and 0.0 <= wait <= 1.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "12 seconds", "Wed, 32 Oct 2015 07:30:00 GMT", "0x10"])
def test_garbage_gives_none(value: str | None) -> None:
    assert parse_retry_after(value, clock=at_now) is None


@pytest.mark.parametrize("value", ["-1", "-0.5", "nan", "inf", "-inf"])
def test_negative_or_non_finite_seconds_give_none(value: str) -> None:
    """Not delay-seconds (RFC 9110: 1*DIGIT): fall back to the backoff instead of retrying at once."""
    assert parse_retry_after(value, clock=at_now) is None


# -- statuses --------------------------------------------------------------------------------------------------------

STATUSES: list[tuple[int, type[NexusClientError]]] = [
    (400, BadRequestError),
    (401, AuthError),
    (403, AuthError),
    (404, NotFoundError),
    (409, BadRequestError),
    (422, BadRequestError),
    (429, ThrottledError),
    (500, TransientError),
    (502, TransientError),
    (503, TransientError),
    (504, TransientError),
]


@pytest.mark.parametrize(("status", "expected"), STATUSES)
def test_status_error(status: int, expected: type[NexusClientError]) -> None:
    error = status_error(status, f"HTTP {status}: x", system="workday")
    assert type(error) is expected
    assert (error.status, error.system, error.message) == (status, "workday", f"HTTP {status}: x")


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("header", ["9", "Wed, 21 Oct 2099 07:28:09 GMT"])
def test_throttle_and_outage_carry_their_retry_after(status: int, header: str) -> None:
    error = status_error(status, "x", system="entra", headers=httpx.Headers({"Retry-After": header}))
    assert isinstance(error, TransientError) and error.retry_after is not None and error.retry_after > 0
    assert isinstance(error, ThrottledError) is (status == 429)


def test_no_retry_after_is_none() -> None:
    assert status_error(429, "x", system="entra").retry_after is None  # type: ignore[attr-defined]
    assert status_error(503, "x", system="entra", headers=httpx.Headers()).retry_after is None  # type: ignore[attr-defined]


def test_transport_errors() -> None:
    request = httpx.Request("GET", "https://x.example/")
    timeout = transport_error(httpx.ReadTimeout("slow", request=request), system="helix")
    assert timeout.message == "timeout: ReadTimeout" and timeout.system == "helix"
    refused = transport_error(httpx.ConnectError("refused", request=request), system="helix")
    assert refused.message == "connection error: ConnectError: refused"
    quiet = transport_error(httpx.ConnectError("refused", request=request), system="helix", what="login ",
                            detail=False)
    assert quiet.message == "login connection error: ConnectError"
    assert all(type(e) is TransientError for e in (timeout, refused, quiet))


# -- both callers agree ------------------------------------------------------------------------------------------------


class _Client(HttpSystemClient):
    system = "workday"
    base_url_setting = "workday_base_url"

    def _fetch_token(self) -> tuple[str, float]:
        return "t", 3600


def _response(status: int, headers: dict[str, str]) -> httpx.Response:
    request = httpx.Request("GET", "https://workday.example/ccx/api/v1/acme/workers")
    return httpx.Response(status, headers=headers, json={"error": "e"}, request=request)


@pytest.mark.parametrize(("status", "expected"), STATUSES)
@pytest.mark.parametrize("headers", [{}, {"Retry-After": "4"}, {"Retry-After": "Wed, 21 Oct 2099 07:28:09 GMT"}])
def test_the_client_and_the_decorator_classify_alike(
    status: int, expected: type[NexusClientError], headers: dict[str, str]
) -> None:
    response = _response(status, headers)
    with _Client() as client, pytest.raises(NexusClientError) as raised:
        client.check(response)
    translated = translate_httpx_error(
        httpx.HTTPStatusError("x", request=response.request, response=response), "Workday"
    )
    assert translated is not None
    for error in (raised.value, translated):
        assert type(error) is expected
        assert (error.status, error.system) == (status, "workday")
    assert getattr(raised.value, "retry_after", None) == pytest.approx(getattr(translated, "retry_after", None),
                                                                        abs=1.0)


def test_not_found_ok_returns_the_response() -> None:
    response = _response(404, {})
    with _Client() as client:
        assert client.check(response, not_found_ok=True) is response


def test_translate_other_httpx_errors() -> None:
    request = httpx.Request("GET", "https://x.example/")
    decoding = translate_httpx_error(httpx.DecodingError("bad gzip", request=request), "Entra")
    assert isinstance(decoding, MalformedResponseError) and decoding.system == "entra"
    timeout = translate_httpx_error(httpx.ConnectTimeout("slow", request=request), "entra")
    assert type(timeout) is TransientError and timeout.message == "timeout: ConnectTimeout"
    assert translate_httpx_error(httpx.TooManyRedirects("loop", request=request), "entra") is None
