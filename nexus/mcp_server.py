"""The MCP server (fastmcp): audit tools for an AI assistant, over stdio or streamable HTTP.

Every tool goes through the facade (:class:`nexus.facade.Nexus`), like the CLI: audits are validated, stored and
enqueued on the Celery workers, and read back from Redis. Audits are asynchronous: an ``audit_*`` tool returns an
``audit_id`` at once; the assistant polls ``get_audit``. An optional short wait (``wait_s`` <= 30 s) returns a quick
audit's report in the same call.

Errors: bad input is rejected twice, by the pydantic constraints of the tool signature (visible in the JSON schema)
and by the facade's own validation; both become a :class:`fastmcp.exceptions.ToolError` with one clear line, and
nothing is enqueued. Redis or the broker unreachable is a ``ToolError`` too. Other failures are masked (the client
sees "Error calling tool ..."; the traceback goes to the log), so no internal detail leaks to the client.

Logs go to stderr only: with the stdio transport, stdout carries the protocol.
"""

# No `from __future__ import annotations`: fastmcp reads the tools' signatures at runtime, and the bulk tool's
# list limit is a closure variable that a string annotation could not resolve.
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.auth import TokenVerifier
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.types import CallToolRequestParams, ToolAnnotations
from pydantic import BaseModel, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from nexus.audits.spec import (
    EMAIL_PATTERN,
    MAX_EMAIL_LENGTH,
    SERIAL_PATTERN,
    validate_audit_id,
    validate_email,
    validate_email_list,
    validate_serial,
)
from nexus.audits.store import TERMINAL
from nexus.drift.fields import SEVERITY_ORDER
from nexus.errors import InvalidInput, ServiceUnavailable
from nexus.facade import Nexus
from nexus.settings import Settings, get_settings

log = logging.getLogger("nexus.mcp")

T = TypeVar("T")

SERVER_NAME = "nexus"
MAX_WAIT_S = 30.0
POLL_S = 0.25
DEFAULT_MAX_ENTRIES = 100
AUDIT_ID_PATTERN = r"^[0-9a-fA-F]{32}$"
MAX_ERROR_CHARS = 300

INSTRUCTIONS = """\
Nexus audits identity and device drift across Workday, Active Directory, Entra ID, Intune, Lansweeper, BMC Helix and
FedEx (for example a terminated worker whose AD account is still enabled, or a laptop assigned to different people).
Audits run asynchronously on background workers: an audit_* tool returns an audit_id immediately; call get_audit with
that id every few seconds until status is "done" or "failed". Pass wait_s (up to 30) to wait for a quick audit and get
its report in one call. A report lists discrepancies with a severity; systems that could not be read are listed in
systems_failed (their *_found is null: not looked at). Run check_system_health first if results look partial.
"""

# -- input types (their constraints appear in each tool's JSON schema) -------------------------------------------------
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_EMAIL_LENGTH, pattern=EMAIL_PATTERN)]
Serial = Annotated[str, StringConstraints(strip_whitespace=True, pattern=SERIAL_PATTERN)]
AuditId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=AUDIT_ID_PATTERN)]
WaitSeconds = Annotated[float, Field(
    ge=0, le=MAX_WAIT_S,
    description=f"Seconds to wait for the audit to finish before returning (0-{MAX_WAIT_S:g}; 0 = return at once). "
                "If it finishes in time, the report is included; otherwise poll get_audit.")]
MaxEntries = Annotated[int, Field(
    ge=0, le=10_000,
    description="The most items of any list in the report to include: bulk entries (people with drift first), "
                "fleet discrepancies (most severe first). Counts and summary always cover everything.")]


# -- outputs ---------------------------------------------------------------------------------------------------------
class Progress(BaseModel):
    total: int = Field(description="Subjects to audit (people or devices).")
    done: int = Field(description="Subjects finished so far.")
    systems: dict[str, Any] = Field(default_factory=dict, description="Per-system fetch state, by system id.")


class AuditView(BaseModel):
    """An audit as the assistant sees it: status, progress, and the report once it is done."""

    audit_id: str = Field(description="32 hex characters; pass it to get_audit.")
    kind: str = Field(description="user | device | bulk | fleet")
    status: str = Field(description="queued | running | done | failed")
    finished: bool = Field(description="True once status is done or failed (stop polling).")
    description: str
    created_at: str = Field(description="UTC, ISO 8601.")
    updated_at: str = Field(description="UTC, ISO 8601.")
    progress: Progress
    error: str | None = Field(None, description="Why the audit failed (status failed).")
    report: dict[str, Any] | None = Field(
        None, description="The drift report once status is done (null before). A user report has email, "
                          "systems_checked, systems_available, systems_failed, <system>_found, discrepancy_count, "
                          "discrepancies[{field, system_a, value_a, system_b, value_b, severity}] and errors.")
    omitted: dict[str, int] = Field(
        default_factory=dict, description="Report lists shortened in this answer: list name -> items left out "
                                          "(see get_audit's max_entries). Empty when the report is complete.")
    next_step: str = Field(description="What to do next.")


class AuditSummary(BaseModel):
    audit_id: str
    kind: str
    status: str
    description: str
    created_at: str
    updated_at: str


class AuditList(BaseModel):
    audits: list[AuditSummary] = Field(description="Newest first.")
    count: int


# -- helpers ---------------------------------------------------------------------------------------------------------
def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking facade call off the event loop; map its errors to ToolError (expected errors, so fastmcp logs
    them below ERROR)."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except InvalidInput as exc:
        message = _one_line(f"invalid input: {exc}")
        log.info("mcp: rejected a call: %s", message)
        raise ToolError(message, log_level=logging.INFO) from None
    except ServiceUnavailable as exc:
        log.warning("mcp: %s", exc)
        raise ToolError(_one_line(f"Nexus is unavailable: {exc}. Check that Redis and the workers are running, "
                                  "then retry."), log_level=logging.WARNING) from None


def _has_drift(item: Any) -> bool:
    return isinstance(item, dict) and bool(item.get("discrepancy_count") or item.get("discrepancies"))


def _severity_rank(item: Any) -> int:
    severity = item.get("severity") if isinstance(item, dict) else None
    ranks = {s.value: rank for s, rank in SEVERITY_ORDER.items()}
    return ranks.get(str(severity), len(ranks))


def trim_report(report: dict[str, Any], max_items: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Shorten every top-level list of the report to ``max_items``, keeping what matters first and the order.

    Only lists of records are shortened: ``entries`` (bulk) people with drift first, ``discrepancies`` (fleet) most
    severe first, other lists the first ones. Returns the report (a copy when trimmed) and how many items each
    shortened list lost.
    """
    trimmed = dict(report)
    omitted: dict[str, int] = {}
    for key, value in report.items():
        if not isinstance(value, list) or len(value) <= max_items or not all(isinstance(v, dict) for v in value):
            continue  # short, or a list of names (systems_checked, ...): never shortened
        if key == "entries":
            ranked = [(int(not _has_drift(item)), i) for i, item in enumerate(value)]
        elif key == "discrepancies":
            ranked = [(_severity_rank(item), i) for i, item in enumerate(value)]
        else:
            ranked = [(0, i) for i in range(len(value))]
        keep = sorted(i for _, i in sorted(ranked)[:max_items])
        trimmed[key] = [value[i] for i in keep]
        omitted[key] = len(value) - len(keep)
    return (trimmed if omitted else report), omitted


def to_view(raw: dict[str, Any], max_entries: int = DEFAULT_MAX_ENTRIES) -> AuditView:
    """The facade's ``get`` dict as the tool's output model."""
    audit_id = raw["audit_id"]
    status = raw["status"]
    report = raw.get("report")
    omitted: dict[str, int] = {}
    if isinstance(report, dict):
        report, omitted = trim_report(report, max_entries)
    if status == "done":
        next_step = "Finished: the report is in `report`."
        if omitted:
            left_out = ", ".join(f"{n} {key}" for key, n in omitted.items())
            next_step += (f" Shortened here ({left_out} left out; counts and summary cover everything): raise "
                          f"max_entries, or run `nexus audit result {audit_id} --format json` for the whole report.")
    elif status == "failed":
        next_step = "The audit failed (see `error`). Run check_system_health, then retry the audit."
    else:
        next_step = f"The audit runs in the background. Call get_audit(audit_id=\"{audit_id}\") in a few seconds."
    progress = raw.get("progress") or {}
    return AuditView(
        audit_id=audit_id, kind=raw["kind"], status=status, finished=status in TERMINAL,
        description=raw.get("description", ""), created_at=_iso(raw["created_at"]),
        updated_at=_iso(raw["updated_at"]),
        progress=Progress(total=int(progress.get("total", 0)), done=int(progress.get("done", 0)),
                          systems=dict(progress.get("systems") or {})),
        error=raw.get("error") or None, report=report, omitted=omitted, next_step=next_step,
    )


def explain_invalid_arguments(tool: str, arguments: dict[str, Any], exc: Exception, max_emails: int) -> str:
    """One clear line for arguments that failed the schema: the facade's wording when it has one for the value."""
    cause = exc.__cause__
    if not isinstance(cause, PydanticValidationError):
        return _one_line(f"invalid input for {tool}: {str(exc).splitlines()[0] if str(exc) else 'bad arguments'}")
    first = cause.errors(include_url=False, include_context=False)[0]
    loc = first.get("loc") or ()
    param = str(loc[0]) if loc else "arguments"
    if first["type"].startswith("missing"):  # missing, missing_argument, ...
        detail = f"{param} is required"
    elif first["type"].startswith("unexpected") or first["type"] == "extra_forbidden":
        detail = f"unknown argument {param!r}"
    else:
        detail = _domain_message(param, arguments.get(param), max_emails) or f"{param}: {first['msg']}"
    return _one_line(f"invalid input for {tool}: {detail}")


def _domain_message(param: str, value: Any, max_emails: int) -> str | None:
    validators: dict[str, Callable[[Any], object]] = {
        "email": validate_email,
        "serial": validate_serial,
        "audit_id": validate_audit_id,
        "emails": lambda v: validate_email_list(v, max_emails),
    }
    validator = validators.get(param)
    if validator is None:
        return None
    try:
        validator(value)
    except InvalidInput as exc:
        return str(exc)
    return None  # the facade would accept it; the schema is stricter (e.g. surrounding junk): use pydantic's words


class ClearArgumentErrors(Middleware):
    """fastmcp reports schema failures as multi-line pydantic dumps; turn them into one-line ``ToolError``s."""

    def __init__(self, max_emails: int) -> None:
        self.max_emails = max_emails

    async def on_call_tool(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        try:
            return await call_next(context)
        except ArgumentsError as exc:
            message = explain_invalid_arguments(context.message.name, dict(context.message.arguments or {}), exc,
                                                self.max_emails)
            log.info("mcp: rejected a call: %s", message)
            raise ToolError(message, log_level=logging.INFO) from None


# -- the server ------------------------------------------------------------------------------------------------------
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
            raw = await _in_thread(nx.get, audit_id)
            remaining = deadline - clock()
            if raw["status"] in TERMINAL or remaining <= 0:
                return to_view(raw, max_entries)
            await sleep(min(poll_s, remaining))

    async def enqueue(wait_s: float, **subject: Any) -> AuditView:
        nx = make_nexus()
        request = await _in_thread(nx.request_for, **subject)
        audit_id = await _in_thread(nx.submit, request)
        log.info("mcp: enqueued a %s audit", request.kind.value, extra={"audit_id": audit_id})
        return await observe(nx, audit_id, wait_s)

    @server.tool(annotations=ENQUEUE)
    async def audit_user_drift(
        email: Annotated[Email, Field(description="The person's work email, e.g. jane.doe@example.com (ASCII).")],
        wait_s: WaitSeconds = 0,
    ) -> AuditView:
        """Audit one person for identity drift across Workday, Active Directory and Entra ID (a terminated worker
        still enabled, job title, department, manager or employee id that disagree). Asynchronous: returns audit_id
        and status at once; poll get_audit(audit_id) until finished, or set wait_s (up to 30) to get the report in
        this call when the audit is quick (usually a few seconds)."""
        return await enqueue(wait_s, email=email)

    @server.tool(annotations=ENQUEUE)
    async def audit_device_drift(
        serial: Annotated[Serial, Field(description="The device serial number (3-50 letters, digits or dashes).")],
        wait_s: WaitSeconds = 0,
    ) -> AuditView:
        """Audit one device across Intune, Lansweeper and BMC Helix, with its owner in Workday/AD/Entra and any
        return shipment in FedEx (owner mismatches, devices of departed people, returns that never arrived).
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
        """Audit everyone and every device (the weekly fleet audit, on demand). Long-running: returns audit_id at
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
        rows = await _in_thread(make_nexus().list, limit)
        audits = [AuditSummary(audit_id=r["audit_id"], kind=r["kind"], status=r["status"],
                               description=r.get("description", ""), created_at=_iso(r["created_at"]),
                               updated_at=_iso(r["updated_at"])) for r in rows]
        return AuditList(audits=audits, count=len(audits))

    @server.tool(annotations=PROBE)
    async def check_system_health() -> dict[str, Any]:
        """Ping every source system now and report availability, response time and circuit-breaker state, with a
        summary (availability_percentage). Below 80%, expect partial audit results or postpone bulk audits."""
        if health is not None:
            return await anyio.to_thread.run_sync(health)
        from nexus.health import check_system_health as probe

        return await anyio.to_thread.run_sync(probe)

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
        from nexus.mcp_auth import build_verifier, warn_if_exposed

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
