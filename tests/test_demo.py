"""`nexus demo`: the embedded main job (no Redis, no servers) shows a partial audit, the retries and the breaker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_audits_with_one_system_down_and_shows_the_breaker_opening(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "REDIS_", "WORKDAY_", "AZURE_"))}
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # proves nothing reaches a Redis server: this one refuses connections
    proc = subprocess.run([sys.executable, "-m", "nexus.cli", "demo", "--people", "40", "--out", str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[resilience] [Workday] Retry attempt 1/3" in proc.stderr
    assert "[resilience] [Workday] Circuit CLOSED -> OPEN" in proc.stderr
    assert "CircuitBreakerOpenError (fast-fail)" in proc.stderr
    assert "systems failed:  Workday" in proc.stdout
    report = json.loads(out.read_text())
    assert report["systems_failed"] == ["Workday"]
    assert report["errors"]["Workday"]["people"] == report["people"]
    assert all(entry["workday_found"] is None for entry in report["entries"])
    assert report["discrepancy_count"] > 0  # AD and Entra are still compared with each other
