"""What Nexus reads from Active Directory: the system id, the person filter, the attributes, the disabled bit."""

from __future__ import annotations

from nexus.systems import System

SYSTEM = System.AD.value
#: People, not computer accounts (which are ``objectClass=user`` too on a real domain). Without the outer ``(&...)``
#: so lookups can add their own clauses.
PERSON_FILTER = "(objectCategory=person)(objectClass=user)"
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
)

__all__ = ["ACCOUNTDISABLE", "ATTRIBUTES", "PERSON_FILTER", "SYSTEM"]
