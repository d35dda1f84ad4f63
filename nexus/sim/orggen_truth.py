"""The ground truth under construction, and the sampling helper that keeps planted findings from interfering.

Every planted difference is recorded with the (subject, field, system) it touches. Drift and noise never share a
(subject, field): a harness that checks "noise is not reported" per subject and field must not trip over a real
finding on the same field in the other system.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from nexus.drift.fields import SEVERITY
from nexus.systems import System


def quota(rate: float, population: int, minimum: int = 1) -> int:
    """How many instances of one kind to plant: ``rate`` of the population, at least ``minimum``."""
    return max(minimum, round(rate * population))


class Truth:
    """Drift and noise entries plus, per subject key, which fields are already used."""

    def __init__(self) -> None:
        self.drift: list[dict[str, Any]] = []
        self.noise: list[dict[str, Any]] = []
        # key -> {(field, system id)} of planted drift; key -> {field} of planted noise. Keys: ("p", person index)
        # or ("d", device index). Membership tests only: never iterated (output order must not depend on hashing).
        self._drift: dict[tuple[str, int], set[tuple[str, str]]] = {}
        self._noise: dict[tuple[str, int], set[str]] = {}

    def add_drift(self, key: tuple[str, int], subject: str, field: str, systems: Sequence[System], *,
                  workers: Sequence[str] = ()) -> None:
        """One finding to expect. ``workers``: for an account matching two workers, their emails (either worker's
        per-person audit reports it too, as does an audit of the account's UPN)."""
        tags = self._drift.setdefault(key, set())
        other = next(s for s in systems if s not in (System.WORKDAY, System.HELIX)) if len(systems) > 1 else None
        tags.add((field, (other or systems[0]).value))
        entry: dict[str, Any] = {
            "subject": subject,
            "field": field,
            "systems": [s.display for s in systems],
            "severity": SEVERITY[field].value,
        }
        if workers:
            entry["workers"] = sorted(workers)
        self.drift.append(entry)

    def add_noise(self, key: tuple[str, int], subject: str, field: str, note: str) -> None:
        self._noise.setdefault(key, set()).add(field)
        self.noise.append({"subject": subject, "field": field, "note": note})

    def busy(self, key: tuple[str, int]) -> bool:
        """Any drift or noise planted on this subject already."""
        return key in self._drift or key in self._noise

    def has_drift(self, key: tuple[str, int], field: str, system: System | None = None) -> bool:
        """Drift on ``field`` (in ``system``, or in any system when ``system`` is None)."""
        tags = self._drift.get(key)
        if not tags:
            return False
        if system is not None:
            return (field, system.value) in tags
        return any(f == field for f, _ in tags)

    def has_noise(self, key: tuple[str, int], field: str) -> bool:
        return field in self._noise.get(key, ())

    def field_free(self, key: tuple[str, int], field: str) -> bool:
        """Neither drift nor noise on this field yet."""
        return not self.has_noise(key, field) and not self.has_drift(key, field)


def pick(
    rng: random.Random,
    pool: Sequence[int],
    k: int,
    ok: Callable[[int], bool],
    busy: Callable[[int], bool] = lambda _i: False,
) -> list[int]:
    """Up to ``k`` distinct members of ``pool`` satisfying ``ok``, preferring ones that are not ``busy``.

    Random probing keeps this O(k) on 100k-people pools; small organisations fall back to a shuffled scan, first
    of members that are not busy, then of any that are ``ok`` (several kinds on one person with 10 people).
    """
    chosen: list[int] = []
    if k <= 0 or not pool:
        return chosen
    taken: set[int] = set()
    size = len(pool)
    for _ in range(8 * k + 16):
        if len(chosen) >= k:
            return chosen
        i = pool[rng.randrange(size)]
        if i not in taken and not busy(i) and ok(i):
            taken.add(i)
            chosen.append(i)
    order = list(pool)
    rng.shuffle(order)
    for fresh_only in (True, False):
        for i in order:
            if len(chosen) >= k:
                return chosen
            if i not in taken and (not fresh_only or not busy(i)) and ok(i):
                taken.add(i)
                chosen.append(i)
    return chosen
