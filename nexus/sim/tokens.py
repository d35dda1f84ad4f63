"""Bearer tokens issued and checked by the simulators (OAuth access tokens, Helix AR-JWT, Lansweeper tokens).

Lifetimes are settable (short in tests) and the clock is injectable, so token expiry and refresh are testable without
waiting. A system under the ``expired_token`` fault refuses every token as expired.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from enum import Enum


class TokenCheck(Enum):
    OK = "ok"
    EXPIRED = "expired"
    INVALID = "invalid"


class TokenIssuer:
    def __init__(self, lifetime_s: float = 3599.0, clock: Callable[[], float] = time.time) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (system, expires_at)

    def issue(self, system: str, lifetime_s: float | None = None) -> tuple[str, int]:
        """A new token for ``system`` and its lifetime in whole seconds (what ``expires_in`` reports)."""
        life = self.lifetime_s if lifetime_s is None else lifetime_s
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            if len(self._tokens) > 10_000:  # drop expired tokens now and then; simulators run for days
                self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (system, now + life)
        return token, max(int(life), 1)

    def check(self, system: str, token: str | None) -> TokenCheck:
        if not token:
            return TokenCheck.INVALID
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry[0] != system:
            return TokenCheck.INVALID
        return TokenCheck.OK if entry[1] > self._clock() else TokenCheck.EXPIRED

    def expire_all(self, system: str | None = None) -> None:
        """Make every issued token (of one system) expired now; for tests of mid-audit renewal."""
        with self._lock:
            now = self._clock()
            for token, (sys_id, _exp) in list(self._tokens.items()):
                if system is None or sys_id == system:
                    self._tokens[token] = (sys_id, now - 1)
