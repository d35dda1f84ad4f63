"""`nexus demo`: the whole pipeline in one process (see :mod:`nexus.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    people: Annotated[int, typer.Option(min=10, max=5000, help="Size of the demo organisation.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the demo organisation.")] = 7,
    down: Annotated[str, typer.Option(help="System to take down during the demo.")] = "workday",
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("reports/demo-report.json"),
) -> None:
    """Everything in one process: no Redis, no servers. Audits a small org while one system is down."""
    from nexus.demo import run_demo

    raise typer.Exit(run_demo(people=people, seed=seed, down=down, out=out))
