"""Connections to the directory: building them (TCP, or an injected factory), binding, one search, unbinding.

A :data:`ConnectionFactory` builds an UNBOUND ldap3 ``Connection`` from settings. Production uses
:func:`default_connection` (simple bind over TCP to ``AD_LDAP_URL``, ``ldaps://`` for TLS); the embedded demo and
the tests inject the in-process directory's factory (:meth:`nexus.sim.ldap_mock.MockDirectory.connection_factory`)
through :class:`clients.ad.ADClient`'s ``connection_factory`` parameter. No factory is looked up by URL: a
``mock://`` URL reaching :func:`default_connection` means the client was built without its directory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ldap3 import BASE, NONE, SIMPLE, SUBTREE, SYNC, Connection, Server

from clients.ad.errors import LDAP_FAILURES, map_exception, map_result
from clients.ad.schema import ATTRIBUTES, SYSTEM
from nexus.errors import BadRequestError
from nexus.settings import Settings

#: Builds an unbound ldap3 Connection from settings; the test and embedded-demo seam (see nexus.sim.ldap_mock).
ConnectionFactory = Callable[[Settings], Connection]


def default_connection(settings: Settings) -> Connection:
    """:func:`tcp_connection`, refusing the in-process directories' ``mock://`` URLs (they need their factory)."""
    if settings.ad_ldap_url.startswith("mock://"):
        raise BadRequestError(
            f"AD: {settings.ad_ldap_url} is an in-process directory that this process does not hold",
            system=SYSTEM,
        )
    return tcp_connection(settings)


def tcp_connection(settings: Settings) -> Connection:
    """The production connection: simple bind over TCP to ``AD_LDAP_URL`` (``ldaps://`` for TLS)."""
    server = Server(settings.ad_ldap_url, connect_timeout=settings.http_connect_timeout_s, get_info=NONE)
    conn = Connection(
        server,
        user=settings.ad_bind_dn,
        password=settings.ad_bind_password.get_secret_value(),
        authentication=SIMPLE,
        client_strategy=SYNC,
        # ldap3 packs this into SO_RCVTIMEO as whole seconds: a float would fail at connect time.
        receive_timeout=max(1, math.ceil(settings.http_timeout_s)),
        read_only=True,
        auto_referrals=False,
        raise_exceptions=False,
        check_names=False,  # no schema is read (get_info=NONE)
        return_empty_attributes=False,
        auto_range=False,  # no attribute Nexus reads comes near AD's 1500-value range limit
    )
    lean_entries(conn)
    return conn


def lean_entries(conn: Connection) -> None:
    """Decode search entries to ``{"dn", "raw_attributes"}`` only (keys lower-cased), skipping ldap3's second,
    str-typed copy of every value.

    ldap3 turns each value into str through several per-value configuration lookups and builds two
    case-insensitive dicts per entry; for a 100k-person listing that is half the client's CPU time. Only
    ``searchResEntry`` messages take this path, on SYNC connections; anything unexpected falls back to ldap3.
    """
    strategy = conn.strategy
    original = getattr(strategy, "decode_response_fast", None)
    if original is None or not conn.fast_decoder:
        return

    def decode(message: dict[str, Any]) -> dict[str, Any]:
        if message.get("protocolOp") == 4:  # searchResEntry: payload = (dn, attributes)
            try:
                dn, attributes = message["payload"][0][3], message["payload"][1][3]
                raw = {a[3][0][3].decode("ascii").lower(): [v[3] for v in a[3][1][3]] for a in attributes}
                return {
                    "type": "searchResEntry",
                    "raw_dn": dn,
                    "dn": dn.decode("utf-8"),
                    "raw_attributes": raw,
                    "attributes": {},  # never read by the client
                }
            except (IndexError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                pass  # not the shape we expect: let ldap3 decode (or reject) it
        return dict(original(message))

    strategy.decode_response_fast = decode


def open_bound(factory: ConnectionFactory, settings: Settings) -> Connection:
    """A new bound connection; bind refusals are AuthError (mapped here, never retried here)."""
    try:
        conn = factory(settings)
        ok = conn.bind()
    except LDAP_FAILURES as exc:
        raise map_exception(exc, "bind") from exc
    if not ok:
        result = dict(conn.result or {})
        quiet_unbind(conn)
        raise map_result(result, "bind")
    return conn


def search(
    conn: Connection,
    action: str,
    base: str,
    search_filter: str,
    *,
    scope: str = SUBTREE,
    attributes: Sequence[str] = ATTRIBUTES,
    paged_cookie: bytes | None = None,
    paged_size: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One search request: (entries, result). Raises the mapped error for a non-success result; ldap3's own
    exceptions propagate (the caller maps them, after deciding whether the connection is worth reopening)."""
    conn.search(
        base,
        search_filter,
        search_scope=scope,
        attributes=list(attributes),
        paged_size=paged_size,
        paged_cookie=paged_cookie,
    )
    result = dict(conn.result or {})
    if result.get("result") != 0:
        raise map_result(result, action, base_read=scope == BASE)
    entries = [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
    return entries, result


def quiet_unbind(conn: Connection) -> None:
    """Unbind, ignoring a connection that is already dead."""
    try:
        conn.unbind()
    except LDAP_FAILURES:
        pass


__all__ = [
    "ConnectionFactory",
    "default_connection",
    "lean_entries",
    "open_bound",
    "quiet_unbind",
    "search",
    "tcp_connection",
]
