"""Small hand-built orgs for the Graph and Lansweeper tests: awkward values on purpose (quotes, accents, people
without a manager or devices without a user), and a fast bulk builder for the O(page) checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, SupportsIndex, TypeVar, overload

from nexus.sim.org_model import EntraUser, IntuneDevice, LansweeperAsset, Org

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T = TypeVar("T")


class CountingList(list[T]):
    """A list that counts reads of single items: proves a simulator touched O(page) records, not the collection
    (building indexes iterates, which is not counted)."""

    reads = 0

    @overload
    def __getitem__(self, index: SupportsIndex) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: Any) -> Any:
        self.reads += 1 if not isinstance(index, slice) else len(range(*index.indices(len(self))))
        return super().__getitem__(index)


def _user(n: int, first: str, last: str, *, mail: str | None = None, manager: int | None = None,
          enabled: bool = True, dept: str | None = "Engineering", other: list[str] | None = None,
          employee_id: str | None = "default") -> EntraUser:
    upn = f"{first}.{last}@corp.example".lower()
    return EntraUser(
        id=f"00000000-0000-4000-8000-{n:012d}",
        upn=upn,
        mail=upn if mail is None else mail,
        display_name=f"{first} {last}",
        given_name=first,
        surname=last,
        job_title="Engineer" if n else "Chief Executive Officer",
        department=dept,
        employee_id=f"10{n:04d}" if employee_id == "default" else employee_id,
        account_enabled=enabled,
        manager_id=None if manager is None else f"00000000-0000-4000-8000-{manager:012d}",
        other_mails=list(other or []),
        created=NOW - timedelta(days=400 + n),
    )


def make_org(seed: int = 1) -> Org:
    users = [
        _user(0, "Ada", "Lovelace", dept="Executive"),
        _user(1, "Conor", "O'Brien", manager=0, other=["cobrien@example.com"]),
        _user(2, "José", "Müller", manager=1, mail="jose.mueller@example.com"),
        _user(3, "Grace", "Hopper", manager=1, enabled=False, dept=None),
        _user(4, "Alan", "Turing", manager=0, employee_id=None),
        _user(5, "Short", "Mail", manager=0, mail="a@corp.example"),
        _user(6, "Edsger", "Dijkstra", manager=99),  # manager not in the directory
    ]
    devices = [
        IntuneDevice(id=f"dev-{i}", device_name=f"LAPTOP-{i:03d}", serial=serial, upn=upn,
                     compliance_state=state, last_sync=NOW - timedelta(hours=i), enrolled=NOW - timedelta(days=90),
                     operating_system="Windows", os_version="10.0.22631", model="Latitude 7440", manufacturer="Dell",
                     management_state="managed" if i != 3 else "retirePending")
        for i, (serial, upn, state) in enumerate([
            ("SN-0001", "ada.lovelace@corp.example", "compliant"),
            ("SN-0002", "conor.o'brien@corp.example", "noncompliant"),
            ("SN-0003", "conor.o'brien@corp.example", "compliant"),
            ("SN'4\"})#", None, "unknown"),
            ("SN-0005", "grace.hopper@corp.example", "inGracePeriod"),
        ])
    ]
    assets = [
        LansweeperAsset(key=f"KEY{i:04d}", name=f"LAPTOP-{i:03d}", serial=serial, user_name=user,
                        asset_type="Windows", last_seen=NOW - timedelta(minutes=i, microseconds=1500),
                        manufacturer="Dell", model="Latitude 7440", ip_address=f"10.0.0.{i + 1}")
        for i, (serial, user) in enumerate([
            ("SN-0001", "CORP\\ada.lovelace"),
            ("SN-0002", "CORP\\cobrien"),
            ("SN-0003", "CORP\\cobrien"),
            ('SN\'4"})#', None),
            ("SN-0005", "CORP\\ghopper"),
            ("SN-0006", "LAB\\cobrien"),
            ("SN-0007", "cobrien"),
        ])
    ]
    return Org(seed=seed, people=len(users), generated_at=NOW, domain="corp.example", base_dn="DC=corp,DC=example",
               workday=[], ad=[], entra=users, intune=devices, lansweeper=assets, helix_assets=[], helix_tickets=[],
               fedex=[], truth={})


def make_bulk_org(users: int, devices: int, seed: int = 2) -> Org:
    """Many plain records, quickly (for the O(page size) checks)."""
    people = [_user(n, f"User{n}", "Bulk", manager=0 if n else None) for n in range(users)]
    fleet = [IntuneDevice(id=f"dev-{i}", device_name=f"PC-{i}", serial=f"BULK{i:07d}",
                          upn=f"user{i % max(users, 1)}.bulk@corp.example", compliance_state="compliant",
                          last_sync=NOW, enrolled=NOW, operating_system="Windows", os_version="10", model="M",
                          manufacturer="Dell") for i in range(devices)]
    assets = [LansweeperAsset(key=f"K{i}", name=f"PC-{i}", serial=f"BULK{i:07d}", user_name=f"CORP\\u{i}",
                              asset_type="Windows", last_seen=NOW, manufacturer="Dell", model="M")
              for i in range(devices)]
    return Org(seed=seed, people=users, generated_at=NOW, domain="corp.example", base_dn="DC=corp,DC=example",
               workday=[], ad=[], entra=CountingList(people), intune=CountingList(fleet),
               lansweeper=CountingList(assets), helix_assets=[], helix_tickets=[], fedex=[], truth={})
