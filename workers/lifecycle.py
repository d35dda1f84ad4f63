"""The worker's runtime lifecycle (:mod:`nexus.runtime`): one per pool child, closed when the child exits.

A prefork pool child inherits whatever the parent built before forking; sockets must not be shared across the
fork, so each child forgets the inherited runtime (without closing the parent's connections) and builds its own on
first use. When the child exits, its runtime closes its clients and its Redis pool.
"""

from __future__ import annotations

import os
from typing import Any

from celery import signals

from nexus import runtime


def _forget_inherited(**_: Any) -> None:
    """A pool child drops the parent's runtime (not closed: its sockets are the parent's); a runtime this very
    process built (a pool that runs in the parent's process) is closed, not leaked."""
    previous = runtime.install(None)
    if previous is not None and previous.pid == os.getpid():
        previous.close()


def _close(**_: Any) -> None:
    runtime.reset()


def install() -> None:
    signals.worker_process_init.connect(_forget_inherited, weak=False, dispatch_uid="nexus.runtime.child_init")
    signals.worker_process_shutdown.connect(_close, weak=False, dispatch_uid="nexus.runtime.child_exit")
    signals.worker_shutdown.connect(_close, weak=False, dispatch_uid="nexus.runtime.worker_exit")


__all__ = ["install"]
