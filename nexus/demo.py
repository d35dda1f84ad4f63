"""`nexus demo`: the main job end to end in one process (no Redis, no servers to start by hand).

It starts every simulator in process on loopback, runs the Celery pipeline on an in-thread worker with an in-memory
broker, takes one system down, audits a handful of people one by one and then in bulk, and prints a readable summary:
the retries and the breaker opening appear in the log on stderr; the JSON report is written to a file.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from pathlib import Path

import httpx

from nexus.systems import System

log = logging.getLogger("nexus.demo")


def run_demo(people: int = 60, seed: int = 7, down: str = "workday", out: Path = Path("reports/demo-report.json"),
             sample: int = 12) -> int:
    from nexus.console import print_report_summary
    from nexus.facade import Nexus
    from nexus.runtime import current
    from nexus.settings import Settings
    from nexus.sim.stack import SimulatorStack
    from workers.embedded import embedded_worker

    try:
        down_system = System.parse(down)
    except ValueError as exc:
        print(f"nexus: error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    print(f"[demo] generating {people} people (seed {seed}) and starting the simulators on loopback ...",
          file=sys.stderr)
    with SimulatorStack(people=people, seed=seed, port=0) as stack:
        demo_env = {
            **stack.env(),
            # Short countdowns so the demo shows 3 attempts quickly; production keeps the seed's 2 -> 4 -> 8 s.
            "NEXUS_RETRY_BACKOFF_BASE_S": os.environ.get("NEXUS_RETRY_BACKOFF_BASE_S", "0.5"),
            "NEXUS_BREAKER_RESET_TIMEOUT_S": os.environ.get("NEXUS_BREAKER_RESET_TIMEOUT_S", "60"),
            # Parts of 2 people: the breaker counts failed requests (5 open it, the seed's number), and each part
            # of a bulk audit stops at its first failed request, so the 12-person bulk audit shows the fast-fail.
            "NEXUS_BULK_CHUNK_SIZE": "2",
        }
        # The demo's settings are an object of its own: nothing in this process's environment changes.
        settings = Settings(**demo_env)  # type: ignore[arg-type]  # field aliases (the environment's names)
        fault = {"system": down_system.value, "mode": "down"}
        httpx.post(f"{stack.url}/_sim/faults", json=fault).raise_for_status()
        print(f"[demo] {down_system.display} is DOWN for this run (simulator fault 'down')", file=sys.stderr)
        assert stack.org is not None
        rng = random.Random(seed)
        drifted = sorted({d["subject"] for d in stack.org.truth["drift"] if "@" in d["subject"]})
        emails = rng.sample(drifted, min(sample, len(drifted)))
        with embedded_worker(settings, concurrency=4, ad_connection_factory=stack.ad_connection_factory):
            nx = Nexus(settings=current().settings)
            first = nx.wait(nx.submit(nx.request_for(email=emails[0])), timeout=120)
            print("", file=sys.stderr)
            print_report_summary(first)
            bulk = nx.wait(nx.submit(nx.request_for(emails=emails)), timeout=120)
            print("", file=sys.stderr)
            print_report_summary(bulk, limit=15)
            serial = next(d["subject"] for d in stack.org.truth["drift"] if d["field"] == "return_shipment")
            device = nx.wait(nx.submit(nx.request_for(serial=serial)), timeout=120)
            print("", file=sys.stderr)
            print_report_summary(device)
            requests = httpx.get(f"{stack.url}/_sim/requests").json()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(bulk.get("report", {}), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    reached = requests.get(down_system.value, {}).get("total", 0)
    elapsed = time.monotonic() - started
    print(f"\n[demo] {reached} requests reached {down_system.display} while it was down "
          f"(the breaker opened and later fetches failed fast).")
    print(f"[demo] bulk report ({len(emails)} people): {out}")
    print(f"[demo] finished in {elapsed:.1f}s. Try: nexus demo --down entra, or run the real thing with "
          f"`nexus sim` + `nexus worker` (see README).")
    return 0 if all(v["status"] == "done" for v in (first, bulk, device)) else 1
