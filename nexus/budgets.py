"""Request budgets per system as values: ``NEXUS_RATE_BUDGETS`` parsed into :class:`Budget` (a core module).

The settings validate ``NEXUS_RATE_BUDGETS`` with :func:`parse_budgets`, and :mod:`clients.ratelimit` turns each
budget into a shared token bucket; the parsing lives here so the settings never import a client.

Published limits, the defaults of ``NEXUS_RATE_BUDGETS`` (``nexus.settings.DEFAULT_RATE_BUDGETS``):

=============  =====================  ==================================================================================
``lansweeper`` 150 requests / 60 s    Lansweeper's API limit (the design card's figure, per API token)
``entra``      1,750 requests / 10 s  Graph "Identity and access service limits": 3,500 resource units per 10 s for the
                                      smallest tenant size (S, app + tenant pair; M: 5,000, L: 8,000); a ``GET users``
                                      costs 2 units, ``$select`` -1, ``$expand`` +1, so each listing or lookup request
                                      costs 2 (learn.microsoft.com/graph/throttling-limits)
``intune``     2,000 requests / 20 s  Graph "Intune devices service limits", any request, per app per tenant (same page)
``fedex``      1,400 requests / 10 s  FedEx "Quotas & rate limits guide": 1,400 transactions per 10 s per project
                                      (developer.fedex.com/api/en-us/guides/ratelimits.html); the Track capability's
                                      daily quota (100K) is far above a weekly audit's needs
=============  =====================  ==================================================================================

Workday, Active Directory and BMC Helix publish no request limit: unlimited unless a budget is set. Token requests
are not counted (their endpoints have their own, separate limits).

A budget of ``N`` requests per window ``W`` becomes a bucket of capacity ``B`` (one second's worth, at least 1) that
refills at ``(N - B) / W`` tokens per second, so that no window of length ``W`` ever sees more than ``B + (N - B)
= N`` requests, whatever the phase of the system's own window.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nexus.systems import System

_WINDOW_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_ITEM = re.compile(r"^\s*([a-z]+)\s*=\s*(?:(off|0)|(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]*))\s*$")


@dataclass(frozen=True, slots=True)
class Budget:
    """``limit`` requests per ``window_s`` seconds for one system."""

    system: str
    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if self.limit < 2 or self.window_s <= 0:
            raise ValueError(f"budget for {self.system}: need at least 2 requests per a positive window")

    @property
    def burst(self) -> int:
        """Bucket capacity: one second's worth of the budget (at least 1, at most half of it)."""
        return max(1, min(math.ceil(self.limit / self.window_s), self.limit // 2))

    @property
    def rate(self) -> float:
        """Refill, tokens per second: ``burst + rate * window == limit``."""
        return (self.limit - self.burst) / self.window_s

    def describe(self) -> str:
        return f"{self.limit}/{self.window_s:g}s"


def parse_budgets(spec: str) -> dict[str, Budget]:
    """``"lansweeper=150/60s,entra=1750/10s,fedex=off"`` -> {system id: Budget}. ``""``/``"off"``: no budgets.

    Windows: ``10s``, ``60``, ``1m``/``min``, ``1h``; ``<system>=off`` (or ``=0``) leaves a system unlimited.
    """
    text = (spec or "").strip().lower()
    if text in ("", "off", "none", "false"):
        return {}
    out: dict[str, Budget] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"bad rate budget {item!r}: expected <system>=<requests>/<window> (lansweeper=150/60s)")
        name, off, limit, amount, unit = match.groups()
        try:
            system = System.parse(name).value
        except ValueError as exc:
            raise ValueError(f"bad rate budget {item!r}: {exc}") from None
        if off:
            out.pop(system, None)
            continue
        if unit not in _WINDOW_UNITS:
            raise ValueError(f"bad rate budget {item!r}: window unit must be s, m/min or h")
        window = (float(amount) if amount else 1.0) * _WINDOW_UNITS[unit]
        out[system] = Budget(system, int(limit), window)
    return out


__all__ = ["Budget", "parse_budgets"]
