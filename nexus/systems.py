"""The systems Nexus audits: one lower-case id and one display name each.

The ids are used for queues, faults, metrics, settings and the simulator's request log; the display names appear in
reports (`systems_checked`, `discrepancies[].system_a`, ...). Both spellings are part of the public contract.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a system can be asked (the client Protocols of :mod:`clients.roles`)."""

    PEOPLE = "people"  # a directory of people: find_person(ref)
    DEVICES = "devices"  # an inventory of devices: find_device(serial)
    RETURNS = "returns"  # return tickets per device: tickets_for_serial(serial)
    SHIPMENTS = "shipments"  # shipment tracking: track(numbers)


class System(StrEnum):
    """A system Nexus reads. The value is the lower-case id."""

    WORKDAY = "workday"
    AD = "ad"
    ENTRA = "entra"
    INTUNE = "intune"
    LANSWEEPER = "lansweeper"
    HELIX = "helix"
    FEDEX = "fedex"

    @property
    def display(self) -> str:
        return DISPLAY_NAMES[self]

    @property
    def roles(self) -> frozenset[Role]:
        return ROLES[self]

    @classmethod
    def parse(cls, name: str) -> System:
        """Accept an id (`ad`) or a display name (`ActiveDirectory`), any case."""
        key = name.strip().lower()
        for system in cls:
            if key in (system.value, system.display.lower()):
                return system
        raise ValueError(f"unknown system {name!r}; expected one of {', '.join(s.value for s in cls)}")


DISPLAY_NAMES: dict[System, str] = {
    System.WORKDAY: "Workday",
    System.AD: "ActiveDirectory",
    System.ENTRA: "Entra",
    System.INTUNE: "Intune",
    System.LANSWEEPER: "Lansweeper",
    System.HELIX: "Helix",
    System.FEDEX: "FedEx",
}

ROLES: dict[System, frozenset[Role]] = {
    System.WORKDAY: frozenset({Role.PEOPLE}),
    System.AD: frozenset({Role.PEOPLE}),
    System.ENTRA: frozenset({Role.PEOPLE}),
    System.INTUNE: frozenset({Role.DEVICES}),
    System.LANSWEEPER: frozenset({Role.DEVICES}),
    System.HELIX: frozenset({Role.DEVICES, Role.RETURNS}),
    System.FEDEX: frozenset({Role.SHIPMENTS}),
}


def systems_with(*roles: Role) -> tuple[System, ...]:
    """The systems playing any of ``roles``, in report order (the enum's order)."""
    return tuple(s for s in System if ROLES[s] & set(roles))


#: Systems a user audit reads (the seed's three, in report order).
USER_SYSTEMS: tuple[System, ...] = systems_with(Role.PEOPLE)
#: Systems a device audit reads: the device inventories (stage 1), then the shipments their tickets name.
DEVICE_INVENTORIES: tuple[System, ...] = systems_with(Role.DEVICES)
DEVICE_SYSTEMS: tuple[System, ...] = systems_with(Role.DEVICES, Role.SHIPMENTS)
#: Systems the health check pings: the seed's six in the seed's order, then every other system (FedEx, ...).
_SEED_HEALTH_ORDER: tuple[System, ...] = (
    System.WORKDAY, System.AD, System.ENTRA, System.LANSWEEPER, System.INTUNE, System.HELIX,
)
HEALTH_SYSTEMS: tuple[System, ...] = (*_SEED_HEALTH_ORDER, *(s for s in System if s not in _SEED_HEALTH_ORDER))
