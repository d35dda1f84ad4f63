"""One client per system per worker process, built lazily from settings (tokens are cached inside each client)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from nexus.settings import get_settings
from nexus.systems import System

if TYPE_CHECKING:
    from clients.ad import ConnectionFactory

_lock = threading.Lock()
_clients: dict[System, Any] = {}
#: The connection factory of an in-process AD directory this process serves (the embedded demo without slapd:
#: see use_ad_connection_factory); None builds TCP connections to AD_LDAP_URL.
_ad_connection_factory: ConnectionFactory | None = None


def build_client(system: System) -> Any:
    settings = get_settings()
    if system is System.WORKDAY:
        from clients.workday import WorkdayClient

        return WorkdayClient(settings)
    if system is System.AD:
        from clients.ad import ADClient

        return ADClient(settings, connection_factory=_ad_connection_factory)
    if system is System.ENTRA:
        from clients.entra import EntraClient

        return EntraClient(settings)
    if system is System.INTUNE:
        from clients.intune import IntuneClient

        return IntuneClient(settings)
    if system is System.LANSWEEPER:
        from clients.lansweeper import LansweeperClient

        return LansweeperClient(settings)
    if system is System.HELIX:
        from clients.helix import HelixClient

        return HelixClient(settings)
    from clients.fedex import FedexClient

    return FedexClient(settings)


def get_client(system: System) -> Any:
    """The process's client for ``system``, paced by the system's shared request budget (clients.ratelimit)."""
    from clients.ratelimit import limiter_for

    with _lock:
        client = _clients.get(system)
        if client is None:
            client = _clients[system] = build_client(system)
            client.rate_limiter = limiter_for(system.value)
        return client


def reset_clients() -> None:
    """Drop cached clients (after the settings changed, e.g. in tests and the demo)."""
    with _lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:  # closing a dead connection must not stop the reset
                pass
        _clients.clear()


def use_ad_connection_factory(factory: ConnectionFactory | None) -> None:
    """Build this process's AD client on ``factory`` from now on (None: TCP); drops the cached clients."""
    global _ad_connection_factory
    reset_clients()
    with _lock:
        _ad_connection_factory = factory
