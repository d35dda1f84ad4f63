"""The root typer app: the global options (``--env-file``, ``--log-level``) and every command group registered on it.

Commands live in their own modules and are registered here, in the order ``nexus --help`` lists them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from nexus.cli.audit import audit_app
from nexus.cli.common import EXIT_USAGE, fail, settings_error
from nexus.cli.demo import demo
from nexus.cli.health import health
from nexus.cli.policy import policy_app
from nexus.cli.services import beat, flower, mcp
from nexus.cli.sim import sim
from nexus.cli.waiver import waiver_app
from nexus.cli.worker import worker

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Nexus: identity and device drift audits.")
app.add_typer(audit_app, name="audit")
app.add_typer(waiver_app, name="waiver")
app.add_typer(policy_app, name="policy")


#: Commands that do not read the environment's connection settings (so an invalid one does not stop them).
_OWN_SETTINGS = frozenset({"sim", "demo", "policy"})


def load_env_file(path: Path) -> None:
    """Load KEY=VALUE lines into the environment (before settings are read). The process environment wins: a
    variable it already has (even set to empty) is kept, as docker compose and python-dotenv do. So the order is:
    the environment, then this file, then ``./.env``, then the defaults."""
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
    from nexus.settings import get_settings

    get_settings.cache_clear()


@app.callback()
def main_options(
    env_file: Annotated[Path | None, typer.Option("--env-file", help="Read settings from this file (e.g. the one "
                                                  "`nexus sim` writes); variables already in the environment win.",
                                                  envvar="NEXUS_ENV_FILE")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL "
                                                  "(default NEXUS_LOG_LEVEL: INFO).")] = None,
) -> None:
    import click

    from nexus.logs import setup_logging
    from nexus.settings import LOG_LEVELS, get_settings

    if env_file is not None:
        if not env_file.is_file():
            fail(f"env file {env_file} does not exist", EXIT_USAGE)
        load_env_file(env_file)
    if log_level is not None and log_level.strip().upper() not in LOG_LEVELS:
        fail(f"unknown log level {log_level!r}; choose one of {', '.join(LOG_LEVELS)}", EXIT_USAGE)
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.invoked_subcommand not in _OWN_SETTINGS:
        try:
            get_settings()
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            fail(settings_error(exc), EXIT_USAGE)
    setup_logging(log_level.strip().upper() if log_level is not None else None)


app.command()(sim)
app.command()(worker)
app.command()(mcp)
app.command()(beat)
app.command()(flower)
app.command()(health)
app.command()(demo)


def main() -> None:
    app()
