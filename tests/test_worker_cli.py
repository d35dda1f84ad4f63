"""`nexus worker` usage errors: one line on stderr, exit 2, before any worker starts (no Redis needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "nexus.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # An unreachable Redis: a worker that did start would fail in another way, not with exit 2 and one line.
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("args", "needle"), [
    (["worker", "--pool", "fork"], "unknown pool 'fork'; choose one of prefork, threads, solo"),
    (["worker", "--loglevel", "bogus"], "unknown log level 'bogus'"),
    (["worker", "--log-level", "bogus"], "unknown log level 'bogus'"),
    (["--log-level", "bogus", "worker"], "unknown log level 'bogus'"),
    (["worker", "--queues", "workday,nope"], "unknown queue(s) nope"),
])
def test_bad_worker_options_exit_2_with_one_line(args: list[str], needle: str) -> None:
    done = _run(*args)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("nexus: error: ") and needle in lines[0], done.stderr
    assert done.stdout == ""
