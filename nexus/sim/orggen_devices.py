"""Devices of the synthetic organisation, drift-free (docs/drift-rules.md, "What a clean organisation looks like").

Active owners: each laptop is in Intune (synced 0-7 days ago, compliant), Lansweeper and Helix (``Deployed``), all
naming the same owner. Leavers: the laptop's last Intune sync is before the termination date, Helix holds it
``In Inventory`` with the owner still recorded, and a closed return ticket carries a delivered FedEx shipment.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate

from nexus.sim.names import DEVICE_MODELS, DeviceModel
from nexus.sim.org_model import FedexShipment, HelixAsset, HelixReturnTicket, IntuneDevice, LansweeperAsset
from nexus.sim.orggen_ids import IdSource
from nexus.sim.orggen_people import NETBIOS, Person, day_start

DAY = 86400
SECOND_DEVICE_SHARE = 0.3


def _table(alphabet: str) -> bytes:
    """A ``bytes.translate`` table mapping any random byte to a character of ``alphabet``."""
    return bytes(ord(alphabet[b % len(alphabet)]) for b in range(256))


_DELL = _table("0123456789BCDFGHJKLMNPQRSTVWXYZ")  # service tags avoid vowels
_ALNUM = _table("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")
_DIGITS = _table("0123456789")
_LETTERS = _table("ABCDEFGHJKLMNPQRSTUVWXYZ")
_SERIAL_BYTES = 9  # random bytes per serial (the longest vendor format)


@dataclass(slots=True)
class Devices:
    """Device records in parallel lists (index = device number); tickets/shipments ``None`` where absent."""

    owner: list[int] = field(default_factory=list)  # person index
    intune: list[IntuneDevice] = field(default_factory=list)
    lansweeper: list[LansweeperAsset] = field(default_factory=list)
    helix: list[HelixAsset] = field(default_factory=list)
    ticket: list[HelixReturnTicket | None] = field(default_factory=list)
    shipment: list[FedexShipment | None] = field(default_factory=list)
    tracking_numbers: set[str] = field(default_factory=set)  # membership only (never iterated)
    next_incident: int = 0

    def new_tracking_number(self, rng: random.Random) -> str:
        while True:
            number = str(rng.randrange(10**11, 10**12))
            if number not in self.tracking_numbers:
                self.tracking_numbers.add(number)
                return number

    def new_incident(self, rng: random.Random) -> str:
        self.next_incident += rng.randrange(1, 40)
        return f"INC{self.next_incident:012d}"


def _serial(kind: str, raw: bytes) -> str:
    """A vendor-shaped serial from 9 random bytes: Dell tag, HP ``5CG1234ABC``, Lenovo ``PF...``, Apple ``C02...``."""
    if kind == "dell":
        return raw[:7].translate(_DELL).decode()
    if kind == "hp":
        return "5CG" + raw[:4].translate(_DIGITS).decode() + raw[4:7].translate(_LETTERS).decode()
    if kind == "lenovo":
        return "PF" + raw[:6].translate(_ALNUM).decode()
    return "C02" + raw.translate(_ALNUM).decode()


def _device_name(model: DeviceModel, serial: str) -> str:
    if model.operating_system == "Windows":
        return f"{NETBIOS}-{serial}"
    return ("MBA-" if "Air" in model.model else "MBP-") + serial


def device_counts(rng: random.Random, people: list[Person], leaver_devices_needed: int) -> list[int]:
    """1-2 laptops per person (none for workers without accounts yet); leavers get enough for the planted drift."""
    counts = [0] * len(people)
    leaver_total = 0
    for p in people:
        if p.missing_ad or p.missing_entra:
            continue
        counts[p.idx] = 2 if rng.random() < SECOND_DEVICE_SHARE else 1
        if not p.active:
            leaver_total += counts[p.idx]
    for p in people:
        if leaver_total >= leaver_devices_needed:
            break
        if not p.active and counts[p.idx] == 1:
            counts[p.idx] = 2
            leaver_total += 1
    return counts


def build_devices(rng: random.Random, ids: IdSource, people: list[Person], counts: list[int], now: datetime) -> Devices:
    """Every device in Intune, Lansweeper and Helix; a return ticket and delivered shipment for leavers'."""
    out = Devices(next_incident=rng.randrange(10**6, 10**7))
    total = sum(counts)
    models = rng.choices(DEVICE_MODELS, cum_weights=list(accumulate(m.weight for m in DEVICE_MODELS)), k=total)
    entropy = rng.randbytes(_SERIAL_BYTES * total)  # one draw for every serial: the hot loop only slices
    serials: set[str] = set()  # membership only
    rand, bits = rng.random, rng.getrandbits
    four_years = timedelta(days=4 * 365)
    owner, intune, lansweeper, helix = out.owner, out.intune, out.lansweeper, out.helix
    n = 0
    for p in people:
        if not counts[p.idx]:
            continue
        hire = day_start(p.hire)
        sam = f"{NETBIOS}\\{p.sam}"
        term = day_start(p.term) if p.term is not None else None
        for _ in range(counts[p.idx]):
            model = models[n]
            serial = _serial(model.serial_kind, entropy[n * _SERIAL_BYTES : (n + 1) * _SERIAL_BYTES])
            n += 1
            while serial in serials:
                serial = _serial(model.serial_kind, rng.randbytes(_SERIAL_BYTES))
            serials.add(serial)
            name = _device_name(model, serial)
            if term is None:
                last_sync = now - timedelta(seconds=int(rand() * 7 * DAY))
                last_seen = now - timedelta(seconds=int(rand() * 7 * DAY))
                status = "Deployed"
            else:
                last_sync = term - timedelta(seconds=DAY + int(rand() * 19 * DAY))
                last_seen = last_sync + timedelta(seconds=int(rand() * DAY))
                status = "In Inventory"
            lo = max(hire, last_sync - four_years)
            enrolled = lo + (last_sync - lo) * (0.9 * rand())
            versions = model.os_versions
            ip = bits(24)
            owner.append(p.idx)
            intune.append(
                IntuneDevice(
                    ids.guid(), name, serial, p.upn, "compliant", last_sync, enrolled, model.operating_system,
                    versions[int(rand() * len(versions))], model.model, model.manufacturer,
                )
            )  # fmt: skip
            lansweeper.append(
                LansweeperAsset(
                    base64.b64encode(bits(96).to_bytes(12, "big")).decode(), name, serial, sam,
                    "Windows" if model.operating_system == "Windows" else "Macintosh", last_seen,
                    model.manufacturer, model.model, f"10.{ip >> 16}.{(ip >> 8) & 255}.{(ip & 255) or 1}",
                )
            )  # fmt: skip
            helix.append(
                HelixAsset(
                    "RE0050560" + ids.hex(8).upper(), name, serial, p.email, status, model.model, model.manufacturer
                )
            )
            if term is None:
                out.ticket.append(None)
                out.shipment.append(None)
            else:
                _delivered_return(rng, out, p, term, serial, now)
    return out


def _delivered_return(rng: random.Random, out: Devices, p: Person, term: datetime, serial: str, now: datetime) -> None:
    """A leaver's closed return ticket: label within 3 days of the termination, delivered 1-4 days later."""
    submitted = term + timedelta(seconds=rng.randrange(3 * DAY))
    shipped = submitted + timedelta(seconds=rng.randrange(2 * 3600, 2 * DAY))
    delivered = min(now, shipped + timedelta(seconds=rng.randrange(DAY, 4 * DAY)))
    tracking = out.new_tracking_number(rng)
    status = "Closed" if rng.random() < 0.8 else "Resolved"
    out.ticket.append(HelixReturnTicket(out.new_incident(rng), serial, p.email, tracking, status, submitted))
    out.shipment.append(FedexShipment(tracking, "DL", "Delivered", shipped, delivered))
