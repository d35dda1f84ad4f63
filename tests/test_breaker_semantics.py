"""What counts against a breaker: outages count, the system's own refusals prove it alive, local errors are neutral."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from clients._http import HttpSystemClient
from clients.breaker import NexusBreaker, clear_registry, get_breaker
from nexus.errors import BudgetExceededError, NotFoundError, TransientError
from nexus.policy import BreakerPolicy, RetryPolicy

_names = itertools.count()


@pytest.fixture()
def breaker() -> Iterator[NexusBreaker]:
    clear_registry()
    b = get_breaker("workday", redis=f"memory://semantics-{next(_names)}", policy=BreakerPolicy(fail_max=3))
    yield b
    clear_registry()


def _fail(exc: BaseException) -> None:
    raise exc


def _calls(breaker: NexusBreaker, exc: BaseException, n: int) -> None:
    for _ in range(n):
        with pytest.raises(type(exc)):
            breaker.call(_fail, exc)


def test_a_503_with_retry_after_is_an_outage_it_counts_and_its_wait_is_honoured(breaker: NexusBreaker) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "7"}, json={"error": "maintenance"})

    class Client(HttpSystemClient):
        system = "workday"
        base_url_setting = "workday_base_url"

        def _fetch_token(self) -> tuple[str, float]:
            return "t", 3600

    client = Client(transport=httpx.MockTransport(handler))
    with pytest.raises(TransientError) as info:
        client.send("GET", "/x")
    assert info.value.retry_after == 7.0
    assert RetryPolicy().delay_for(info.value, 0) == 7.0
    _calls(breaker, info.value, 3)
    assert breaker.snapshot().to_dict()["state"] == "open"


def test_the_systems_own_refusal_resets_the_count(breaker: NexusBreaker) -> None:
    _calls(breaker, TransientError("503"), 2)
    _calls(breaker, NotFoundError("404"), 1)
    assert breaker.snapshot().to_dict()["failures"] == 0


@pytest.mark.parametrize("local_error", [BudgetExceededError("budget", retry_after=5), KeyError("bug")])
def test_local_errors_neither_count_nor_reset(breaker: NexusBreaker, local_error: BaseException) -> None:
    _calls(breaker, TransientError("503"), 2)
    _calls(breaker, local_error, 3)
    assert breaker.snapshot().to_dict()["failures"] == 2
    assert breaker.snapshot().to_dict()["state"] == "closed"
