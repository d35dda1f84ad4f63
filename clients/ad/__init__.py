"""Active Directory over LDAP (ldap3): list every person, find one, check health.

Same shape as the other clients: ``fetch_page(cursor)`` is one request of the person listing, ``list_users()``
pages through everything, ``find_user()`` looks one person up, ``health()`` measures a round trip, ``close()``
releases the connections. Retries and the circuit breaker are NOT here (the resilience layer and the Celery tasks
own them); this package only talks LDAP and maps every failure into :mod:`nexus.errors` in one place
(:mod:`clients.ad.errors`).

Filters: every value is escaped with :func:`ldap3.utils.conv.escape_filter_chars` (never the whole filter), so
``*)(mail=*`` is a literal that matches nothing. People are ``(&(objectCategory=person)(objectClass=user))``,
which skips computer accounts on a real domain. Whether an account is disabled is read from bit 0x2 of
``userAccountControl`` here, not with AD's bitwise matching rule, so the same filters work on ldap3's MOCK_SYNC
(the embedded demo's directory, :mod:`nexus.sim.ldap_mock`), which rejects that rule.

DNs: every DN is spelled the AD way (:func:`ad_dn`, :mod:`clients.ad.dn`), so a record's ``key`` equals other
records' ``manager_ref`` whichever server (AD, or OpenLDAP in the simulator) wrote it.

The modules, by reason to change:

- :mod:`~clients.ad.schema`: the person filter and the attributes read;
- :mod:`~clients.ad.connection`: building, binding and unbinding connections (TCP, or an injected factory), one
  search, the lean entry decoder;
- :mod:`~clients.ad.errors`: LDAP results and ldap3 exceptions -> :mod:`nexus.errors`;
- :mod:`~clients.ad.dn`: RFC 4514 DN parsing and escaping, AD spelling;
- :mod:`~clients.ad.records`: a search entry -> :class:`~nexus.models.PersonRecord`;
- :mod:`~clients.ad.matching`: lookup filters and the ranking of several matches;
- :mod:`~clients.ad.listing`: the paged listing (its own connection, cursors, :class:`ListingLost`);
- :mod:`~clients.ad.client`: :class:`ADClient`.
"""

from __future__ import annotations

from clients.ad.client import BATCH_SIZE, DEFAULT_PAGE_SIZE, ADClient
from clients.ad.connection import ConnectionFactory, default_connection, lean_entries, tcp_connection
from clients.ad.dn import ad_dn, dn_key, escape_dn_value, unescape_dn_value
from clients.ad.errors import map_exception, map_result
from clients.ad.listing import PAGED_RESULTS_OID, LdapListing, ListingLost
from clients.ad.records import entry_to_person
from clients.ad.schema import ACCOUNTDISABLE, ATTRIBUTES, PERSON_FILTER, SYSTEM

__all__ = [
    "ACCOUNTDISABLE",
    "ATTRIBUTES",
    "BATCH_SIZE",
    "DEFAULT_PAGE_SIZE",
    "PAGED_RESULTS_OID",
    "PERSON_FILTER",
    "SYSTEM",
    "ADClient",
    "ConnectionFactory",
    "LdapListing",
    "ListingLost",
    "ad_dn",
    "default_connection",
    "dn_key",
    "entry_to_person",
    "escape_dn_value",
    "lean_entries",
    "map_exception",
    "map_result",
    "tcp_connection",
    "unescape_dn_value",
]
