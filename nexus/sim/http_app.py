"""The one HTTP app that serves every HTTP simulator on one port, plus the contract's `/_sim/*` control API.

Each system lives under its own prefix (``/workday``, ``/azure``, ``/graph``, ``/lansweeper``, ``/helix``,
``/fedex``), so its base URL is ``http://host:port/<prefix>`` and the clients append the real API paths. Before a
request reaches a simulator, :class:`FaultAndLogMiddleware` records it in the request log, waits the system's
latency and applies its fault.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.sim.base import SimContext, SystemSim
from nexus.sim.faults import Fault, FaultSpecError


class FaultAndLogMiddleware:
    """Pure ASGI middleware: request log, latency, and the generic faults, answered in each system's format."""

    def __init__(self, app: ASGIApp, ctx: SimContext, sims: list[SystemSim]) -> None:
        self.app = app
        self.ctx = ctx
        self.sims = sorted(sims, key=lambda s: len(s.prefix), reverse=True)

    def _sim_for(self, path: str) -> SystemSim | None:
        for sim in self.sims:
            if path == sim.prefix or path.startswith(sim.prefix + "/"):
                return sim
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        sim = self._sim_for(path)
        if sim is None:
            await self.app(scope, receive, send)
            return
        sub_path = path[len(sim.prefix):] or "/"
        system = sim.system_for(sub_path)
        query = scope.get("query_string", b"").decode("latin-1")
        self.ctx.log.record(system, sub_path, query)
        latency = self.ctx.latency_ms.get(system, 0)
        if latency:
            await asyncio.sleep(latency / 1000)
        response = await self._fault_response(sim, system)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _fault_response(self, sim: SystemSim, system: str) -> Response | None:
        mode = self.ctx.faults.decide(system)
        if mode is None:
            return None
        fault = self.ctx.faults.get(system)
        if mode == "down":
            return sim.error(503, f"{system} is unavailable", code="ServiceUnavailable")
        if mode == "flaky":
            return sim.error(503, f"{system} transient failure", code="ServiceUnavailable")
        if mode == "slow" and fault is not None:
            await asyncio.sleep(fault.delay_ms / 1000)
            return None
        if mode == "throttle" and fault is not None:
            retry_after = fault.retry_after
            shown = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            return sim.error(429, "Too many requests", code="TooManyRequests", headers={"Retry-After": shown})
        if mode == "malformed":
            return sim.malformed()
        return None  # expired_token and truncated are applied by the simulator itself


def _control_routes(ctx: SimContext) -> list[Route]:
    async def set_fault(request: Request) -> Response:
        try:
            body: Any = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        try:
            fault = Fault.parse(body)
        except FaultSpecError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        ctx.faults.set(fault)
        return JSONResponse({"faults": ctx.faults.snapshot()})

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": ctx.faults.snapshot()})

    async def clear_faults(request: Request) -> Response:
        system = request.query_params.get("system")
        ctx.faults.clear(system)
        return JSONResponse({"faults": ctx.faults.snapshot()})

    async def get_requests(request: Request) -> Response:
        if request.query_params.get("recent"):
            return JSONResponse({"recent": ctx.log.recent(request.query_params.get("system"))})
        return JSONResponse(ctx.log.snapshot())

    async def reset_requests(request: Request) -> Response:
        ctx.log.reset()
        return JSONResponse({})

    async def expire_tokens(request: Request) -> Response:
        ctx.tokens.expire_all(request.query_params.get("system"))
        return JSONResponse({})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "people": ctx.org.people, "seed": ctx.org.seed})

    return [
        Route("/_sim/faults", set_fault, methods=["POST"]),
        Route("/_sim/faults", list_faults, methods=["GET"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/requests", get_requests, methods=["GET"]),
        Route("/_sim/requests", reset_requests, methods=["DELETE"]),
        Route("/_sim/tokens", expire_tokens, methods=["DELETE"]),
        Route("/_sim/health", health, methods=["GET"]),
    ]


def build_app(ctx: SimContext, sims: list[SystemSim]) -> ASGIApp:
    """The composed ASGI app: every simulator mounted under its prefix, the control API, the middleware."""
    routes: list[Any] = _control_routes(ctx)
    routes += [Mount(sim.prefix, routes=sim.routes()) for sim in sims]
    app = Starlette(routes=routes)
    return FaultAndLogMiddleware(app, ctx, sims)
