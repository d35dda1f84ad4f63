"""Errors the MCP tools raise: every expected failure becomes a :class:`fastmcp.exceptions.ToolError` with one
clear line (bad input, Redis refusing writes, Nexus unavailable); schema failures lose fastmcp's multi-line
pydantic dump on the way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.types import CallToolRequestParams
from pydantic import ValidationError as PydanticValidationError

from nexus.audits.spec import validate_audit_id, validate_email, validate_email_list, validate_serial
from nexus.errors import AuditLost, InvalidInput, RedisRefused, ServiceUnavailable

log = logging.getLogger("nexus.mcp")

T = TypeVar("T")

MAX_ERROR_CHARS = 300


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking facade call off the event loop; map its errors to ToolError (expected errors, so fastmcp logs
    them below ERROR)."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except InvalidInput as exc:
        message = one_line(f"invalid input: {exc}")
        log.info("mcp: rejected a call: %s", message)
        raise ToolError(message, log_level=logging.INFO) from None
    except RedisRefused as exc:  # Redis is up: "check that Redis is running" would send the assistant astray
        log.warning("mcp: %s", exc)
        raise ToolError(one_line(str(exc)), log_level=logging.WARNING) from None
    except AuditLost as exc:  # Redis is back without it: retrying cannot bring it back
        log.warning("mcp: %s", exc)
        raise ToolError(one_line(f"{exc}; submit the audit again"), log_level=logging.WARNING) from None
    except ServiceUnavailable as exc:
        log.warning("mcp: %s", exc)
        raise ToolError(one_line(f"Nexus is unavailable: {exc}. Check that Redis and the workers are running, "
                                  "then retry."), log_level=logging.WARNING) from None


def explain_invalid_arguments(tool: str, arguments: dict[str, Any], exc: Exception, max_emails: int) -> str:
    """One clear line for arguments that failed the schema: the facade's wording when it has one for the value."""
    cause = exc.__cause__
    if not isinstance(cause, PydanticValidationError):
        return one_line(f"invalid input for {tool}: {str(exc).splitlines()[0] if str(exc) else 'bad arguments'}")
    first = cause.errors(include_url=False, include_context=False)[0]
    loc = first.get("loc") or ()
    param = str(loc[0]) if loc else "arguments"
    if first["type"].startswith("missing"):  # missing, missing_argument, ...
        detail = f"{param} is required"
    elif first["type"].startswith("unexpected") or first["type"] == "extra_forbidden":
        detail = f"unknown argument {param!r}"
    else:
        detail = _domain_message(param, arguments.get(param), max_emails) or f"{param}: {first['msg']}"
    return one_line(f"invalid input for {tool}: {detail}")


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
