"""The ``[resilience]`` log lines: one logger, one prefix, structured ``extra`` fields.

Messages read like the seed's (``[resilience] [Workday] Circuit CLOSED -> OPEN (5 consecutive failures)``) so
existing alert rules keep matching; the same facts ride on the record as attributes (``system``, ``system_display``,
``attempt``, ``max_attempts``, ``wait_s``, ``error_type``, ...) for JSON log handlers. Only exception messages are
logged, never request data or credentials.
"""

from __future__ import annotations

import logging
import threading
import time

from nexus.systems import System

LOGGER = logging.getLogger("nexus.resilience")


def system_id(name: str) -> str:
    """The lower-case id for a system name (``Workday`` -> ``workday``); unknown names are lower-cased."""
    try:
        return System.parse(name).value
    except ValueError:
        return name.strip().lower()


def display_name(name: str) -> str:
    """The display name for a system name (``ad`` -> ``ActiveDirectory``); unknown names are kept as given."""
    try:
        return System.parse(name).display
    except ValueError:
        return name.strip()


def log(level: int, system: str, message: str, **fields: object) -> None:
    """Log ``[resilience] [<Display>] <message>`` with ``system``/``system_display`` and ``fields`` as extras."""
    if not LOGGER.isEnabledFor(level):
        return
    extra: dict[str, object] = {"system": system_id(system), "system_display": display_name(system), **fields}
    LOGGER.log(level, "[resilience] [%s] %s", display_name(system), message, extra=extra)


class Throttle:
    """Lets an event through at most once per ``interval_s`` per key (for warnings that would otherwise flood)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                return False
            self._last[key] = now
            return True

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
