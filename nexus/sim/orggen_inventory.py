"""Planted inventory drift (docs/drift-rules.md, device rules 5 and 6): machines the asset register or the MDM
does not know, and the look-alike the rules must leave alone.

Appended after the workers' laptops (:mod:`nexus.sim.orggen_devices`), so every earlier device keeps its records:

- a machine Lansweeper discovered on the network this week that Intune does not manage and Helix does not hold (a
  personal or rogue device: ``unmanaged_device`` and ``unregistered_device`` against Lansweeper);
- an active worker's laptop enrolled in Intune but never registered in Helix (``unregistered_device`` against
  Intune);
- noise: a machine Lansweeper last saw 300-400 days ago and nobody else knows (gone from the network: neither).
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nexus.drift import fields as F
from nexus.sim.names import DEVICE_MODELS
from nexus.sim.org_model import IntuneDevice, LansweeperAsset
from nexus.sim.orggen_ids import IdSource
from nexus.sim.orggen_people import Person
from nexus.sim.orggen_truth import Truth, quota
from nexus.systems import System

UNMANAGED_RATE = 0.002  # of the people
UNREGISTERED_RATE = 0.002


@dataclass(slots=True)
class Inventory:
    """The extra records, to append to the Intune and Lansweeper lists."""

    intune: list[IntuneDevice] = field(default_factory=list)
    lansweeper: list[LansweeperAsset] = field(default_factory=list)


def _serial(rng: random.Random, taken: set[str]) -> str:
    while True:
        serial = f"NX{rng.getrandbits(40):010X}"
        if serial not in taken:
            taken.add(serial)
            return serial


def _asset(rng: random.Random, serial: str, seen: datetime) -> LansweeperAsset:
    model = rng.choice(DEVICE_MODELS)
    ip = rng.getrandbits(24)
    return LansweeperAsset(base64.b64encode(rng.getrandbits(96).to_bytes(12, "big")).decode(), f"DESKTOP-{serial[-7:]}",
                           serial, None, "Windows" if model.operating_system == "Windows" else "Macintosh", seen,
                           model.manufacturer, model.model, f"10.{ip >> 16}.{(ip >> 8) & 255}.{(ip & 255) or 1}")


def plant_inventory(seed: int, ids: IdSource, people: list[Person], serials: set[str], truth: Truth,
                    now: datetime) -> Inventory:
    """``serials``: every serial already used (extended with the new ones)."""
    rng = random.Random(f"inventory-{seed}")
    out = Inventory()
    n = len(people)
    seq = 0
    for _ in range(quota(UNMANAGED_RATE, n)):
        seq += 1
        serial = _serial(rng, serials)
        out.lansweeper.append(_asset(rng, serial, now - timedelta(seconds=rng.randrange(3600, 7 * 86400))))
        truth.add_drift(("i", seq), serial, F.UNMANAGED_DEVICE, (System.LANSWEEPER, System.INTUNE))
        truth.add_drift(("i", seq), serial, F.UNREGISTERED_DEVICE, (System.HELIX, System.LANSWEEPER))
    workers = [p for p in people if p.active]
    for _ in range(quota(UNREGISTERED_RATE, n)):
        seq += 1
        serial = _serial(rng, serials)
        owner = rng.choice(workers)
        model = rng.choice(DEVICE_MODELS)
        synced = now - timedelta(seconds=rng.randrange(3600, 5 * 86400))
        out.intune.append(IntuneDevice(ids.guid(), f"LT-{serial[-7:]}", serial, owner.upn, "compliant", synced,
                                       synced - timedelta(days=rng.randrange(1, 30)), model.operating_system,
                                       model.os_versions[0], model.model, model.manufacturer))
        truth.add_drift(("i", seq), serial, F.UNREGISTERED_DEVICE, (System.HELIX, System.INTUNE))
    seq += 1
    serial = _serial(rng, serials)
    days = rng.randrange(300, 400)
    out.lansweeper.append(_asset(rng, serial, now - timedelta(days=days)))
    truth.add_noise(("i", seq), serial, F.UNMANAGED_DEVICE,
                    f"last seen: {days} days ago by Lansweeper, known to no other system (gone from the network)")
    return out


__all__ = ["Inventory", "plant_inventory"]
