"""What Nexus reads from Active Directory: the system id, the person filter, the attributes, the disabled bit."""

from __future__ import annotations

from nexus.systems import System

SYSTEM = System.AD.value
#: User accounts, not computers (``objectClass=user`` too, but sAMAccountType 805306369, objectClass computer) nor
#: contacts: ``sAMAccountType`` 805306368 is SAM_NORMAL_USER_ACCOUNT
#: (https://learn.microsoft.com/en-us/windows/win32/adschema/a-samaccounttype), indexed on every DC. AD's other
#: idiom, ``(objectCategory=person)``, relies on the DC expanding ``person`` to the category's DN
#: (``CN=Person,CN=Schema,CN=Configuration,...``), which no other LDAP server does. Built-in and service accounts
#: match this filter too: :mod:`clients.ad.exclusions` drops them. Without the outer ``(&...)`` so lookups can add
#: their own clauses.
PERSON_FILTER = "(objectClass=user)(sAMAccountType=805306368)(!(objectClass=computer))"
#: ``userAccountControl`` bit 0x2, read by the client (ldap3's MOCK_SYNC rejects AD's bitwise matching rule).
ACCOUNTDISABLE = 0x2
ATTRIBUTES = (
    "sAMAccountName",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "sn",
    "title",
    "department",
    "manager",
    "employeeID",
    "userAccountControl",
    "proxyAddresses",
    "accountExpires",
    "lastLogonTimestamp",
)

__all__ = ["ACCOUNTDISABLE", "ATTRIBUTES", "PERSON_FILTER", "SYSTEM"]
