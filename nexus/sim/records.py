"""The synthetic organisation as canonical records: what the clients would produce from the simulators.

Used by the embedded demo, the engine's ground-truth tests and benchmarks to run the drift engine on an
:class:`~nexus.sim.org_model.Org` without any HTTP or LDAP in between. The mapping mirrors the clients (``clients/``):
values are kept as each system holds them, times become ISO 8601 UTC strings, AD aliases are the ``smtp:``
proxyAddresses other than ``mail``, and FedEx answers "not found" for tracking numbers it does not know.

``resolve_managers=True`` fills ``manager_employee_id`` / ``manager_email`` the way the AD client (reading the
manager's entry) and Graph (``$expand=manager``) do; ``False`` leaves only the raw DN / object id, which the engine
must then resolve itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from nexus.models import DeviceRecord, PersonRecord, ReturnTicket, ShipmentRecord
from nexus.sim.org_model import (
    AdUser,
    EntraUser,
    FedexShipment,
    HelixAsset,
    HelixReturnTicket,
    IntuneDevice,
    LansweeperAsset,
    Org,
    WorkdayWorker,
)

__all__ = ["FEDEX_NOT_FOUND", "OrgRecords", "org_records"]

#: FedEx's error code for an unknown tracking number (as the simulator and the real API return it).
FEDEX_NOT_FOUND = "TRACKING.TRACKINGNUMBER.NOTFOUND"


@dataclass(slots=True)
class OrgRecords:
    """Every system's canonical records (shipments: one per Helix ticket's tracking number)."""

    workday: list[PersonRecord] = field(default_factory=list)
    ad: list[PersonRecord] = field(default_factory=list)
    entra: list[PersonRecord] = field(default_factory=list)
    intune: list[DeviceRecord] = field(default_factory=list)
    lansweeper: list[DeviceRecord] = field(default_factory=list)
    helix: list[DeviceRecord] = field(default_factory=list)
    tickets: list[ReturnTicket] = field(default_factory=list)
    shipments: list[ShipmentRecord] = field(default_factory=list)

    @property
    def people(self) -> list[PersonRecord]:
        return [*self.workday, *self.ad, *self.entra]


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def workday_record(w: WorkdayWorker) -> PersonRecord:
    return PersonRecord(
        system="workday",
        key=w.employee_id,
        employee_id=w.employee_id,
        email=w.email,
        display_name=w.display_name,
        first_name=w.first_name,
        last_name=w.last_name,
        title=w.title,
        department=w.department,
        manager_ref=w.manager_id,
        manager_employee_id=w.manager_id,
        enabled=w.active,
        status="Active" if w.active else "Terminated",
        worker_type=w.worker_type,
        termination_date=_date(w.termination_date),
    )


def ad_record(u: AdUser, by_dn: dict[str, AdUser] | None = None) -> PersonRecord:
    aliases: list[str] = []
    seen = {u.mail.lower()} if u.mail else set()
    for address in u.proxy_addresses:
        if address[:5].lower() == "smtp:" and address[5:].lower() not in seen:
            seen.add(address[5:].lower())
            aliases.append(address[5:])
    manager = by_dn.get(u.manager_dn) if by_dn is not None and u.manager_dn else None
    return PersonRecord(
        system="ad",
        key=u.dn,
        employee_id=u.employee_id,
        email=u.mail,
        upn=u.upn,
        username=u.sam,
        display_name=u.display_name,
        first_name=u.given_name,
        last_name=u.sn,
        title=u.title,
        department=u.department,
        manager_ref=u.manager_dn,
        manager_employee_id=manager.employee_id if manager else None,
        manager_email=(manager.mail or manager.upn) if manager else None,
        # as the AD client reads it: an expired account cannot sign in, whatever userAccountControl says
        enabled=u.can_sign_in(datetime.now(UTC)),
        aliases=tuple(aliases),
        account_expires=_iso(u.account_expires),
        last_logon=_iso(u.last_logon),
    )


def entra_record(u: EntraUser, by_id: dict[str, EntraUser] | None = None) -> PersonRecord:
    manager = by_id.get(u.manager_id) if by_id is not None and u.manager_id else None
    return PersonRecord(
        system="entra",
        key=u.id,
        employee_id=u.employee_id,
        email=u.mail,
        upn=u.upn,
        display_name=u.display_name,
        first_name=u.given_name,
        last_name=u.surname,
        title=u.job_title,
        department=u.department,
        manager_ref=u.manager_id,
        manager_employee_id=manager.employee_id if manager else None,
        manager_email=(manager.mail or manager.upn) if manager else None,
        enabled=u.account_enabled,
        aliases=tuple(u.other_mails),
        # as the Entra client reads signInActivity: the latest sign-in of either kind
        last_logon=_iso(max((t for t in (u.last_sign_in, u.last_non_interactive_sign_in) if t is not None),
                            default=None)),
    )


def intune_record(d: IntuneDevice) -> DeviceRecord:
    return DeviceRecord(
        system="intune",
        key=d.id,
        serial=d.serial,
        name=d.device_name,
        owner=d.upn,
        last_seen=_iso(d.last_sync),
        compliance=d.compliance_state,
        status=d.management_state,
        model=d.model,
        manufacturer=d.manufacturer,
    )


def lansweeper_record(a: LansweeperAsset) -> DeviceRecord:
    return DeviceRecord(
        system="lansweeper",
        key=a.key,
        serial=a.serial,
        name=a.name,
        owner=a.user_name,
        last_seen=_iso(a.last_seen),
        model=a.model,
        manufacturer=a.manufacturer,
    )


def helix_record(a: HelixAsset) -> DeviceRecord:
    return DeviceRecord(
        system="helix",
        key=a.reconciliation_id,
        serial=a.serial,
        name=a.name,
        owner=a.owner_email,
        status=a.status,
        model=a.model,
        manufacturer=a.manufacturer,
    )


def ticket_record(t: HelixReturnTicket) -> ReturnTicket:
    return ReturnTicket(
        ticket_id=t.incident_number,
        serial=t.serial,
        customer_email=t.customer_email,
        tracking_number=t.tracking_number,
        status=t.status,
        opened_at=_iso(t.submit_date),
    )


def shipment_record(number: str, s: FedexShipment | None) -> ShipmentRecord:
    if s is None:
        return ShipmentRecord(tracking_number=number, found=False, error=FEDEX_NOT_FOUND)
    return ShipmentRecord(
        tracking_number=s.tracking_number,
        found=True,
        delivered=s.status_code == "DL",
        status_code=s.status_code,
        status=s.description,
        delivered_at=_iso(s.delivered_at),
    )


def org_records(org: Org, *, resolve_managers: bool = True) -> OrgRecords:
    """Every record of ``org`` as the clients would return it."""
    by_dn = {u.dn: u for u in org.ad} if resolve_managers else None
    by_id = {u.id: u for u in org.entra} if resolve_managers else None
    fedex = {s.tracking_number: s for s in org.fedex}
    numbers = dict.fromkeys(t.tracking_number for t in org.helix_tickets if t.tracking_number)
    return OrgRecords(
        workday=[workday_record(w) for w in org.workday],
        ad=[ad_record(u, by_dn) for u in org.ad],
        entra=[entra_record(u, by_id) for u in org.entra if u.user_type != "Guest"],  # the client skips guests
        intune=[intune_record(d) for d in org.intune],
        lansweeper=[lansweeper_record(a) for a in org.lansweeper],
        helix=[helix_record(a) for a in org.helix_assets],
        tickets=[ticket_record(t) for t in org.helix_tickets],
        shipments=[shipment_record(n, fedex.get(n)) for n in numbers],
    )
