"""Planted device drift and noise (docs/drift-rules.md, "Devices").

Owner drift goes only on active owners' laptops and names another active person who has both accounts, so the
wrong owner always resolves and rules 2-3 give the same answer whichever owner an engine looks at. Leavers'
laptops carry at most one of device_active / return_shipment (a laptop still checking in has only a fresh return
ticket whose label was just printed: undelivered but younger than the 14-day threshold, so not drift).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from nexus.drift import fields as F
from nexus.sim.org_model import FedexShipment, HelixReturnTicket
from nexus.sim.orggen_devices import DAY, Devices
from nexus.sim.orggen_people import NETBIOS, Person, day_start
from nexus.sim.orggen_truth import Truth, pick, quota
from nexus.systems import System

OWNER_RATE = 0.01  # per system (Intune, Lansweeper)
STALE_RATE = 0.015
NONCOMPLIANT_RATE = 0.015
ACTIVE_AFTER_LEAVING_RATE = 0.005
RETURN_IN_TRANSIT_RATE = 0.005
RETURN_UNKNOWN_RATE = 0.004

STALE_DAYS = (45, 300)


def leaver_devices_needed(people: int) -> int:
    """Leavers' laptops the device drift needs (each carries at most one of these kinds)."""
    return sum(quota(r, people) for r in (ACTIVE_AFTER_LEAVING_RATE, RETURN_IN_TRANSIT_RATE, RETURN_UNKNOWN_RATE))


def plant_devices(rng: random.Random, people: list[Person], dev: Devices, truth: Truth, now: datetime) -> None:
    _DevicePlanter(rng, people, dev, truth, now).run()


class _DevicePlanter:
    def __init__(self, rng: random.Random, people: list[Person], dev: Devices, truth: Truth, now: datetime) -> None:
        self.rng, self.people, self.dev, self.truth, self.now = rng, people, dev, truth, now
        self.n = len(people)
        self.active_devices = [d for d, o in enumerate(dev.owner) if people[o].active]
        self.leaver_devices = [d for d, o in enumerate(dev.owner) if not people[o].active]
        self.comparable = [p.idx for p in people if p.active and p.has_ad and p.has_entra]

    def busy(self, d: int) -> bool:
        return self.truth.busy(("d", d))

    def serial(self, d: int) -> str:
        return self.dev.intune[d].serial

    def run(self) -> None:
        self.noise_alias_owner()
        self.drift_owner(System.INTUNE)
        self.drift_owner(System.LANSWEEPER)
        self.drift_stale()
        self.drift_noncompliant()
        self.drift_active_after_leaving()
        self.drift_return(in_transit=True)
        self.drift_return(in_transit=False)

    def noise_alias_owner(self) -> None:
        people, dev = self.people, self.dev
        for d, o in enumerate(dev.owner):
            p = people[o]
            if p.alias:
                note = f"mail alias vs UPN: Intune owner {p.upn}, Helix owner {p.email} (the same person)"
                self.truth.add_noise(("d", d), self.serial(d), F.DEVICE_OWNER, note)

    def drift_owner(self, system: System) -> None:
        rng, people, dev, truth = self.rng, self.people, self.dev, self.truth

        def ok(d: int) -> bool:
            return not truth.has_noise(("d", d), F.DEVICE_OWNER) and not truth.has_drift(
                ("d", d), F.DEVICE_OWNER, system
            )

        for d in pick(rng, self.active_devices, quota(OWNER_RATE, self.n), ok, self.busy):
            owner = dev.owner[d]
            other = people[self._someone_else(owner)]
            if system is System.INTUNE:
                dev.intune[d].upn = other.upn
            else:
                dev.lansweeper[d].user_name = f"{NETBIOS}\\{other.sam}"
            truth.add_drift(("d", d), self.serial(d), F.DEVICE_OWNER, (System.HELIX, system))

    def drift_stale(self) -> None:
        rng, dev, people, now = self.rng, self.dev, self.people, self.now
        lo, hi = STALE_DAYS

        def ok(d: int) -> bool:
            # The laptop must have been in use before it went quiet: its owner joined before the stale window.
            return (now.date() - people[dev.owner[d]].hire).days > lo + 5 and not self.truth.has_drift(
                ("d", d), F.LAST_SYNC
            )

        for d in pick(rng, self.active_devices, quota(STALE_RATE, self.n), ok, self.busy):
            tenure = (now.date() - people[dev.owner[d]].hire).days - 2
            last_sync = now - timedelta(seconds=rng.randrange(lo * DAY, min(hi, tenure) * DAY))
            intune = dev.intune[d]
            intune.last_sync = last_sync
            intune.enrolled = min(intune.enrolled, last_sync - timedelta(seconds=rng.randrange(DAY, 2 * DAY)))
            dev.lansweeper[d].last_seen = last_sync + timedelta(seconds=rng.randrange(DAY))
            self.truth.add_drift(("d", d), self.serial(d), F.LAST_SYNC, (System.INTUNE,))

    def drift_noncompliant(self) -> None:
        def ok(d: int) -> bool:
            return not self.truth.has_drift(("d", d), F.COMPLIANCE)

        for d in pick(self.rng, self.active_devices, quota(NONCOMPLIANT_RATE, self.n), ok, self.busy):
            self.dev.intune[d].compliance_state = "noncompliant"
            self.truth.add_drift(("d", d), self.serial(d), F.COMPLIANCE, (System.INTUNE,))

    def drift_active_after_leaving(self) -> None:
        rng, dev, now = self.rng, self.dev, self.now
        for d in pick(rng, self.leaver_devices, quota(ACTIVE_AFTER_LEAVING_RATE, self.n), self._leaver_free):
            dev.intune[d].last_sync = now - timedelta(seconds=rng.randrange(7 * DAY))
            dev.lansweeper[d].last_seen = now - timedelta(seconds=rng.randrange(7 * DAY))
            dev.helix[d].status = "Return Pending"
            ticket, shipment = dev.ticket[d], dev.shipment[d]
            assert ticket is not None and shipment is not None
            ticket.submit_date = now - timedelta(seconds=rng.randrange(DAY, 10 * DAY))
            ticket.status = "Assigned"
            dev.shipment[d] = FedexShipment(
                shipment.tracking_number, "OC", "Shipment information sent to FedEx", ticket.submit_date
            )
            self.truth.add_drift(("d", d), self.serial(d), F.DEVICE_ACTIVE, (System.WORKDAY, System.INTUNE))

    def drift_return(self, in_transit: bool) -> None:
        rng, dev, people, now = self.rng, self.dev, self.people, self.now
        rate = RETURN_IN_TRANSIT_RATE if in_transit else RETURN_UNKNOWN_RATE
        for d in pick(rng, self.leaver_devices, quota(rate, self.n), self._leaver_free):
            term = people[dev.owner[d]].term
            assert term is not None
            # Submitted after the termination and at least 16 days ago (the threshold is 14): unambiguous drift.
            earliest = day_start(term)
            latest = min(earliest + timedelta(days=5), now - timedelta(days=16))
            submitted = earliest + (latest - earliest) * rng.random()
            ticket: HelixReturnTicket | None = dev.ticket[d]
            assert ticket is not None
            ticket.submit_date = submitted
            ticket.status = "In Progress"
            dev.helix[d].status = "Return Pending"
            if in_transit:
                shipped = submitted + timedelta(seconds=rng.randrange(2 * 3600, DAY))
                code, text = rng.choice((("IT", "In transit"), ("DE", "Delivery exception: incorrect address")))
                dev.shipment[d] = FedexShipment(ticket.tracking_number, code, text, shipped)
            else:
                dev.shipment[d] = None  # the label was never scanned: FedEx does not know the number
            self.truth.add_drift(("d", d), self.serial(d), F.RETURN_SHIPMENT, (System.HELIX, System.FEDEX))

    def _someone_else(self, owner: int) -> int:
        """Another active person with both accounts, so that the wrong owner still resolves."""
        return pick(self.rng, self.comparable, 1, ok=lambda i: i != owner)[0]

    def _leaver_free(self, d: int) -> bool:
        return not self.truth.busy(("d", d))
