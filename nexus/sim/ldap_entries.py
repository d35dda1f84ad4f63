"""The org's AD users as directory entries: DNs, attributes, the OUs above them, and their LDIF rendering.

One description of the directory for both AD backends: :mod:`nexus.sim.ldap_server` streams :func:`render_ldif`
into ``slapadd``, :mod:`nexus.sim.ldap_mock` adds :func:`directory_entries` to ldap3's MOCK_SYNC server. Layout, as
on a domain controller: base ``DC=corp,DC=example``; users at their :attr:`AdUser.dn` (``OU=Users,OU=<Department>``,
or another OU tree); the OUs are created from the users' DNs; AD's built-in accounts (``Administrator``, ``Guest``,
``krbtgt``) in ``CN=Users``; the service account Nexus binds as at ``CN=svc-nexus,OU=Service Accounts,DC=corp,
DC=example``, a ``user`` like on a real domain (so the person filter finds it, and the client must skip it); a
computer account in ``CN=Computers``; and ``DC=DomainDnsZones``, a referral, so a subtree search from the base gets
a continuation reference (RFC 4511 4.5.3) as it does from an AD domain root.

Every user entry has AD's shape (Microsoft's schema reference, https://learn.microsoft.com/en-us/windows/win32/adschema/):
``objectClass`` ``top/person/organizationalPerson/user``; ``objectCategory`` the DN
``CN=Person,CN=Schema,CN=Configuration,<base>``; ``sAMAccountType`` 805306368; ``userAccountControl`` (512 normal
account, +2 ACCOUNTDISABLE); ``accountExpires`` (FILETIME, 0x7FFFFFFFFFFFFFFF = never, as AD writes a new
account's); ``lastLogonTimestamp`` (FILETIME, absent when the account never logged on).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping

from ldap3.utils.dn import parse_dn

from clients.ad.dn import split_unescaped, unescape_dn_value
from clients.ad.filetime import NEVER, to_filetime
from nexus.sim.org_model import AdUser

DEFAULT_BASE_DN = "DC=corp,DC=example"
DEFAULT_BIND_DN = "CN=svc-nexus,OU=Service Accounts,DC=corp,DC=example"
#: sAMAccountType of user and computer accounts (SAM_NORMAL_USER_ACCOUNT, SAM_MACHINE_ACCOUNT).
NORMAL_USER_ACCOUNT = 805306368
MACHINE_ACCOUNT = 805306369
#: The built-in accounts every domain has, with AD's userAccountControl for them (Administrator: 66048 =
#: NORMAL_ACCOUNT|DONT_EXPIRE_PASSWORD; Guest: 66082, disabled, PASSWD_NOTREQD; krbtgt: 514, disabled).
BUILTIN_ACCOUNTS = (("Administrator", 66048), ("Guest", 66082), ("krbtgt", 514))


class DirectoryError(ValueError):
    """The org's entries cannot form the directory (a user outside the base DN, a container of no known type)."""


def _safe(value: str) -> bool:
    """RFC 2849 SAFE-STRING (plus: no trailing space, which slapd would strip)."""
    return bool(value) and value.isascii() and value.isprintable() and value[0] not in " :<" and value[-1] != " "


def _line(attr: str, value: str) -> str:
    if _safe(value):
        return f"{attr}: {value}\n"
    return f"{attr}:: {base64.b64encode(value.encode()).decode()}\n"


def split_rdn(dn: str) -> tuple[str, str]:
    """``("CN=a\\, b", "OU=x,DC=y")`` from ``"CN=a\\, b,OU=x,DC=y"``: the first RDN and the parent DN."""
    if "\\" not in dn:
        rdn, _, parent = dn.partition(",")
        return rdn.strip(), parent.strip()
    escaped = False
    for index, ch in enumerate(dn):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            return dn[:index].strip(), dn[index + 1 :].strip()
    return dn.strip(), ""


def rdn_value(dn: str) -> str:
    """The unescaped value of the first RDN of ``dn``."""
    return unescape_dn_value(parse_dn(dn)[0][1])


def container_attributes(dn: str) -> dict[str, list[str]]:
    """An intermediate entry (base, OU, container) named by its RDN type."""
    attr, _, _ = parse_dn(dn)[0]
    value = rdn_value(dn)
    classes = {"dc": "domain", "ou": "organizationalUnit", "o": "organization", "cn": "container"}
    kind = attr.lower()
    if kind not in classes:
        raise DirectoryError(f"cannot create container {dn!r}: RDN type {attr!r} (expected DC, O, OU or CN)")
    return {"objectClass": ["top", classes[kind]], kind: [value]}


def naming_context(dn: str) -> str:
    """The domain part of ``dn``: its trailing ``DC=`` RDNs (``DC=corp,DC=example``)."""
    rdns = split_unescaped(dn, ",")
    tail: list[str] = []
    for rdn in reversed(rdns):
        if not rdn.strip().lower().startswith("dc="):
            break
        tail.append(rdn.strip())
    return ",".join(reversed(tail))


def netbios_name(base_dn: str) -> str:
    """The domain's NetBIOS name as the simulator spells it: the first DC label, upper case (``CORP``)."""
    return rdn_value(base_dn).upper()


def object_category(kind: str, dn: str) -> str:
    """AD's objectCategory DN for ``kind`` (``Person``, ``Computer``) in the forest of ``dn``."""
    return f"CN={kind},CN=Schema,CN=Configuration,{naming_context(dn)}"


def account_attributes(
    dn: str, sam: str, uac: int, *, kind: str = "Person", account_type: int = NORMAL_USER_ACCOUNT
) -> dict[str, list[str]]:
    """The attributes every AD account has (classes, category, type, UAC, accountExpires never)."""
    classes = ["top", "person", "organizationalPerson", "user"] + (["computer"] if kind == "Computer" else [])
    cn = rdn_value(dn)
    return {
        "objectClass": classes,
        "objectCategory": [object_category(kind, dn)],
        "cn": [cn],
        "sn": [cn],  # slapd's person requires sn; AD's built-ins have none (never read: they are not people)
        "sAMAccountName": [sam],
        "sAMAccountType": [str(account_type)],
        "userAccountControl": [str(uac)],
        "accountExpires": [str(NEVER)],
    }


def user_attributes(user: AdUser) -> dict[str, list[str]]:
    """An :class:`AdUser` as LDAP attributes in AD's shape (empty values left out: LDAP has no empty strings)."""
    attrs: dict[str, list[str]] = {
        "objectClass": ["top", "person", "organizationalPerson", "user"],
        "objectCategory": [object_category("Person", user.dn)],
        "sAMAccountType": [str(NORMAL_USER_ACCOUNT)],
        "accountExpires": [str(to_filetime(user.account_expires) if user.account_expires else NEVER)],
    }
    if user.last_logon is not None:
        attrs["lastLogonTimestamp"] = [str(to_filetime(user.last_logon))]
    for name, value in (
        ("cn", user.cn),
        ("sAMAccountName", user.sam),
        ("userPrincipalName", user.upn),
        ("displayName", user.display_name),
        ("givenName", user.given_name),
        ("sn", user.sn),
        ("userAccountControl", str(user.user_account_control)),
        ("mail", user.mail),
        ("title", user.title),
        ("department", user.department),
        ("manager", user.manager_dn),
        ("employeeID", user.employee_id),
        ("objectGUID", user.object_guid),
    ):
        if value:
            attrs[name] = [value]
    proxies = [p for p in user.proxy_addresses if p]
    if proxies:
        attrs["proxyAddresses"] = proxies
    return attrs


#: Every attribute :func:`user_attributes` may write (besides objectClass and cn).
USER_ATTRIBUTES = (
    "objectCategory",
    "sAMAccountType",
    "accountExpires",
    "lastLogonTimestamp",
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "givenName",
    "sn",
    "userAccountControl",
    "mail",
    "title",
    "department",
    "manager",
    "employeeID",
    "objectGUID",
    "proxyAddresses",
)


def _entry(dn: str, attrs: Mapping[str, Iterable[str]]) -> str:
    # Inlined _safe/_line: this runs ~2M times for a 100k-people org.
    parts = [_line("dn", dn)]
    for name, values in attrs.items():
        for value in values:
            if value.isascii() and value.isprintable() and value[0] not in " :<" and value[-1] != " ":
                parts.append(f"{name}: {value}\n")
            else:
                parts.append(_line(name, value))
    parts.append("\n")
    return "".join(parts)


def directory_entries(
    users: Iterable[AdUser], *, base_dn: str, bind_dn: str, bind_password: str
) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """Every entry of the directory as (DN, attributes), each parent before its children.

    Yields the base, the service account (``bind_password`` is the userPassword value as stored), then each user,
    creating the OUs on the way from the users' DNs.
    """
    base_key = base_dn.lower().replace(" ", "")
    created: set[str] = set()

    def ensure(dn: str) -> Iterator[tuple[str, dict[str, list[str]]]]:
        # Walk up to the first existing ancestor, then create downwards.
        missing: list[str] = []
        current = dn
        while current and current.lower().replace(" ", "") not in created:
            missing.append(current)
            if current.lower().replace(" ", "") == base_key:
                break
            current = split_rdn(current)[1]
            if not current:
                raise DirectoryError(f"{dn!r} is not under the base DN {base_dn!r}")
        for ancestor in reversed(missing):
            created.add(ancestor.lower().replace(" ", ""))
            yield ancestor, container_attributes(ancestor)

    yield from ensure(base_dn)
    host = ".".join(rdn_value(r) for r in split_unescaped(naming_context(base_dn), ","))  # corp.example
    users_container = f"CN=Users,{base_dn}"
    yield from ensure(users_container)
    for sam, uac in BUILTIN_ACCOUNTS:
        dn = f"CN={sam},{users_container}"
        yield dn, {**account_attributes(dn, sam, uac), "description": [f"Built-in account {sam}"]}
    computers = f"CN=Computers,{base_dn}"
    yield from ensure(computers)
    workstation = f"CN=WS-0001,{computers}"
    yield workstation, {
        **account_attributes(workstation, "WS-0001$", 4096, kind="Computer", account_type=MACHINE_ACCOUNT),
        "dNSHostName": [f"ws-0001.{host}"],
    }
    zones = f"DC=DomainDnsZones,{base_dn}"
    created.add(zones.lower().replace(" ", ""))
    yield zones, {
        "objectClass": ["referral", "extensibleObject"],
        "dc": ["DomainDnsZones"],
        "ref": [f"ldap://DomainDnsZones.{host}/{zones}"],
    }
    for user in users:
        yield from ensure(split_rdn(user.dn)[1])
        yield user.dn, user_attributes(user)
    # The bind account after the people (a listing in entry order meets it last: a short last page, not a short
    # first one).
    yield from ensure(split_rdn(bind_dn)[1])
    bind_sam = rdn_value(bind_dn)
    yield (
        bind_dn,
        {
            **account_attributes(bind_dn, bind_sam, 66048),
            "userPrincipalName": [f"{bind_sam}@{host}"],
            "userPassword": [bind_password],
            "description": ["Nexus read-only bind account"],
        },
    )


def render_ldif(users: Iterable[AdUser], *, base_dn: str, bind_dn: str, bind_password_hash: str) -> Iterator[str]:
    """The whole directory as LDIF entries, every parent before its children (what ``slapadd -q`` needs)."""
    for dn, attrs in directory_entries(users, base_dn=base_dn, bind_dn=bind_dn, bind_password=bind_password_hash):
        yield _entry(dn, attrs)


__all__ = [
    "BUILTIN_ACCOUNTS",
    "DEFAULT_BASE_DN",
    "DEFAULT_BIND_DN",
    "MACHINE_ACCOUNT",
    "NORMAL_USER_ACCOUNT",
    "USER_ATTRIBUTES",
    "DirectoryError",
    "account_attributes",
    "container_attributes",
    "directory_entries",
    "naming_context",
    "netbios_name",
    "object_category",
    "rdn_value",
    "render_ldif",
    "split_rdn",
    "user_attributes",
]
