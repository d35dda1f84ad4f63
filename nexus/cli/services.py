"""The long-running front doors besides the worker: `nexus mcp`, `nexus beat` and `nexus flower`."""

from __future__ import annotations

from typing import Annotated

import typer

from nexus.cli.common import EXIT_USAGE, fail


def mcp(
    transport: Annotated[str, typer.Option(help="stdio (for a local assistant) or http (streamable HTTP).")] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
) -> None:
    """The MCP server (fastmcp): audit tools for an AI assistant. Logs go to stderr."""
    if transport not in ("stdio", "http"):
        fail("--transport must be stdio or http", EXIT_USAGE)
    from nexus.mcp.server import run_mcp

    run_mcp(transport=transport, host=host, port=port)


def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Celery beat with the weekly fleet audit (celery-redbeat: replicas never double-run it)."""
    from workers.beat import run_beat

    run_beat(loglevel=loglevel)


def flower(
    address: Annotated[str | None, typer.Option(help="Bind address (default NEXUS_FLOWER_ADDRESS: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default NEXUS_FLOWER_PORT: 5555).")] = None,
) -> None:
    """Flower, the Celery dashboard, with basic auth (NEXUS_FLOWER_USER / NEXUS_FLOWER_PASSWORD; when no password
    is set, one is generated for this run and printed to stderr)."""
    from workers.flower import run_flower

    try:
        run_flower(address=address, port=port)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
