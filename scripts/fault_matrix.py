#!/usr/bin/env python3
"""Run the fault matrix (every fault kind on every system) on a private rig and publish its table.

    .venv/bin/python scripts/fault_matrix.py                 # all cells; rewrite docs/reliability.md if all match
    .venv/bin/python scripts/fault_matrix.py --systems ad,fedex --faults down,throttle
    .venv/bin/python scripts/fault_matrix.py --render-only   # no rig: rewrite the doc from the expected table
    .venv/bin/python scripts/fault_matrix.py --json out.json # also write every observation as JSON

The rig is ``nexus.testing.cluster.Cluster`` (a private redis-server, the simulators, one Celery worker process) with
the drill's pinned settings (``scripts/faultmatrix``: ``RIG_ENV``). The published table is rendered from
``scripts.faultmatrix.EXPECTED``; it is only rewritten when every cell of a full run matched it, so the document
always shows outcomes the drill has reproduced. Exit status: 0 all cells match, 1 a mismatch, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # scripts/ is not installed: the drill is imported as scripts.faultmatrix
    sys.path.insert(0, str(ROOT))

from nexus.systems import System  # noqa: E402
from scripts.faultmatrix import (  # noqa: E402
    EXPECTED,
    MATRIX_PEOPLE,
    MATRIX_SEED,
    RIG_CONCURRENCY,
    RIG_ENV,
    RIG_WORKERS,
    Cell,
    CellResult,
    Fault,
    FaultMatrix,
    all_cells,
    render_section,
    render_table,
    update_document,
)

DOC = ROOT / "docs" / "reliability.md"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", default="", help="comma-separated system ids (default: all)")
    p.add_argument("--faults", default="", help="comma-separated faults (default: all): "
                   + ", ".join(f.value for f in Fault))
    p.add_argument("--render-only", action="store_true", help="do not run anything: rewrite the doc from EXPECTED")
    p.add_argument("--no-write", action="store_true", help="never rewrite the doc")
    p.add_argument("--doc", type=Path, default=DOC, help=f"the document to update (default: {DOC.relative_to(ROOT)})")
    p.add_argument("--json", type=Path, help="write every observation to this file")
    return p.parse_args(argv)


def _select(args: argparse.Namespace) -> list[Cell]:
    systems = {System.parse(s) for s in args.systems.split(",") if s.strip()} or None
    faults = {Fault(f.strip()) for f in args.faults.split(",") if f.strip()} or None
    return [(s, f) for s, f in all_cells() if (systems is None or s in systems) and (faults is None or f in faults)]


def write_doc(path: Path) -> bool:
    """Rewrite the table section of ``path``; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    updated = update_document(text, render_section())
    if updated != text:
        path.write_text(updated, encoding="utf-8")
        return True
    return False


def run(cells: list[Cell]) -> list[CellResult]:
    from nexus.testing.cluster import Cluster  # starts servers and imports the whole stack: only for a run

    # The simulators log every request a timed-out client abandoned (slow cells), and the listings log their
    # retries in this process: the table reports both.
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    logging.getLogger("nexus.resilience").setLevel(logging.ERROR)
    started = time.monotonic()
    with Cluster.start(people=MATRIX_PEOPLE, seed=MATRIX_SEED, workers=RIG_WORKERS, concurrency=RIG_CONCURRENCY,
                       extra_env=RIG_ENV) as rig:
        print(f"rig up in {time.monotonic() - started:.1f}s; running {len(cells)} cells", file=sys.stderr)
        return FaultMatrix(rig, progress=lambda line: print(line, file=sys.stderr, flush=True)).run(cells)


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(argv)
        cells = _select(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.render_only:
        changed = write_doc(args.doc)
        print(f"{args.doc}: {'updated' if changed else 'already up to date'}", file=sys.stderr)
        return 0
    if not cells:
        print("error: no cell selected", file=sys.stderr)
        return 2
    started = time.monotonic()
    results = run(cells)
    print(render_table({(r.system, r.fault): r.observed for r in results}))
    bad = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(bad)}/{len(results)} cells match the expected outcomes "
          f"({time.monotonic() - started:.0f}s)", file=sys.stderr)
    for r in bad:
        print("  " + r.describe(), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps([
            {"system": r.system.value, "fault": r.fault.value, "ok": r.ok, "seconds": round(r.seconds, 2),
             "message": r.message, "observed": asdict(r.observed),
             "expected": asdict(r.expected) if r.expected else None, "detail": r.detail}
            for r in results], indent=2, default=str) + "\n", encoding="utf-8")
    full = {(r.system, r.fault) for r in results} == set(EXPECTED)
    if not bad and full and not args.no_write:
        changed = write_doc(args.doc)
        print(f"{args.doc}: {'updated' if changed else 'already up to date'}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
