"""A cached access token that is refreshed before it expires (the seed's CRITICAL #2).

The fetch function returns ``(token, expires_in_seconds)``; the cache hands the same token out until ``margin_s``
before its expiry, then fetches a new one. ``invalidate()`` forces the next ``get()`` to fetch (used for the one
re-authentication after a 401). Thread-safe: a client may be shared by threads of one worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenCache:
    def __init__(
        self,
        fetch: Callable[[], tuple[str, float]],
        *,
        margin_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin_s = margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0  # how many tokens were obtained (observability and tests)

    def get(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - self._margin_s:
                token, expires_in = self._fetch()
                self.fetches += 1
                self._token = token
                # A lifetime shorter than twice the margin would refresh on every call; use half of it instead.
                margin = min(self._margin_s, float(expires_in) / 2)
                self._expires_at = now + float(expires_in) - margin + self._margin_s
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None
            self._expires_at = 0.0
