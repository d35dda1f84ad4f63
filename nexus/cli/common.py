"""Small helpers shared by the CLI command modules: exit codes, one-line errors on stderr, JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

EXIT_OK = 0
EXIT_FAILED = 1  # the audit failed (also: no system could be read; Redis lost it), or Redis/the broker unreachable
EXIT_USAGE = 2  # bad input or usage: one line on stderr, nothing enqueued
EXIT_DRIFT = 3  # --fail-on SEVERITY: a counted discrepancy at or above it
EXIT_INCOMPLETE = 4  # --require-all: a system was not read (failed, for anyone, or only a stale stand-in)
EXIT_TIMEOUT = 124  # --wait reached --timeout
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) while waiting

#: The exit-code table, as `nexus audit --help` and the README show it. Precedence when several apply: 1, 4, 3.
EXIT_CODES_HELP = """\
Exit codes (when several apply: 1 first, then 4, then 3):
0    finished: drift or not, partial or not (no gate below applies)
1    the audit failed (no system read, lost), or Redis is unreachable
2    bad input or usage (one line on stderr, nothing enqueued)
3    --fail-on SEVERITY: a discrepancy (not waived) at or above it
4    --require-all: a system was not read (failed, or stale only)
124  --wait reached --timeout (the audit keeps running)
130  interrupted while waiting (the audit keeps running)"""


def fail(message: str, code: int) -> NoReturn:
    print(f"nexus: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def note(message: str) -> None:
    """One line on stderr that is not an error (why a gate set the exit code, a retry in progress)."""
    print(f"nexus: {message}", file=sys.stderr)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def settings_error(exc: Exception) -> str:
    """A pydantic ValidationError of the settings as one line (the setting's name and the reason)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return f"invalid settings: {exc}"
    parts = []
    for error in exc.errors():
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {message}" if where and not message.startswith(where) else message)
    return "invalid settings: " + "; ".join(parts)
