"""`check_system_health`: ping every configured system concurrently, in the seed's format, plus each breaker's state,
and Nexus's own infrastructure: Redis (the stores), the broker, the workers answering a ping, each queue's depth.

Pings bypass the breakers on purpose: the point is to see whether a system is back, and a ping must not count
toward opening or closing a breaker. Each ping is bounded by the client's timeouts.

Honesty rules: a system without credentials is not configured: its row says which settings are missing and it is
never dialled; with nothing configured at all the check raises :class:`InvalidInput` ("not configured: ...") before
touching anything (no Redis, no vendor). With Redis or the broker down no audit can run, so
``summary.availability_percentage`` is 0 and ``summary.reason`` says why, whatever the systems answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from nexus.errors import InvalidInput
from nexus.runtime import current
from nexus.settings import Settings, missing_settings, not_configured_message
from nexus.systems import HEALTH_SYSTEMS, System

#: How long the workers have to answer the control ping (they answer from their main process, at once).
WORKER_PING_TIMEOUT_S = 1.0


def _elapsed_ms(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)


def _error(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"[:300]


def _ping(system: System, client_factory: Callable[[System], Any]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        client = client_factory(system)
        client.health()
    except Exception as exc:
        return {"available": False, "error": _error(exc), "response_time_ms": _elapsed_ms(start)}
    return {"available": True, "response_time_ms": _elapsed_ms(start)}


def _breaker(system: System) -> dict[str, Any] | None:
    try:
        return dict(current().breaker(system).snapshot().to_dict())
    except Exception as exc:
        return {"state": "unknown", "error": type(exc).__name__}


# -- infrastructure --------------------------------------------------------------------------------------------------
def _redis_row() -> dict[str, Any]:
    start = time.perf_counter()
    try:
        current().redis.ping()
    except Exception as exc:
        return {"available": False, "error": f"Redis unreachable: {_error(exc)}",
                "response_time_ms": _elapsed_ms(start)}
    return {"available": True, "response_time_ms": _elapsed_ms(start)}


def _queue_depths(conn: Any) -> dict[str, int]:
    """Messages waiting in each queue. A passive declare of a queue that holds nothing fails on the Redis
    transport (an empty list is no key): that is depth 0."""
    from kombu.exceptions import ChannelError

    from workers.routing import ALL_QUEUES

    depths: dict[str, int] = {}
    channel = conn.channel()
    try:
        for name in ALL_QUEUES:
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:
                depths[name] = 0
    finally:
        channel.close()
    return depths


def _broker_rows() -> dict[str, dict[str, Any]]:
    """Broker, Workers and Queues rows (the broker is the Celery app's: what submit publishes to)."""
    from workers.app import celery_app

    start = time.perf_counter()
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
            broker = {"available": True, "response_time_ms": _elapsed_ms(start)}
            depths = _queue_depths(conn)
    except Exception as exc:
        down = f"broker unreachable: {_error(exc)}"
        return {"Broker": {"available": False, "error": down, "response_time_ms": _elapsed_ms(start)},
                "Workers": {"available": False, "count": 0, "names": [], "error": down},
                "Queues": {"available": False, "depth": {}, "error": down}}
    try:
        replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT_S) or []
        names = sorted(name for reply in replies for name in reply)
        workers: dict[str, Any] = {"available": bool(names), "count": len(names), "names": names}
        if not names:
            workers["error"] = f"no worker answered a ping within {WORKER_PING_TIMEOUT_S:g} s"
    except Exception as exc:
        workers = {"available": False, "count": 0, "names": [], "error": _error(exc)}
    return {"Broker": broker, "Workers": workers, "Queues": {"available": True, "depth": depths}}


def check_infrastructure() -> dict[str, dict[str, Any]]:
    """Rows for Redis (the stores), the broker, the workers and the queues, checked concurrently."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        redis_row = pool.submit(_redis_row)
        broker_rows = pool.submit(_broker_rows)
        return {"Redis": redis_row.result(), **broker_rows.result()}


def _infrastructure_problem(infrastructure: dict[str, dict[str, Any]]) -> str | None:
    down = [infrastructure[name].get("error") or f"{name} unavailable" for name in ("Redis", "Broker")
            if not infrastructure.get(name, {}).get("available")]
    return "; ".join(down) if down else None


# -- the check -------------------------------------------------------------------------------------------------------
def check_system_health(
    systems: tuple[System, ...] = HEALTH_SYSTEMS,
    client_factory: Callable[[System], Any] | None = None,
    *,
    settings: Settings | None = None,
    infrastructure: Callable[[], dict[str, dict[str, Any]]] | None = None,
    breaker: Callable[[System], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The report: ``timestamp``, ``systems`` (the seed's rows), ``infrastructure`` and ``summary``.

    Raises :class:`InvalidInput` when no system is configured (nothing is contacted). ``settings``,
    ``client_factory``, ``infrastructure`` and ``breaker`` default to the process runtime's (tests inject them)."""
    settings = settings if settings is not None else current().settings
    missing = missing_settings(settings)
    if all(system in missing for system in systems):
        raise InvalidInput(not_configured_message({s: missing[s] for s in systems}))
    client_factory = client_factory if client_factory is not None else current().client
    probe_infrastructure = infrastructure if infrastructure is not None else check_infrastructure
    read_breaker = breaker if breaker is not None else _breaker
    configured = [s for s in systems if s not in missing]
    with ThreadPoolExecutor(max_workers=len(configured) + 1) as pool:
        infra_future = pool.submit(probe_infrastructure)
        pings = dict(zip(configured, pool.map(lambda s: _ping(s, client_factory), configured), strict=True))
        infra = infra_future.result()
    out: dict[str, Any] = {}
    for system in systems:
        if system in missing:
            out[system.display] = {"available": False, "configured": False,
                                   "error": f"not configured: set {', '.join(missing[system])}"}
            continue
        result = pings[system]
        state = read_breaker(system)
        if state is not None:
            result["breaker"] = state
        out[system.display] = result
    available = sum(1 for r in out.values() if r["available"])
    problem = _infrastructure_problem(infra)
    summary: dict[str, Any] = {
        "total_systems": len(out),
        "available_systems": available,
        "unavailable_systems": len(out) - available,
        # What an audit can use now: nothing while Redis or the broker is down.
        "availability_percentage": 0 if problem or not out else round(100 * available / len(out)),
        "infrastructure_ok": problem is None,
        "workers": int(infra.get("Workers", {}).get("count", 0)),
    }
    if problem:
        summary["reason"] = f"Nexus cannot run audits: {problem}"
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "systems": out,
        "infrastructure": infra,
        "summary": summary,
    }
