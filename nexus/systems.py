"""The systems Nexus audits: one lower-case id and one display name each.

The ids are used for queues, faults, metrics, settings and the simulator's request log; the display names appear in
reports (`systems_checked`, `discrepancies[].system_a`, ...). Both spellings are part of the public contract.
"""

from __future__ import annotations

from enum import StrEnum


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

#: Systems a user audit reads (the seed's three, in report order).
USER_SYSTEMS: tuple[System, ...] = (System.WORKDAY, System.AD, System.ENTRA)
#: Systems a device audit reads.
DEVICE_SYSTEMS: tuple[System, ...] = (System.INTUNE, System.LANSWEEPER, System.HELIX, System.FEDEX)
#: Systems the health check pings (the seed's six; FedEx is added after them).
HEALTH_SYSTEMS: tuple[System, ...] = (
    System.WORKDAY,
    System.AD,
    System.ENTRA,
    System.LANSWEEPER,
    System.INTUNE,
    System.HELIX,
    System.FEDEX,
)
