"""The worker process's clients: one per system, from the process's runtime (:mod:`nexus.runtime`)."""

from __future__ import annotations

from typing import Any

from nexus import runtime
from nexus.systems import System


def get_client(system: System) -> Any:
    """The process's client for ``system``, paced by the system's shared request budget (clients.ratelimit)."""
    return runtime.current().client(system)


def reset_clients() -> None:
    """Drop cached clients (after the settings changed, e.g. in tests and the demo)."""
    runtime.reset()
