"""The half-open trial's lease, kept alive while the trial runs.

The trial slot is a Redis key with a TTL (``BreakerPolicy.trial_ttl_s``) so that a trial whose process died frees
the slot by itself. A trial that is merely SLOW must not lose it: a second trial would start beside it. While this
process has trials in flight, :class:`LeaseKeeper` renews their slots every third of the TTL from a daemon thread
(only a slot still held by the same owner is renewed; one that expired or was taken stays lost). The thread runs
only while trials are in flight and exits after the last one ends.

Requests of the trial's unit of work also renew the lease when they are admitted (:mod:`clients.breaker.unit`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("nexus.resilience")


class LeaseKeeper:
    """Renews the slots of the trials in flight. ``renew(owner)`` extends one lease (a store call); ``interval_s``
    is the period between renewals (a third of the lease)."""

    def __init__(self, renew: Callable[[str], object], interval_s: float, *, name: str = "breaker") -> None:
        self._renew = renew
        self.interval_s = max(0.01, interval_s)
        self._name = name
        self._lock = threading.Lock()
        self._owners: Counter[str] = Counter()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def holding(self) -> list[str]:
        """The owners whose leases are kept now."""
        with self._lock:
            return sorted(self._owners)

    def hold(self, owner: str) -> None:
        """A trial call of ``owner`` started: keep its lease until the matching :meth:`drop`."""
        with self._lock:
            self._owners[owner] += 1
            if self._thread is None or not self._thread.is_alive():  # (a forked child inherits a dead thread)
                self._wake.clear()
                self._thread = threading.Thread(target=self._run, name=f"lease-{self._name}", daemon=True)
                self._thread.start()

    def drop(self, owner: str) -> None:
        """The trial call of ``owner`` ended (whatever its outcome)."""
        with self._lock:
            self._owners[owner] -= 1
            if self._owners[owner] <= 0:
                del self._owners[owner]
            if not self._owners:
                self._wake.set()

    def renew_now(self) -> None:
        """Renew every held lease once (the thread's step)."""
        for owner in self.holding:
            try:
                self._renew(owner)
            except Exception:  # the store is unreachable: the breaker fails open anyway
                log.debug("[resilience] [%s] trial lease not renewed", self._name, exc_info=True)

    def _run(self) -> None:
        while True:
            woke = self._wake.wait(self.interval_s)
            with self._lock:
                if not self._owners:
                    self._thread = None
                    return
                if woke:  # the last trial ended and a new one started meanwhile
                    self._wake.clear()
                    continue
            self.renew_now()


__all__ = ["LeaseKeeper"]
