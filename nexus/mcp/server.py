"""The MCP server (fastmcp): audit tools for an AI assistant, over stdio or streamable HTTP.

Every tool goes through the facade (:class:`nexus.facade.Nexus`), like the CLI: audits are validated, stored and
enqueued on the Celery workers, and read back from Redis. Audits are asynchronous: an ``audit_*`` tool returns an
``audit_id`` at once; the assistant polls ``get_audit``. An optional short wait (``wait_s`` <= 30 s) returns a quick
audit's report in the same call.

Errors: bad input is rejected twice, by the pydantic constraints of the tool signature (visible in the JSON schema)
and by the facade's own validation; both become a :class:`fastmcp.exceptions.ToolError` with one clear line, and
nothing is enqueued. Redis or the broker unreachable is a ``ToolError`` too, and so is Redis refusing the write
("Redis refused the write: out of memory"). Other failures are masked (the client
sees "Error calling tool ..."; the traceback goes to the log), so no internal detail leaks to the client.

Logs go to stderr only: with the stdio transport, stdout carries the protocol.
"""

# No `from __future__ import annotations`: fastmcp reads the tools' signatures at runtime, and the bulk tool's
# list limit is a closure variable that a string annotation could not resolve.
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastmcp import FastMCP
from fastmcp.server.auth import TokenVerifier
from mcp.types import ToolAnnotations
from pydantic import Field

from nexus.audits.store import TERMINAL
from nexus.facade import Nexus
from nexus.mcp.errors import ClearArgumentErrors, in_thread
from nexus.mcp.schema import (
    DEFAULT_MAX_ENTRIES,
    AuditId,
    AuditList,
    AuditSummary,
    AuditView,
    Email,
    MaxEntries,
    Serial,
    WaitSeconds,
    iso,
    to_view,
)
from nexus.settings import Settings, get_settings

log = logging.getLogger("nexus.mcp")

SERVER_NAME = "nexus"
POLL_S = 0.25

INSTRUCTIONS = """\
Nexus audits identity and device drift across Workday, Active Directory, Entra ID, Intune, Lansweeper, BMC Helix and
FedEx (for example a terminated worker whose AD account is still enabled, or a laptop assigned to different people).
Audits run asynchronously on background workers: an audit_* tool returns an audit_id immediately; call get_audit with
that id every few seconds until status is "done" or "failed". Pass wait_s (up to 30) to wait for a quick audit and get
its report in one call. A report lists discrepancies with a severity, the CIS control each evidences ("control") and a
remediation hint. Kinds: account_enabled (terminated but enabled), account_exists, orphaned_account (an enabled
account of no worker), ambiguous_account (two accounts for one worker, or one matching two), dormant_account (no
sign-in for 45 days), job_title, department, manager, display_name, device_owner, last_sync, compliance,
device_active, return_shipment, unmanaged_device (on the network, not in Intune), unregistered_device (not in the
Helix register). Systems that could not be read are listed in
systems_failed (their *_found is null: not looked at). An audit in which no system could be read has status
"failed" and an error starting "no system could be read" (each system's reason follows): it says nothing about
drift. Run check_system_health first if results look partial or failed.
"""

ENQUEUE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
PROBE = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def build_server(
    *,
    settings: Settings | None = None,
    nexus_factory: Callable[[], Nexus] | None = None,
    auth: TokenVerifier | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> FastMCP:
    """The FastMCP server with Nexus's tools. Everything injectable for tests (facade, health probe, clock, sleep)."""
    settings = settings or get_settings()
    make_nexus: Callable[[], Nexus] = nexus_factory or Nexus
    max_emails = settings.bulk_max_emails
    from nexus import __version__

    server = FastMCP(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__, auth=auth,
                     mask_error_details=True, middleware=[ClearArgumentErrors(max_emails)])

    async def observe(nx: Nexus, audit_id: str, wait_s: float, max_entries: int = DEFAULT_MAX_ENTRIES) -> AuditView:
        deadline = clock() + wait_s
        while True:
            raw = await in_thread(nx.get, audit_id)
            remaining = deadline - clock()
            if raw["status"] in TERMINAL or remaining <= 0:
                return to_view(raw, max_entries)
            await sleep(min(poll_s, remaining))

    async def enqueue(wait_s: float, **subject: Any) -> AuditView:
        nx = make_nexus()
        request = await in_thread(nx.request_for, **subject)
        audit_id = await in_thread(nx.submit, request)
        log.info("mcp: enqueued a %s audit", request.kind.value, extra={"audit_id": audit_id})
        return await observe(nx, audit_id, wait_s)

    @server.tool(annotations=ENQUEUE)
    async def audit_user_drift(
        email: Annotated[Email, Field(description="The person's work email, e.g. jane.doe@example.com (ASCII).")],
        wait_s: WaitSeconds = 0,
    ) -> AuditView:
        """Audit one person for identity drift across Workday, Active Directory and Entra ID (a terminated worker
        still enabled, job title, department, manager or employee id that disagree, a second or dormant account; an
        address no worker has reports the orphaned account it finds). Asynchronous: returns audit_id
        and status at once; poll get_audit(audit_id) until finished, or set wait_s (up to 30) to get the report in
        this call when the audit is quick (usually a few seconds)."""
        return await enqueue(wait_s, email=email)

    @server.tool(annotations=ENQUEUE)
    async def audit_device_drift(
        serial: Annotated[Serial, Field(description="The device serial number (3-50 letters, digits or dashes).")],
        wait_s: WaitSeconds = 0,
    ) -> AuditView:
        """Audit one device across Intune, Lansweeper and BMC Helix, with its owner in Workday/AD/Entra and any
        return shipment in FedEx (owner mismatches, devices of departed people, returns that never arrived, a device
        Intune does not manage or the Helix register does not hold).
        Asynchronous: returns audit_id at once; poll get_audit(audit_id), or set wait_s (up to 30)."""
        return await enqueue(wait_s, serial=serial)

    @server.tool(annotations=ENQUEUE)
    async def audit_bulk_user_drift(
        emails: Annotated[list[Email], Field(
            min_length=1, max_length=max_emails,
            description=f"Work emails to audit (1 to {max_emails}); duplicates are audited once.")],
        wait_s: WaitSeconds = 0,
    ) -> AuditView:
        """Audit many people at once (one report with per-person entries and a summary by severity, field and
        system). Asynchronous: returns audit_id at once; poll get_audit(audit_id) and watch progress.done/total, or
        set wait_s (up to 30) for a small list. A system that is down is skipped quickly for everyone (circuit
        breaker) and reported in systems_failed."""
        return await enqueue(wait_s, emails=list(emails))

    @server.tool(annotations=ENQUEUE)
    async def audit_fleet_drift(wait_s: WaitSeconds = 0) -> AuditView:
        """Audit everyone and every device in both directions (workers to accounts and accounts to workers:
        orphaned, ambiguous and dormant accounts; register to devices and network to register: unmanaged and
        unregistered devices), the weekly fleet audit on demand. Long-running: returns audit_id at
        once; poll get_audit(audit_id) every few seconds or minutes and watch progress (wait_s rarely helps here)."""
        return await enqueue(wait_s, fleet=True)

    @server.tool(annotations=READ)
    async def get_audit(
        audit_id: Annotated[AuditId, Field(description="The audit_id returned by an audit_* tool (32 hex).")],
        max_entries: MaxEntries = DEFAULT_MAX_ENTRIES,
    ) -> AuditView:
        """Status, progress and (once done) the report of an audit. Poll this until finished is true."""
        return await observe(make_nexus(), audit_id, 0, max_entries)

    @server.tool(annotations=READ)
    async def list_audits(
        limit: Annotated[int, Field(ge=1, le=100, description="How many audits, newest first (1-100).")] = 20,
    ) -> AuditList:
        """Recent audits, newest first: id, kind, status, description and times (no reports; use get_audit)."""
        rows = await in_thread(make_nexus().list, limit)
        audits = [AuditSummary(audit_id=r["audit_id"], kind=r["kind"], status=r["status"],
                               description=r.get("description", ""), created_at=iso(r["created_at"]),
                               updated_at=iso(r["updated_at"])) for r in rows]
        return AuditList(audits=audits, count=len(audits))

    @server.tool(annotations=PROBE)
    async def check_system_health() -> dict[str, Any]:
        """Ping every configured source system now and report availability, response time and circuit-breaker
        state; Nexus's own infrastructure (Redis, the broker, the workers answering a ping, each queue's depth); and
        a summary. availability_percentage is what an audit can use now: 0 when Redis or the broker is down
        (infrastructure_ok false, reason says why). Below 80%, expect partial audit results or postpone bulk
        audits. Nothing configured at all is an error naming the settings to set."""
        from fastmcp.exceptions import ToolError

        from nexus.errors import InvalidInput
        from nexus.health import check_system_health as probe

        try:
            return await anyio.to_thread.run_sync(health or probe)
        except InvalidInput as exc:  # nothing configured: every missing setting named (not cut at 300 characters)
            raise ToolError(" ".join(str(exc).split()), log_level=logging.INFO) from None

    return server


def route_fastmcp_logs() -> None:
    """fastmcp logs to its own rich handler; send its records through the root handler instead (one format on
    stderr, JSON with NEXUS_LOG_FORMAT=json, secrets redacted)."""
    fastmcp_logger = logging.getLogger("fastmcp")
    for handler in list(fastmcp_logger.handlers):
        fastmcp_logger.removeHandler(handler)
    fastmcp_logger.propagate = True


def run_mcp(transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765, path: str = "/mcp") -> None:
    """Serve until interrupted (stdio: until the client closes stdin). HTTP is streamable HTTP at ``path``."""
    settings = get_settings()
    route_fastmcp_logs()
    if transport == "stdio":
        server = build_server(settings=settings)
        log.info("nexus mcp: serving on stdio (logs on stderr)")
        server.run(transport="stdio", show_banner=False)
    elif transport == "http":
        from nexus.mcp.auth import build_verifier, warn_if_exposed

        verifier = build_verifier(settings)
        if not warn_if_exposed(host, verifier) and verifier is None:
            log.warning("nexus mcp: no NEXUS_MCP_TOKEN or JWT verifier configured: HTTP without authentication "
                        "(loopback only)")
        server = build_server(settings=settings, auth=verifier)
        log.info("nexus mcp: serving streamable HTTP on http://%s:%d%s (%s)", host, port, path,
                 "bearer token required" if verifier is not None else "no authentication")
        # log_config=None: uvicorn's loggers propagate to the root handler (stderr) instead of its stdout default.
        server.run(transport="http", host=host, port=port, path=path, show_banner=False,
                   uvicorn_config={"log_config": None})
    else:
        raise ValueError(f"unknown MCP transport {transport!r} (stdio or http)")
