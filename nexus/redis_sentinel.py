"""Redis Sentinel: where the master is, and how each Redis use reaches it (``REDIS_SENTINELS``).

With ``REDIS_SENTINELS=host:port,...`` set, no Redis address is dialled directly: every client asks the sentinels
for the master named ``REDIS_SENTINEL_MASTER`` and asks again after a failover.

- the stores and the breakers/budgets (:mod:`nexus.redis_conn`): redis-py's :class:`redis.sentinel.Sentinel`
  ``master_for`` client. A connection that meets the old master (refused, or demoted: ``READONLY``) is dropped and
  the next attempt rediscovers the master; the stores' client keeps retrying for ``NEXUS_REDIS_FAILOVER_WAIT_S``
  (:func:`failover_retry`), the breakers fail open meanwhile.
- Celery's broker and result backend (:func:`celery_broker_config`, :func:`celery_backend_config`): the
  ``sentinel://h1:p1;sentinel://h2:p2`` transport with ``master_name`` and ``sentinel_kwargs`` in the transport
  options. The master's password is in each broker URL (kombu needs it there to switch alternates; it is shown
  masked) and in ``redis_password`` for the result backend (Celery masks it in ``inspect conf`` and Flower).
- beat (:func:`redbeat_config`): celery-redbeat's ``redis-sentinel://`` mode.

This module does not read the settings (:meth:`nexus.settings.Settings.redis_sentinel` builds the
:class:`SentinelTarget`), so the settings can validate ``REDIS_SENTINELS`` with :func:`parse_sentinels`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import redis
    from redis.retry import Retry

#: ``REDIS_SENTINEL_MASTER``'s default: the name Redis's own sentinel.conf example monitors.
DEFAULT_MASTER = "mymaster"
#: A sentinel's usual port, when ``REDIS_SENTINELS`` gives a bare host.
DEFAULT_SENTINEL_PORT = 26379
#: How long a question to one sentinel may take (it is on the path of every reconnect).
SENTINEL_SOCKET_TIMEOUT_S = 1.0
#: ``NEXUS_REDIS_FAILOVER_WAIT_S``'s default: a failover with ``down-after-milliseconds 5000`` fits, with room.
DEFAULT_FAILOVER_WAIT_S = 15.0
#: The longest pause between two retries through a failover.
RETRY_PAUSE_MAX_S = 0.5

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """The Sentinel-managed master: the sentinels, its name, the database, and the two passwords (never in repr).

    Hashable: :func:`nexus.redis_conn.redis_for` and the breakers' registry key their caches on it."""

    sentinels: tuple[Address, ...]
    master: str = DEFAULT_MASTER
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    #: How long a call keeps retrying while there is no master to reach (``NEXUS_REDIS_FAILOVER_WAIT_S``).
    failover_wait_s: float = DEFAULT_FAILOVER_WAIT_S

    def describe(self) -> str:
        """``master 'mymaster' via sentinels 10.0.0.1:26379,10.0.0.2:26379 (db 0)``: for logs and errors."""
        return f"master {self.master!r} via sentinels {format_sentinels(self.sentinels)} (db {self.db})"

    def sentinel_kwargs(self) -> dict[str, Any]:
        """Connection options for the sentinels themselves: their own password and short socket waits (a sentinel
        that hangs must not stall a reconnect; discovery moves on to the next one)."""
        options: dict[str, Any] = {"socket_timeout": SENTINEL_SOCKET_TIMEOUT_S,
                                   "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT_S}
        if self.sentinel_password:
            options["password"] = self.sentinel_password
        return options

    def secrets(self) -> list[str]:
        """The passwords, for the log redaction (:func:`nexus.logs.configured_secrets`)."""
        return [value for value in (self.password, self.sentinel_password) if value]


def _host(text: str) -> str:
    if text.startswith("[") and text.endswith("]"):  # [::1]
        ipaddress.IPv6Address(text[1:-1])
        return text[1:-1]
    if not text or any(c.isspace() or c in "/@?#[]" for c in text) or text.count(":"):
        raise ValueError(text)
    return text


def parse_sentinel(item: str) -> Address:
    """``host:port`` (``[::1]:26379`` for IPv6; a bare host means port 26379) -> ``(host, port)``; ValueError."""
    text = item.strip()
    host_text, port_text = text, str(DEFAULT_SENTINEL_PORT)
    if text.startswith("["):
        close = text.find("]")
        if close > 0 and text[close + 1:].startswith(":"):
            host_text, port_text = text[:close + 1], text[close + 2:]
    elif text.count(":") == 1:
        host_text, port_text = text.split(":")
    try:
        host = _host(host_text)
        port = int(port_text, 10)
    except ValueError:
        raise ValueError(f"REDIS_SENTINELS: {item.strip()!r} is not host:port") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"REDIS_SENTINELS: {item.strip()!r} has port {port}, outside 1-65535")
    return host, port


def parse_sentinels(text: str) -> tuple[Address, ...]:
    """``REDIS_SENTINELS`` (comma-separated ``host:port``; empty: Sentinel is off) -> the addresses, each once.

    ValueError naming the variable and the item for anything else."""
    items = [item for item in text.split(",") if item.strip()]
    if text.strip() and not items:
        raise ValueError(f"REDIS_SENTINELS: {text!r} names no sentinel")
    addresses = [parse_sentinel(item) for item in items]
    return tuple(dict.fromkeys(addresses))


def format_sentinels(sentinels: tuple[Address, ...]) -> str:
    return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in sentinels)


# -- riding out the failover -----------------------------------------------------------------------------------------
def failover_retries(wait_s: float) -> int:
    """How many retries, 50 ms doubling to :data:`RETRY_PAUSE_MAX_S`, add up to ``wait_s`` of pauses."""
    retries, total, pause = 0, 0.0, 0.05
    while total < wait_s:
        total += pause
        pause = min(pause * 2, RETRY_PAUSE_MAX_S)
        retries += 1
    return retries


def failover_retry(wait_s: float) -> Retry:
    """The stores' retry through a failover: a lost connection, a demoted master (``READONLY``) or no master known
    yet (``MasterNotFoundError``) is retried for about ``wait_s`` seconds (a deterministic budget, no jitter), each
    attempt asking the sentinels where the master is."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return Retry(ExponentialBackoff(cap=RETRY_PAUSE_MAX_S, base=0.025), failover_retries(wait_s))


def publish_retry_policy(wait_s: float) -> dict[str, Any]:
    """Celery's ``task_publish_retry_policy`` through a failover (its default gives up after 0.6 s): a task that
    publishes the next step, or a submit, waits up to about ``wait_s`` for the new master."""
    return {"max_retries": failover_retries(wait_s), "interval_start": 0.05, "interval_step": 0.1,
            "interval_max": RETRY_PAUSE_MAX_S}


# -- redis-py ---------------------------------------------------------------------------------------------------------
def master_client(target: SentinelTarget, **connection_kwargs: Any) -> redis.Redis:
    """A client of the current master of ``target`` (its own :class:`redis.sentinel.Sentinel`).

    ``connection_kwargs`` (socket timeouts, ``retry``, ``health_check_interval``) apply to the master's
    connections (without a ``retry``, a Sentinel-managed pool retries nothing); the sentinels get
    :meth:`SentinelTarget.sentinel_kwargs`. Each new connection asks the sentinels where the master is, so after a
    failover the pool's next connection goes to the new master; a connection to a demoted master raises
    ``ConnectionError`` on ``READONLY`` and is dropped. Until the sentinels agree on a new
    master, calls fail with ``MasterNotFoundError`` (a ``ConnectionError``), as with a Redis that is down.
    """
    from redis.sentinel import Sentinel

    credentials: dict[str, Any] = {"db": target.db}
    if target.username:
        credentials["username"] = target.username
    if target.password:
        credentials["password"] = target.password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs(), **credentials,
                        **connection_kwargs)
    return sentinel.master_for(target.master)


# -- Celery and kombu -------------------------------------------------------------------------------------------------
def celery_url(target: SentinelTarget, *, credentials: bool = False) -> str:
    """``sentinel://h1:p1/db;sentinel://h2:p2/db``: every sentinel; with ``credentials``, the master's user and
    password in each (``sentinel://:password@h1:p1/db;...``)."""
    userinfo = ""
    if credentials and (target.username or target.password):
        userinfo = f"{quote(target.username or '', safe='')}:{quote(target.password or '', safe='')}@"
    return ";".join(f"sentinel://{userinfo}{format_sentinels(((host, port),))}/{target.db}"
                    for host, port in target.sentinels)


def _transport_options(target: SentinelTarget, base: dict[str, Any]) -> dict[str, Any]:
    return {**base, "master_name": target.master, "sentinel_kwargs": target.sentinel_kwargs()}


def celery_broker_config(target: SentinelTarget, transport_options: dict[str, Any]) -> dict[str, Any]:
    """The broker part of Celery's configuration through the sentinels (kombu's ``sentinel://`` transport).

    ``transport_options`` (``visibility_timeout`` ...) are kept. The master's password is in every alternate URL,
    not in ``broker_password``: when a connection fails, kombu switches to the next alternate with
    ``Connection.switch``, whose parameters come from that URL alone (a password given apart is dropped there, and
    the consumer then reconnects without one for good: ``HELLO must be called with the client already
    authenticated``). kombu and Celery show the URL masked (``sentinel://:**@h1:p1/0``), and the log redaction
    knows the password (:func:`nexus.logs.configured_secrets`).
    """
    return {
        "broker_url": celery_url(target, credentials=True),
        "broker_transport_options": _transport_options(target, transport_options),
    }


def celery_backend_config(target: SentinelTarget, transport_options: dict[str, Any]) -> dict[str, Any]:
    """The result backend part: Celery's ``SentinelBackend`` (``sentinel://`` URL), ``master_name`` and
    ``sentinel_kwargs`` in ``result_backend_transport_options``; the master's password is ``redis_password``
    (the backend's default password, used when the URL has none)."""
    config: dict[str, Any] = {
        "result_backend": celery_url(target),
        "result_backend_transport_options": _transport_options(target, transport_options),
    }
    if target.username:
        config["redis_username"] = target.username
    if target.password:
        config["redis_password"] = target.password
    return config


def redbeat_config(target: SentinelTarget, *, socket_timeout_s: float = 5.0) -> dict[str, Any]:
    """celery-redbeat through the sentinels: its ``redis-sentinel://`` URL mode (the options carry everything)."""
    options: dict[str, Any] = {
        "sentinels": list(target.sentinels),
        "service_name": target.master,
        "db": target.db,
        "socket_timeout": socket_timeout_s,
        "sentinel_kwargs": target.sentinel_kwargs(),
    }
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    return {"redbeat_redis_url": "redis-sentinel://", "redbeat_redis_options": options}


__all__ = [
    "DEFAULT_FAILOVER_WAIT_S",
    "DEFAULT_MASTER",
    "DEFAULT_SENTINEL_PORT",
    "SentinelTarget",
    "celery_backend_config",
    "celery_broker_config",
    "celery_url",
    "failover_retries",
    "failover_retry",
    "format_sentinels",
    "master_client",
    "parse_sentinel",
    "parse_sentinels",
    "publish_retry_policy",
    "redbeat_config",
]
