"""`check_system_health`: ping every system concurrently, in the seed's format, plus each breaker's state.

Pings bypass the breakers on purpose: the point is to see whether a system is back, and a ping must not count
toward opening or closing a breaker. Each ping is bounded by the client's timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from nexus.runtime import current
from nexus.systems import HEALTH_SYSTEMS, System


def _ping(system: System, client_factory: Callable[[System], Any]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        client = client_factory(system)
        client.health()
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return {"available": False, "error": f"{type(exc).__name__}: {message}"[:300],
                "response_time_ms": round((time.perf_counter() - start) * 1000)}
    return {"available": True, "response_time_ms": round((time.perf_counter() - start) * 1000)}


def _breaker(system: System) -> dict[str, Any] | None:
    try:
        return dict(current().breaker(system).snapshot().to_dict())
    except Exception as exc:
        return {"state": "unknown", "error": type(exc).__name__}


def check_system_health(
    systems: tuple[System, ...] = HEALTH_SYSTEMS, client_factory: Callable[[System], Any] | None = None
) -> dict[str, Any]:
    if client_factory is None:
        client_factory = current().client
    with ThreadPoolExecutor(max_workers=len(systems)) as pool:
        results = dict(zip(systems, pool.map(lambda s: _ping(s, client_factory), systems), strict=True))
    out: dict[str, Any] = {}
    for system, result in results.items():
        breaker = _breaker(system)
        if breaker is not None:
            result["breaker"] = breaker
        out[system.display] = result
    available = sum(1 for r in out.values() if r["available"])
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "systems": out,
        "summary": {
            "total_systems": len(out),
            "available_systems": available,
            "unavailable_systems": len(out) - available,
            "availability_percentage": round(100 * available / len(out)) if out else 0,
        },
    }
