"""What the Graph simulator serves: Entra users and Intune managed devices as OData collections.

Each property has an OData kind (for :func:`nexus.sim.odata.bind`) and a getter reading it from the org's record, so
a rendered item is only built for the page being answered. Indexes (mail, userPrincipalName, employeeId, id,
otherMails; serialNumber, userPrincipalName, id) are built once per org, so an indexed ``$filter`` costs
O(matches).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nexus.sim import odata
from nexus.sim.org_model import EntraUser, IntuneDevice, Org


def iso(value: datetime | None) -> str | None:
    """Graph's DateTimeOffset rendering: UTC with a ``Z``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


Getter = Callable[[Any], Any]

#: How Graph writes "no such sign-in" inside a ``signInActivity`` that exists (user-list.md, "Get users including
#: their last sign-in time": ``"lastNonInteractiveSignInDateTime": "0001-01-01T00:00:00Z"`` with an empty request id).
NEVER = "0001-01-01T00:00:00Z"


def _request_id(user: EntraUser, kind: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nexus-sim-sign-in:{kind}:{user.id}"))


def sign_in_activity(user: EntraUser) -> dict[str, str] | None:
    """Graph v1.0's ``signInActivity`` complex type (the six properties of msgraph-sdk's ``SignInActivity``);
    None for a user with no sign-in on record at all (Graph returns the property as null)."""
    interactive, other = user.last_sign_in, user.last_non_interactive_sign_in
    if interactive is None and other is None:
        return None
    latest = max(t for t in (interactive, other) if t is not None)
    return {
        "lastSignInDateTime": iso(interactive) or NEVER,
        "lastSignInRequestId": _request_id(user, "interactive") if interactive else "",
        "lastNonInteractiveSignInDateTime": iso(other) or NEVER,
        "lastNonInteractiveSignInRequestId": _request_id(user, "non-interactive") if other else "",
        "lastSuccessfulSignInDateTime": iso(latest) or NEVER,
        "lastSuccessfulSignInRequestId": _request_id(user, "successful"),
    }


USER_PROPS: dict[str, tuple[str, Getter]] = {
    "id": (odata.STRING, lambda u: u.id),
    "businessPhones": (odata.STRINGS, lambda u: []),
    "displayName": (odata.STRING, lambda u: u.display_name),
    "givenName": (odata.STRING, lambda u: u.given_name),
    "jobTitle": (odata.STRING, lambda u: u.job_title),
    "mail": (odata.STRING, lambda u: u.mail),
    "mobilePhone": (odata.STRING, lambda u: None),
    "officeLocation": (odata.STRING, lambda u: None),
    "preferredLanguage": (odata.STRING, lambda u: None),
    "surname": (odata.STRING, lambda u: u.surname),
    "userPrincipalName": (odata.STRING, lambda u: u.upn),
    "department": (odata.STRING, lambda u: u.department),
    "employeeId": (odata.STRING, lambda u: u.employee_id),
    "accountEnabled": (odata.BOOL, lambda u: u.account_enabled),
    "otherMails": (odata.STRINGS, lambda u: list(u.other_mails)),
    "createdDateTime": (odata.DATETIME, lambda u: iso(u.created)),
    "userType": (odata.STRING, lambda u: u.user_type),
    # Returned only when selected (not in DEFAULT_USER_SELECT); GraphSim caps such pages and checks the licence.
    "signInActivity": (odata.OBJECT, sign_in_activity),
}
#: What Graph returns for a user when no $select is given (its real default set, in its order).
DEFAULT_USER_SELECT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                       "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")

DEVICE_PROPS: dict[str, tuple[str, Getter]] = {
    "id": (odata.STRING, lambda d: d.id),
    "userPrincipalName": (odata.STRING, lambda d: d.upn),
    "deviceName": (odata.STRING, lambda d: d.device_name),
    "managementState": (odata.STRING, lambda d: d.management_state),
    "operatingSystem": (odata.STRING, lambda d: d.operating_system),
    "osVersion": (odata.STRING, lambda d: d.os_version),
    "complianceState": (odata.STRING, lambda d: d.compliance_state),
    "enrolledDateTime": (odata.DATETIME, lambda d: iso(d.enrolled)),
    "lastSyncDateTime": (odata.DATETIME, lambda d: iso(d.last_sync)),
    "managedDeviceOwnerType": (odata.STRING, lambda d: "company"),
    "model": (odata.STRING, lambda d: d.model),
    "manufacturer": (odata.STRING, lambda d: d.manufacturer),
    "serialNumber": (odata.STRING, lambda d: d.serial),
}
DEFAULT_DEVICE_SELECT = tuple(DEVICE_PROPS)


class View(Mapping[str, Any]):
    """A read-only property view of one org record, for :func:`odata.matches` (no per-record dict is stored)."""

    __slots__ = ("_item", "_props")

    def __init__(self, props: Mapping[str, tuple[str, Getter]], item: Any) -> None:
        self._props = props
        self._item = item

    def __getitem__(self, key: str) -> Any:
        return self._props[key][1](self._item)

    def __iter__(self) -> Iterator[str]:
        return iter(self._props)

    def __len__(self) -> int:
        return len(self._props)


@dataclass(slots=True)
class Collection:
    """One entity set: its properties (kind and getter), default ``$select``, items, indexes and ``$top`` bounds."""

    name: str  # entity set in @odata.context: "users" | "deviceManagement/managedDevices"
    type_name: str  # the type named in Graph's error messages
    props: dict[str, tuple[str, Getter]]
    default_select: tuple[str, ...]
    items: Sequence[Any]
    indexes: dict[str, dict[Any, list[int]]]
    max_top: int
    default_top: int

    @property
    def schema(self) -> dict[str, str]:
        return {name: kind for name, (kind, _getter) in self.props.items()}

    def render(self, item: Any, select: Sequence[str]) -> dict[str, Any]:
        return {name: self.props[name][1](item) for name in select}


def index_by(items: Sequence[Any], keys: Callable[[Any], Sequence[str | None]]) -> dict[Any, list[int]]:
    """Lower-cased key -> positions of the items carrying it (ascending), for :func:`nexus.sim.odata.candidates`."""
    index: dict[Any, list[int]] = {}
    for pos, item in enumerate(items):
        for key in keys(item):
            if key:
                index.setdefault(key.lower(), []).append(pos)
    return index


class GraphData:
    """Indexes over one org's Entra users and Intune devices, built once."""

    def __init__(self, org: Org) -> None:
        users: list[EntraUser] = org.entra
        devices: list[IntuneDevice] = org.intune
        self.users = Collection(
            name="users", type_name="Microsoft.DirectoryServices.User", props=USER_PROPS,
            default_select=DEFAULT_USER_SELECT, items=users, max_top=999, default_top=100,
            indexes={
                "id": index_by(users, lambda u: [u.id]),
                "mail": index_by(users, lambda u: [u.mail]),
                "userPrincipalName": index_by(users, lambda u: [u.upn]),
                "employeeId": index_by(users, lambda u: [u.employee_id]),
                "otherMails": index_by(users, lambda u: u.other_mails),
            },
        )
        self.devices = Collection(
            name="deviceManagement/managedDevices", type_name="microsoft.graph.managedDevice", props=DEVICE_PROPS,
            default_select=DEFAULT_DEVICE_SELECT, items=devices, max_top=1000, default_top=1000,
            indexes={
                "id": index_by(devices, lambda d: [d.id]),
                "serialNumber": index_by(devices, lambda d: [d.serial]),
                "userPrincipalName": index_by(devices, lambda d: [d.upn]),
            },
        )
        self.user_by_id = {u.id: u for u in users}


__all__ = [
    "DEFAULT_DEVICE_SELECT",
    "DEFAULT_USER_SELECT",
    "DEVICE_PROPS",
    "NEVER",
    "USER_PROPS",
    "Collection",
    "Getter",
    "GraphData",
    "View",
    "index_by",
    "iso",
    "sign_in_activity",
]
