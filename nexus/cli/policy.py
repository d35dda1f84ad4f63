"""`nexus policy check [FILE]`: the effective findings policy (nexus.findings_policy), or one clear error (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nexus.cli.common import EXIT_USAGE, fail, print_json, settings_error

policy_app = typer.Typer(no_args_is_help=True, help="The findings policy: kinds on/off, severities, thresholds and "
                                                    "non-person accounts (NEXUS_POLICY_FILE).")


@policy_app.command("check")
def check(
    file: Annotated[Path | None, typer.Argument(help="A policy TOML file (default: NEXUS_POLICY_FILE; none: the "
                                                     "defaults).", show_default=False)] = None,
) -> None:
    """Print the effective policy as JSON (every setting, defaults filled in, with its hash); exit 2 with the file
    and line of the first problem when it cannot be used."""
    from nexus.findings_policy import PolicyError, load_policy

    source: str | Path | None = file
    if file is None:
        from nexus.settings import get_settings

        try:
            source = get_settings().policy_file or None
        except ValueError as exc:
            fail(settings_error(exc), EXIT_USAGE)
    try:
        policy = load_policy(source)
    except PolicyError as exc:
        fail(str(exc), EXIT_USAGE)
    print_json({"source": str(source) if source else "defaults", "hash": policy.hash, **policy.effective()})
