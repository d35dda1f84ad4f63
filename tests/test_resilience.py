"""The seed's 12 resilience tests (same class and test names), plus policies, async, Retry-After and breaker details.

Breakers run on fakeredis (the same Lua as production, through lupa) with a fake clock; retries use a recording
sleeper, so nothing here waits for real.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import fakeredis
import httpx
import pybreaker
import pytest

from clients import breaker as breaker_mod
from clients.breaker import NexusBreaker, RedisBreakerStorage, breaker_state, get_breaker, reset_breaker
from clients.resilience import (
    acall_with_breaker,
    call_with_breaker,
    handle_404_gracefully,
    resilient_http_call,
    translate_httpx_error,
)
from nexus.errors import (
    AuthError,
    BadRequestError,
    BreakerOpenError,
    CircuitBreakerOpenError,
    CircuitOpenError,
    MalformedResponseError,
    NotFoundError,
    ThrottledError,
    TransientError,
)
from nexus.policy import BreakerPolicy, RetryPolicy
from nexus.redis_conn import MEMORY_URL
from nexus.settings import Settings
from nexus.testing.breakers import Transitions
from nexus.testing.breakers import make_breaker as new_breaker
from nexus.testing.clock import T0, FakeClock
from nexus.testing.redis_server import free_port


class Flaky:
    """A callable that raises the given errors in order, then returns ``result``; counts its calls."""

    def __init__(self, *errors: BaseException, result: Any = "data", forever: BaseException | None = None) -> None:
        self.errors = list(errors)
        self.result = result
        self.forever = forever
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        if self.forever is not None:
            raise self.forever
        return self.result


def transient(msg: str = "HTTP 503: Service Unavailable") -> TransientError:
    return TransientError(msg, system="workday", status=503)


def http_status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://workday.example/ccx/api/staffing/v6/acme/workers")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nexus.resilience"]


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    breaker_mod.clear_registry()
    yield
    breaker_mod.clear_registry()


@pytest.fixture(autouse=True)
def _resilience_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nexus.resilience")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def transitions() -> Transitions:
    return Transitions()


@pytest.fixture
def make_breaker(store: fakeredis.FakeRedis, clock: FakeClock, transitions: Transitions) -> Callable[..., NexusBreaker]:
    def make(system: str = "Workday", fail_max: int = 5, reset_timeout_s: float = 60.0, **kw: Any) -> NexusBreaker:
        return new_breaker(system, store, clock, transitions, fail_max=fail_max, reset_timeout_s=reset_timeout_s,
                            **kw)

    return make


@pytest.fixture
def breaker(make_breaker: Callable[..., NexusBreaker]) -> NexusBreaker:
    return make_breaker()


def trip(b: NexusBreaker, n: int = 5) -> None:
    for _ in range(n):
        with pytest.raises(TransientError):
            b.call(Flaky(forever=transient()))


# ---------------------------------------------------------------------------------------------------------------
# The seed's tests
# ---------------------------------------------------------------------------------------------------------------


class TestCircuitBreaker:
    def test_circuit_closed_to_open_after_threshold_failures(
        self, breaker: NexusBreaker, transitions: Transitions, caplog: pytest.LogCaptureFixture
    ) -> None:
        failing = Flaky(forever=transient())
        for expected in range(1, 5):
            with pytest.raises(TransientError):
                breaker.call(failing)
            snap = breaker.snapshot()
            assert (snap.state, snap.failures) == ("closed", expected)
        # The fifth failure is still the real error (the call did reach the system), and it trips the circuit.
        with pytest.raises(TransientError):
            breaker.call(failing)
        assert breaker.snapshot().state == "open"
        assert breaker.current_state == pybreaker.STATE_OPEN
        assert breaker.fail_counter == 5

        started = time.perf_counter()
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(failing)
        assert time.perf_counter() - started < 0.1
        assert failing.calls == 5  # nothing was sent
        assert isinstance(info.value, pybreaker.CircuitBreakerError)
        assert isinstance(info.value, CircuitBreakerOpenError)
        assert isinstance(info.value, BreakerOpenError)
        assert info.value.system == "workday"
        assert info.value.retry_in_s == pytest.approx(60.0)
        assert str(info.value) == "Workday circuit breaker is OPEN"

        assert transitions.events == [("closed", "open")]
        logs = messages(caplog)
        assert logs.count("[resilience] [Workday] Circuit CLOSED -> OPEN (5 consecutive failures)") == 1
        assert "[resilience] [Workday] CircuitBreakerOpenError (fast-fail)" in logs
        trip_record = next(r for r in caplog.records if "CLOSED -> OPEN" in r.getMessage())
        assert trip_record.levelno == logging.WARNING
        assert (trip_record.system, trip_record.system_display) == ("workday", "Workday")

    def test_circuit_half_open_to_closed_on_success(
        self, breaker: NexusBreaker, clock: FakeClock, transitions: Transitions, caplog: pytest.LogCaptureFixture
    ) -> None:
        trip(breaker)
        clock.advance(59.9)
        with pytest.raises(CircuitOpenError):
            breaker.call(Flaky())
        assert breaker.snapshot().retry_in_s == pytest.approx(0.1, abs=1e-3)

        clock.advance(0.1)
        seen_during_trial: list[str] = []

        def trial() -> str:
            # While the one trial runs, everybody else still fails fast.
            with pytest.raises(CircuitOpenError, match="HALF_OPEN"):
                breaker.call(Flaky())
            seen_during_trial.append(breaker.snapshot().state)
            return "data"

        assert breaker.call(trial) == "data"
        assert seen_during_trial == ["half_open"]
        snap = breaker.snapshot()
        assert (snap.state, snap.failures, snap.opened_at) == ("closed", 0, None)
        assert transitions.events == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
        logs = messages(caplog)
        assert "[resilience] [Workday] Circuit OPEN -> HALF_OPEN" in logs
        assert "[resilience] [Workday] Circuit HALF_OPEN -> CLOSED" in logs
        # Normal operation resumes: failures count from zero again.
        with pytest.raises(TransientError):
            breaker.call(Flaky(forever=transient()))
        assert breaker.snapshot().failures == 1

    def test_circuit_half_open_to_open_on_failure(
        self, breaker: NexusBreaker, clock: FakeClock, transitions: Transitions, caplog: pytest.LogCaptureFixture
    ) -> None:
        trip(breaker)
        clock.advance(60)
        trial = Flaky(forever=transient())
        with pytest.raises(TransientError):
            breaker.call(trial)
        assert trial.calls == 1
        snap = breaker.snapshot()
        assert snap.state == "open"
        assert snap.opened_at is not None and snap.opened_at.timestamp() == pytest.approx(T0 + 60)
        assert transitions.events == [("closed", "open"), ("open", "half-open"), ("half-open", "open")]
        assert "[resilience] [Workday] Circuit HALF_OPEN -> OPEN" in messages(caplog)

        # A fresh reset timeout runs from the failed trial.
        clock.advance(59)
        with pytest.raises(CircuitOpenError):
            breaker.call(trial)
        clock.advance(1)
        assert breaker.call(Flaky(result="recovered")) == "recovered"
        assert breaker.snapshot().state == "closed"

    def test_circuit_resets_on_success(self, breaker: NexusBreaker) -> None:
        failing = Flaky(forever=transient())
        for _ in range(4):
            with pytest.raises(TransientError):
                breaker.call(failing)
        assert breaker.call(Flaky(result=1)) == 1
        assert breaker.snapshot().failures == 0
        for _ in range(4):
            with pytest.raises(TransientError):
                breaker.call(failing)
        assert breaker.snapshot().state == "closed"  # 4 + success + 4 is not "5 consecutive"

        # An answer that proves the system alive (404, 400, 401, 429) is not a failure, and resets the count too.
        for error in (
            NotFoundError("no such worker"),
            BadRequestError("bad filter"),
            AuthError("HTTP 401"),
            ThrottledError("HTTP 429", retry_after=1),
        ):
            for _ in range(6):
                with pytest.raises(type(error)):
                    breaker.call(Flaky(forever=error))
            assert breaker.snapshot().state == "closed"
            assert breaker.snapshot().failures == 0


class TestResilientHttpCall:
    def test_retries_on_timeout_exception(self, breaker: NexusBreaker, caplog: pytest.LogCaptureFixture) -> None:
        sleeps = FakeClock()
        request = httpx.Request("GET", "https://workday.example/x")
        fn = Flaky(httpx.ReadTimeout("timed out", request=request), transient("timeout: ReadTimeout"),
                   result={"ok": True})  # fmt: skip

        @resilient_http_call(service_name="Workday", max_attempts=3, breaker=breaker, sleep=sleeps.sleep)
        def get(path: str) -> dict[str, bool]:
            return fn(path)

        assert get("/workers") == {"ok": True}
        assert fn.calls == 3
        assert sleeps.slept == [2.0, 4.0]
        logs = messages(caplog)
        assert (
            "[resilience] [Workday] Retry attempt 1/3 after TransientError: timeout: ReadTimeout (waiting 2.0s)" in logs
        )
        assert (
            "[resilience] [Workday] Retry attempt 2/3 after TransientError: timeout: ReadTimeout (waiting 4.0s)" in logs
        )
        record = next(r for r in caplog.records if "Retry attempt 1/3" in r.getMessage())
        fields = {k: getattr(record, k) for k in ("system", "attempt", "max_attempts", "wait_s", "error_type")}
        assert fields == {"system": "workday", "attempt": 1, "max_attempts": 3, "wait_s": 2.0,
                          "error_type": "TransientError"}  # fmt: skip
        assert breaker.snapshot().failures == 0  # the call succeeded in the end

    def test_retries_on_5xx_errors(self, breaker: NexusBreaker) -> None:
        sleeps = FakeClock()
        fn = Flaky(http_status_error(503), TransientError("HTTP 502: Bad Gateway", status=502), result="data")
        wrapped = resilient_http_call("Workday", breaker=breaker, sleep=sleeps.sleep)(fn)
        assert wrapped() == "data"
        assert fn.calls == 3
        assert sleeps.slept == [2.0, 4.0]

    def test_no_retry_on_4xx_errors(self, breaker: NexusBreaker) -> None:
        cases: list[tuple[Exception, type[Exception]]] = [
            (BadRequestError("HTTP 400: bad $filter", status=400), BadRequestError),
            (NotFoundError("HTTP 404", status=404), NotFoundError),
            (AuthError("HTTP 401", status=401), AuthError),
            (MalformedResponseError("body is not JSON"), MalformedResponseError),
            (http_status_error(400), BadRequestError),
            (http_status_error(403), AuthError),
        ]
        for error, raised in cases:
            sleeps = FakeClock()
            fn = Flaky(forever=error)
            wrapped = resilient_http_call("Workday", breaker=breaker, sleep=sleeps.sleep)(fn)
            with pytest.raises(raised):
                wrapped()
            assert fn.calls == 1, error
            assert sleeps.slept == [], error
        # 4xx answers prove the system alive; only the malformed answer counted (and a later 4xx reset it).
        assert breaker.snapshot().failures == 0

    def test_exhausts_retries_and_raises(self, breaker: NexusBreaker, caplog: pytest.LogCaptureFixture) -> None:
        sleeps = FakeClock()
        errors = [transient(f"HTTP 503: attempt {i}") for i in (1, 2, 3)]
        fn = Flaky(*errors)
        wrapped = resilient_http_call("Workday", breaker=breaker, sleep=sleeps.sleep)(fn)
        with pytest.raises(TransientError) as info:
            wrapped()
        assert info.value is errors[2]  # the last error itself, not a tenacity RetryError
        assert fn.calls == 3
        assert sleeps.slept == [2.0, 4.0]
        assert breaker.snapshot().failures == 1  # one failed CALL is one breaker failure
        assert sum("Retry attempt" in m for m in messages(caplog)) == 2

    # -- beyond the seed ---------------------------------------------------------------------------------------

    def test_retry_after_is_honoured_and_capped(self, breaker: NexusBreaker) -> None:
        sleeps = FakeClock()
        fn = Flaky(ThrottledError("HTTP 429", retry_after=7), ThrottledError("HTTP 429", retry_after=5000),
                   result="ok")  # fmt: skip
        assert resilient_http_call("Entra", breaker=breaker, sleep=sleeps.sleep)(fn)() == "ok"
        assert sleeps.slept == [7.0, 120.0]
        assert breaker.snapshot().failures == 0  # throttling is not ill health

    def test_throttle_without_retry_after_uses_backoff(self, breaker: NexusBreaker) -> None:
        sleeps = FakeClock()
        fn = Flaky(http_status_error(429), http_status_error(429, {"Retry-After": "3"}), result="ok")
        assert resilient_http_call("Entra", breaker=breaker, sleep=sleeps.sleep)(fn)() == "ok"
        assert sleeps.slept == [2.0, 3.0]

    def test_max_attempts_and_policy(self, breaker: NexusBreaker) -> None:
        sleeps = FakeClock()
        fn = Flaky(forever=transient())
        wrapped = resilient_http_call("Workday", max_attempts=5, breaker=breaker, sleep=sleeps.sleep)(fn)
        with pytest.raises(TransientError):
            wrapped()
        assert sleeps.slept == [2.0, 4.0, 8.0, 16.0]

        sleeps2 = FakeClock()
        policy = RetryPolicy(max_attempts=4, backoff_base_s=1, backoff_max_s=3)
        with pytest.raises(TransientError):
            resilient_http_call("Workday", policy=policy, breaker=breaker,
                                sleep=sleeps2.sleep)(Flaky(forever=transient()))()
        assert sleeps2.slept == [1.0, 2.0, 3.0]

    def test_jittered_waits_stay_within_bounds(self, breaker: NexusBreaker) -> None:
        sleeps = FakeClock()
        policy = RetryPolicy(max_attempts=4, jitter=True)
        with pytest.raises(TransientError):
            resilient_http_call("Workday", policy=policy, breaker=breaker,
                                sleep=sleeps.sleep)(Flaky(forever=transient()))()
        assert len(sleeps.slept) == 3
        for wait, cap in zip(sleeps.slept, (2.0, 4.0, 8.0), strict=True):
            assert 0.0 <= wait <= cap

    def test_async_function(self, breaker: NexusBreaker, caplog: pytest.LogCaptureFixture) -> None:
        sync_sleeps = FakeClock()
        async_sleeps: list[float] = []

        async def record(seconds: float) -> None:
            async_sleeps.append(seconds)

        fn = Flaky(transient(), transient(), result={"value": 1})

        @resilient_http_call(service_name="Entra", breaker=breaker, sleep=sync_sleeps.sleep)
        async def get(path: str) -> Any:
            await asyncio.sleep(0)
            return fn(path)

        assert inspect.iscoroutinefunction(get)
        assert asyncio.run(get("/users")) == {"value": 1}
        assert sync_sleeps.slept == [2.0, 4.0]
        assert "[resilience] [Entra] Retry attempt 1/3 after TransientError: HTTP 503: Service Unavailable " \
               "(waiting 2.0s)" in messages(caplog)  # fmt: skip

        failing = Flaky(forever=transient())

        @resilient_http_call(service_name="Entra", breaker=breaker, sleep=record)
        async def dead() -> Any:
            return failing()

        for _ in range(5):
            with pytest.raises(TransientError):
                asyncio.run(dead())
        with pytest.raises(CircuitOpenError):
            asyncio.run(dead())
        assert failing.calls == 15
        assert async_sleeps == [2.0, 4.0] * 5

    def test_without_breaker(self, store: fakeredis.FakeRedis) -> None:
        sleeps = FakeClock()
        fn = Flaky(forever=transient())
        wrapped = resilient_http_call("Workday", enable_circuit_breaker=False, sleep=sleeps.sleep)(fn)
        for _ in range(7):
            with pytest.raises(TransientError):
                wrapped()
        assert fn.calls == 21  # no breaker ever stops it

    def test_stops_retrying_when_another_caller_opens_the_circuit(self, breaker: NexusBreaker) -> None:
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            breaker.open()  # meanwhile, the rest of the fleet gave up on Workday

        fn = Flaky(forever=transient())
        with pytest.raises(TransientError):
            resilient_http_call("Workday", breaker=breaker, sleep=sleep)(fn)()
        assert fn.calls == 2
        assert sleeps == [2.0]

    def test_policies_default_from_settings(self, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
        from nexus import settings as settings_mod

        monkeypatch.setenv("NEXUS_RETRY_MAX_ATTEMPTS", "2")
        monkeypatch.setenv("NEXUS_BREAKER_FAIL_MAX", "2")
        monkeypatch.setenv("NEXUS_BREAKER_REDIS_URL", MEMORY_URL + "settings-test")
        settings_mod.get_settings.cache_clear()
        try:
            sleeps = FakeClock()
            fn = Flaky(forever=transient())
            wrapped = resilient_http_call("Helix", sleep=sleeps.sleep)(fn)
            for _ in range(2):
                with pytest.raises(TransientError):
                    wrapped()
            with pytest.raises(CircuitOpenError):
                wrapped()
            assert fn.calls == 4
            assert sleeps.slept == [2.0, 2.0]
            assert breaker_state("helix")["state"] == "open"
        finally:
            settings_mod.get_settings.cache_clear()


class TestHandle404Gracefully:
    def test_converts_404_to_none(self, breaker: NexusBreaker) -> None:
        @handle_404_gracefully
        def get_user(user_id: str) -> dict[str, str]:
            raise NotFoundError(f"no user {user_id}", system="entra", status=404)

        @handle_404_gracefully
        def get_raw(user_id: str) -> dict[str, str]:
            raise http_status_error(404)

        assert get_user("nonexistent-id") is None
        assert get_raw("nonexistent-id") is None

        # The seed's stack: no retry for a 404, and it does not count against the breaker.
        sleeps = FakeClock()
        fn = Flaky(forever=http_status_error(404))

        @handle_404_gracefully
        @resilient_http_call(service_name="Entra", breaker=breaker, sleep=sleeps.sleep)
        async def get_async(user_id: str) -> Any:
            return fn(user_id)

        assert asyncio.run(get_async("nonexistent-id")) is None
        assert fn.calls == 1
        assert sleeps.slept == []
        assert breaker.snapshot().failures == 0

    def test_does_not_convert_other_errors(self) -> None:
        for error in (transient(), BadRequestError("HTTP 400"), AuthError("HTTP 403"), http_status_error(500),
                      ValueError("bug")):  # fmt: skip
            wrapped = handle_404_gracefully(Flaky(forever=error))
            with pytest.raises(type(error)):
                wrapped()

        @handle_404_gracefully
        async def failing() -> None:
            raise http_status_error(503)

        with pytest.raises(httpx.HTTPStatusError):
            asyncio.run(failing())

    def test_returns_normal_result_on_success(self) -> None:
        @handle_404_gracefully
        def get_user(user_id: str) -> dict[str, str]:
            return {"id": user_id}

        @handle_404_gracefully
        async def get_user_async(user_id: str) -> dict[str, str]:
            return {"id": user_id}

        assert get_user("u1") == {"id": "u1"}
        assert asyncio.run(get_user_async("u2")) == {"id": "u2"}
        assert get_user.__name__ == "get_user"


class TestCircuitBreakerIntegration:
    def test_circuit_breaker_opens_after_failures(
        self, breaker: NexusBreaker, clock: FakeClock, transitions: Transitions, caplog: pytest.LogCaptureFixture
    ) -> None:
        sleeps = FakeClock()
        workday = Flaky(forever=transient("connection error: ConnectError: [Errno 111] Connection refused"))

        @resilient_http_call(service_name="Workday", max_attempts=3, breaker=breaker, sleep=sleeps.sleep)
        def get(path: str) -> Any:
            return workday(path)

        # Requests 1-5: each retries 3 times.
        for request in range(1, 6):
            with pytest.raises(TransientError):
                get("/workers")
            assert workday.calls == 3 * request
        assert sleeps.slept == [2.0, 4.0] * 5
        assert breaker.snapshot().state == "open"

        # Requests 6 and 7: the circuit is open, they fail fast with no retry and nothing sent.
        for _ in range(2):
            started = time.perf_counter()
            with pytest.raises(CircuitOpenError):
                get("/workers")
            assert time.perf_counter() - started < 0.1
        assert workday.calls == 15  # at most fail_max x max_attempts requests reached the dead system
        assert len(sleeps.slept) == 10

        logs = messages(caplog)
        assert logs.count("[resilience] [Workday] Circuit CLOSED -> OPEN (5 consecutive failures)") == 1
        assert logs.count("[resilience] [Workday] CircuitBreakerOpenError (fast-fail)") == 2

        # After 60 s: one test request; Workday is back, the circuit closes and normal retries resume.
        clock.advance(60)
        workday.forever = None
        workday.result = {"data": []}
        assert get("/workers") == {"data": []}
        assert breaker.snapshot().state == "closed"
        assert transitions.events == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
        workday.errors = [transient()]
        assert get("/workers") == {"data": []}
        assert sleeps.slept[-1] == 2.0


# ---------------------------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------------------------


class TestPolicies:
    def test_countdown_is_celerys_formula(self) -> None:
        policy = RetryPolicy()
        assert [policy.countdown(r) for r in range(8)] == [2, 4, 8, 16, 32, 60, 60, 60]
        assert policy.countdown(10_000) == 60
        assert RetryPolicy(backoff_base_s=0).countdown(3) == 0

    def test_jitter_draws_from_zero_to_countdown(self) -> None:
        policy = RetryPolicy(jitter=True)
        rng = random.Random(7)
        draws = [policy.countdown(2, rng) for _ in range(500)]
        assert all(0.0 <= d <= 8.0 for d in draws)
        assert min(draws) < 1.0 and max(draws) > 7.0  # it does spread over the range

    def test_delay_for(self) -> None:
        policy = RetryPolicy(retry_after_max_s=30)
        assert policy.delay_for(ThrottledError("429", retry_after=12.5), 0) == 12.5
        assert policy.delay_for(ThrottledError("429", retry_after=999), 0) == 30
        assert policy.delay_for(ThrottledError("429", retry_after=-4), 0) == 0
        assert policy.delay_for(ThrottledError("429"), 1) == 4
        assert policy.delay_for(transient(), 2) == 8
        assert policy.delay_for(None, 0) == 2

    def test_from_settings(self) -> None:
        settings = Settings.model_validate(
            {"NEXUS_RETRY_MAX_ATTEMPTS": 4, "NEXUS_RETRY_BACKOFF_BASE_S": 1, "NEXUS_RETRY_JITTER": True,
             "NEXUS_BREAKER_FAIL_MAX": 7, "NEXUS_BREAKER_RESET_TIMEOUT_S": 30, "NEXUS_BREAKER_ENABLED": False}
        )  # fmt: skip
        retry = RetryPolicy.from_settings(settings)
        assert (retry.max_attempts, retry.backoff_base_s, retry.backoff_max_s, retry.jitter) == (4, 1, 60, True)
        assert retry.retry_after_max_s == 120
        breaker = BreakerPolicy.from_settings(settings)
        assert (breaker.fail_max, breaker.reset_timeout_s, breaker.enabled) == (7, 30, False)
        assert breaker.key_ttl_s == 120 and breaker.trial_ttl_s == 30
        assert RetryPolicy.from_settings(Settings()) == RetryPolicy()

    def test_invalid_policies(self) -> None:
        with pytest.raises(ValueError):
            RetryPolicy(max_attempts=0)
        with pytest.raises(ValueError):
            BreakerPolicy(fail_max=0)
        with pytest.raises(ValueError):
            BreakerPolicy(reset_timeout_s=0)


# ---------------------------------------------------------------------------------------------------------------
# Breaker details
# ---------------------------------------------------------------------------------------------------------------


class TestBreakerDetails:
    def test_threads_are_not_serialised(self, breaker: NexusBreaker) -> None:
        # pybreaker holds a process-wide lock around the call; two calls that wait for each other would deadlock.
        barrier = threading.Barrier(2, timeout=5)
        results: list[str] = []

        def rendezvous() -> str:
            barrier.wait()
            return "ok"

        threads = [threading.Thread(target=lambda: results.append(breaker.call(rendezvous))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert results == ["ok", "ok"]

    def test_decorator_and_context_manager(self, breaker: NexusBreaker) -> None:
        @breaker
        def sync_ok(x: int) -> int:
            return x + 1

        @breaker
        async def async_fail() -> None:
            raise transient()

        assert sync_ok(1) == 2
        for _ in range(4):
            with pytest.raises(TransientError):
                asyncio.run(async_fail())
        with pytest.raises(TransientError), breaker.calling():
            raise transient()
        with pytest.raises(BreakerOpenError), breaker.calling():
            pytest.fail("the block must not run while the circuit is open")

    def test_count_failure_false_for_retrying_callers(self, breaker: NexusBreaker, clock: FakeClock) -> None:
        # A Celery task with 3 runs: only its last run's failure counts, so 5 dead tasks (15 runs) open the circuit.
        for task in range(5):
            for run in range(3):
                with pytest.raises(TransientError), breaker.calling(count_failure=run == 2):
                    raise transient()
            assert breaker.snapshot().failures == task + 1
        assert breaker.snapshot().state == "open"
        clock.advance(60)
        with pytest.raises(TransientError), breaker.calling(count_failure=False):
            raise transient()  # a failed trial re-opens, whatever the caller's retry plans
        assert breaker.snapshot().state == "open"

    def test_cancelled_trial_gives_the_slot_back(self, breaker: NexusBreaker, clock: FakeClock) -> None:
        trip(breaker)
        clock.advance(60)

        def interrupted() -> NoReturn:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            breaker.call(interrupted)
        assert breaker.snapshot().state == "half_open"
        # The slot is free again at once: the next caller is the trial.
        assert breaker.call(Flaky(result="ok")) == "ok"
        assert breaker.snapshot().state == "closed"

    def test_abandoned_trial_expires(
        self, make_breaker: Callable[..., NexusBreaker], store: fakeredis.FakeRedis, clock: FakeClock
    ) -> None:
        b = make_breaker()
        trip(b)
        clock.advance(60)
        assert b.storage.admit(int(clock() * 1000), 60_000) is not None  # a trial admitted, then its process died
        with pytest.raises(CircuitOpenError):
            b.call(Flaky())
        assert 0 < store.pttl(b.storage.trial_key) <= 60_000
        store.delete(b.storage.trial_key)  # what the TTL does after trial_ttl_s
        assert b.call(Flaky(result="ok")) == "ok"

    def test_stale_outcomes_do_not_count_in_the_next_period(self, breaker: NexusBreaker, clock: FakeClock) -> None:
        # A call admitted before a trip that fails after the circuit closed again must not count.

        def slow_failure() -> NoReturn:
            trip(breaker)
            clock.advance(60)
            assert breaker.call(Flaky(result="ok")) == "ok"
            raise transient()

        with pytest.raises(TransientError):
            breaker.call(slow_failure)
        assert breaker.snapshot().state == "closed"
        assert breaker.snapshot().failures == 0

    def test_errors_outside_the_tree(self, breaker: NexusBreaker) -> None:
        for _ in range(6):
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)
        assert breaker.snapshot().state == "closed"

    def test_throw_new_error_on_trip(self, store: fakeredis.FakeRedis, clock: FakeClock) -> None:
        storage = RedisBreakerStorage("fedex", store)
        b = NexusBreaker("fedex", storage, policy=BreakerPolicy(fail_max=1), clock=clock,
                         throw_new_error_on_trip=True)  # fmt: skip
        with pytest.raises(BreakerOpenError) as info:
            b.call(Flaky(forever=transient()))
        assert isinstance(info.value.__cause__, TransientError)

    def test_disabled_breaker_passes_everything(self, make_breaker: Callable[..., NexusBreaker]) -> None:
        b = make_breaker(enabled=False)
        fn = Flaky(forever=transient())
        for _ in range(10):
            with pytest.raises(TransientError):
                b.call(fn)
        assert fn.calls == 10
        assert b.snapshot().state == "closed"

    def test_keys_are_namespaced_and_expire(
        self, breaker: NexusBreaker, store: fakeredis.FakeRedis, clock: FakeClock
    ) -> None:
        with pytest.raises(TransientError):
            breaker.call(Flaky(forever=transient()))
        assert breaker.storage.state_key == "nexus:breaker:workday:state"
        assert 0 < store.pttl("nexus:breaker:workday:state") <= 240_000
        trip(breaker, 4)
        clock.advance(60)

        def trial() -> str:
            assert 0 < store.pttl("nexus:breaker:workday:trial") <= 60_000
            return "ok"

        breaker.call(trial)
        assert sorted(k.decode() if isinstance(k, bytes) else k for k in store.keys("*")) == [
            "nexus:breaker:workday:state"
        ]
        assert all(store.pttl(k) > 0 for k in store.keys("*"))

    def test_forced_transitions_and_pybreaker_accessors(
        self, breaker: NexusBreaker, transitions: Transitions, clock: FakeClock
    ) -> None:
        breaker.open()
        assert breaker.current_state == pybreaker.STATE_OPEN
        assert isinstance(breaker.state, pybreaker.CircuitOpenState)
        assert breaker.storage.opened_at is not None
        assert breaker.storage.opened_at.timestamp() == pytest.approx(T0)
        breaker.half_open()
        assert breaker.current_state == pybreaker.STATE_HALF_OPEN
        breaker.close()
        assert breaker.current_state == pybreaker.STATE_CLOSED
        breaker.close()  # no change, no event
        assert transitions.events == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
        storage = breaker.storage
        storage.increment_counter()
        storage.increment_counter()
        assert breaker.fail_counter == 2
        storage.reset_counter()
        assert storage.counter == 0
        storage.increment_success_counter()
        assert storage.success_counter == 1
        storage.state = pybreaker.STATE_OPEN
        assert storage.state == pybreaker.STATE_OPEN

    def test_listener_hooks(self, breaker: NexusBreaker, transitions: Transitions) -> None:
        breaker.call(Flaky())
        with pytest.raises(TransientError):
            breaker.call(Flaky(forever=transient()))
        with pytest.raises(NotFoundError):
            breaker.call(Flaky(forever=NotFoundError("x")))
        assert (transitions.successes, transitions.failures) == (2, 1)

    def test_store_unreachable_fails_open(self, caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
        dead = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
        b = get_breaker("Lansweeper", redis=dead, policy=BreakerPolicy(fail_max=2), clock=clock)
        fn = Flaky(forever=transient())
        for _ in range(10):
            with pytest.raises(TransientError):  # never CircuitOpenError: the circuit is treated as CLOSED
                b.call(fn)
        assert fn.calls == 10
        assert b.call(Flaky(result="ok")) == "ok"
        warnings = [m for m in messages(caplog) if "Breaker store unavailable" in m]
        assert len(warnings) == 1
        assert warnings[0].startswith("[resilience] [Lansweeper] Breaker store unavailable (ConnectionError")
        assert "failing open" in warnings[0]
        snap = breaker_state("lansweeper", redis=dead)
        assert (snap["state"], snap["storage_ok"]) == ("closed", False)


class TestRegistry:
    def test_cached_per_system_and_store(self, clock: FakeClock) -> None:
        a = get_breaker("Workday", redis=MEMORY_URL, clock=clock)
        assert get_breaker("workday", redis=MEMORY_URL, clock=clock) is a
        assert get_breaker("Entra", redis=MEMORY_URL, clock=clock) is not a
        assert a.display == "Workday" and a.system == "workday" and a.name == "Workday"

    def test_state_reset_and_isolation(self, clock: FakeClock) -> None:
        policy = BreakerPolicy(fail_max=2, reset_timeout_s=60)
        wd = get_breaker("Workday", redis=MEMORY_URL, policy=policy, clock=clock)
        trip(wd, 2)
        state = breaker_state("Workday", redis=MEMORY_URL, clock=clock)
        assert state == {
            "state": "open",
            "failures": 2,
            "opened_at": "2023-11-14T22:13:20+00:00",
            "retry_in_s": 60.0,
            "storage_ok": True,
        }
        assert breaker_state("ad", redis=MEMORY_URL)["state"] == "closed"
        assert get_breaker("ActiveDirectory", redis=MEMORY_URL, policy=policy, clock=clock).call(Flaky()) == "data"
        reset_breaker("workday", redis=MEMORY_URL)
        assert breaker_state("workday", redis=MEMORY_URL)["state"] == "closed"
        assert breaker_state("workday", redis=MEMORY_URL)["retry_in_s"] is None

    def test_call_with_breaker(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from nexus import settings as settings_mod

        monkeypatch.setenv("NEXUS_BREAKER_REDIS_URL", MEMORY_URL + "call-with-breaker")
        monkeypatch.setenv("NEXUS_BREAKER_FAIL_MAX", "1")
        settings_mod.get_settings.cache_clear()
        try:
            assert call_with_breaker("intune", lambda x: x * 2, 21) == 42
            with pytest.raises(TransientError):
                call_with_breaker("intune", Flaky(forever=transient()))
            with pytest.raises(CircuitOpenError):
                call_with_breaker("intune", Flaky())

            async def ok() -> str:
                return "ok"

            with pytest.raises(CircuitOpenError):
                asyncio.run(acall_with_breaker("intune", ok))
            assert asyncio.run(acall_with_breaker("helix", ok)) == "ok"
        finally:
            settings_mod.get_settings.cache_clear()

    def test_translate_httpx_error(self) -> None:
        request = httpx.Request("GET", "https://x.example/")
        cases: list[tuple[httpx.HTTPError, type[Exception]]] = [
            (httpx.ConnectError("refused", request=request), TransientError),
            (httpx.ReadTimeout("slow", request=request), TransientError),
            (http_status_error(502), TransientError),
            (http_status_error(429, {"Retry-After": "9"}), ThrottledError),
            (http_status_error(404), NotFoundError),
            (http_status_error(401), AuthError),
            (http_status_error(422), BadRequestError),
            (httpx.DecodingError("bad gzip", request=request), MalformedResponseError),
        ]
        for exc, expected in cases:
            mapped = translate_httpx_error(exc, "Workday")
            assert type(mapped) is expected
            assert mapped is not None and mapped.system == "workday"
        throttled = translate_httpx_error(http_status_error(429, {"Retry-After": "9"}), "entra")
        assert isinstance(throttled, ThrottledError) and throttled.retry_after == 9
        assert translate_httpx_error(httpx.TooManyRedirects("loop", request=request), "x") is None

    def test_open_error_pickles(self) -> None:
        import pickle

        err = BreakerOpenError("Workday circuit breaker is OPEN", system="workday", retry_in_s=12.5)
        copy = pickle.loads(pickle.dumps(err))
        assert isinstance(copy, BreakerOpenError)
        assert isinstance(copy, CircuitOpenError) and isinstance(copy, pybreaker.CircuitBreakerError)
        assert copy.retry_in_s == 12.5
        assert copy.to_dict() == {"type": "BreakerOpenError", "kind": "breaker_open",
                                  "message": "Workday circuit breaker is OPEN", "retry_in_s": 12.5}  # fmt: skip
