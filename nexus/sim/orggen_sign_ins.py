"""Entra sign-ins (Graph's ``signInActivity``): every member's recent use, planted dormancy, and its look-alikes.

Runs on the workers' Entra accounts (the list aligned with the people) after the account drift is planted
(:mod:`nexus.sim.orggen_accounts`), from a generator of its own so everything drawn before is unchanged:

- every member account has signed in interactively within the last 10 days, and most also non-interactively (a
  desktop client refreshing its token) within the last 3;
- drift: dormant Entra accounts of active workers (no sign-in of either kind for 46-400 days; docs/drift-rules.md,
  ``dormant_account``, CIS 5.3), on people no other drift or noise touches;
- noise: an active worker who signed in interactively 20-30 days ago (inside the 45-day threshold) and one whose
  account never signed in (no signInActivity at all: no evidence either way, not reported).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from nexus.drift import fields as F
from nexus.sim.org_model import EntraUser
from nexus.sim.orggen_people import Person
from nexus.sim.orggen_truth import Truth, pick, quota
from nexus.systems import System

DORMANT_RATE = 0.004
RECENT_NOISE_RATE = 0.003
NON_INTERACTIVE_SHARE = 0.7


def _ago(rng: random.Random, now: datetime, low_days: int, high_days: int) -> datetime:
    return now - timedelta(days=rng.randrange(low_days, high_days), seconds=rng.randrange(86400))


def plant_sign_ins(seed: int, people: list[Person], entra: list[EntraUser | None], truth: Truth,
                   now: datetime) -> None:
    """Give every member account its sign-ins, then plant dormancy and its look-alikes (edits ``entra`` in place)."""
    rng = random.Random(f"sign-ins-{seed}")
    for user in entra:
        if user is None:
            continue
        user.last_sign_in = _ago(rng, now, 0, 10)
        if rng.random() < NON_INTERACTIVE_SHARE:
            user.last_non_interactive_sign_in = _ago(rng, now, 0, 3)
    candidates = [p.idx for p, user in zip(people, entra, strict=True)
                  if p.active and user is not None and user.account_enabled and user.user_type == "Member"]

    def busy(i: int) -> bool:
        return truth.busy(("p", i))

    dormant = pick(rng, candidates, quota(DORMANT_RATE, len(people)),
                   lambda i: not truth.has_noise(("p", i), F.DORMANT_ACCOUNT), busy)
    for i in dormant:
        user = entra[i]
        assert user is not None
        user.last_sign_in = _ago(rng, now, 46, 400)
        user.last_non_interactive_sign_in = (user.last_sign_in + timedelta(hours=rng.randrange(1, 48))
                                             if rng.random() < 0.5 else None)
        truth.add_drift(("p", i), people[i].email, F.DORMANT_ACCOUNT, (System.ENTRA,))
    chosen = set(dormant)
    quiet = pick(rng, candidates, quota(RECENT_NOISE_RATE, len(people)) + 1,
                 lambda i: i not in chosen and truth.field_free(("p", i), F.DORMANT_ACCOUNT), busy)
    for n, i in enumerate(quiet):
        user = entra[i]
        assert user is not None
        user.last_non_interactive_sign_in = None
        if n == 0:
            user.last_sign_in = None
            note = "Entra account that never signed in: no evidence either way"
        else:
            days = rng.randrange(20, 31)  # 15 days of room: a simulator runs on after it generated the org
            user.last_sign_in = now - timedelta(days=days)
            note = f"last Entra sign-in: {days} days ago, within 45"
        truth.add_noise(("p", i), people[i].email, F.DORMANT_ACCOUNT, note)


__all__ = ["plant_sign_ins"]
