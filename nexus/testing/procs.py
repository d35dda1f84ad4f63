"""Processes on this host, read from ``/proc`` (Linux): parents, liveness, CPU time.

The cluster rig uses them to find a Celery worker's pool children and to prove a killed process is gone; the
benchmarks use them to account the workers' CPU time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards), or None if there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()


def parent_pid(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pids: Iterable[int]) -> set[int]:
    """The processes whose parent is one of ``pids``."""
    parents = set(pids)
    return {pid for pid in all_pids() if parent_pid(pid) in parents}


def cpu_ms(pids: Iterable[int]) -> float:
    """User + system CPU time of ``pids`` so far, in ms (a process that exited is no longer counted)."""
    total = 0
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total * 1000 / _TICKS


__all__ = ["alive", "all_pids", "children_of", "cpu_ms", "parent_pid", "stat_fields"]
