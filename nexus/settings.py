"""Configuration from the environment and `.env` (pydantic-settings).

The connection variable names are a public contract (the env file written by `nexus sim` sets them); everything
Nexus adds is prefixed `NEXUS_`. Every variable and its default is listed in `.env.example`.
Policies (retry, breaker, timeouts) are values built from these settings, never constants in decorators.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nexus.budgets import parse_budgets
from nexus.findings_policy import load_policy
from nexus.redis_sentinel import DEFAULT_FAILOVER_WAIT_S, DEFAULT_MASTER, SentinelTarget, parse_sentinels
from nexus.systems import System
from nexus.workday_fields import ReportFields, parse_fields

#: The published limits (sources in :mod:`nexus.budgets`); Workday, AD and Helix publish none: unlimited.
DEFAULT_RATE_BUDGETS = "lansweeper=150/60s,entra=1750/10s,intune=2000/20s,fedex=1400/10s"
#: The shortest half-open trial lease (``BreakerPolicy.trial_ttl_s = max(reset timeout, this)``).
TRIAL_LEASE_MIN_S = 30.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    # USE_MOCK=true: every system Nexus has a credential for must be on a simulator URL; false: none may be (see
    # is_simulator_url and _check_use_mock). NEXUS_SIM_URL: the simulator `nexus sim` wrote the env file for.
    use_mock: bool = Field(True, alias="USE_MOCK")
    sim_url: str = Field("", alias="NEXUS_SIM_URL")
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    # Redis Sentinel (nexus.redis_sentinel): comma-separated host:port of the sentinels (empty: off). When set, every
    # Redis use asks them for the master REDIS_SENTINEL_MASTER; REDIS_URL then gives only the database number (and
    # may give user:password); its host and port are not dialled. REDIS_PASSWORD: the master's password (the same
    # as REDIS_URL's if both are set; compose builds REDIS_URL from it); REDIS_SENTINEL_PASSWORD: the sentinels' own.
    redis_sentinels: str = Field("", alias="REDIS_SENTINELS")
    redis_sentinel_master: str = Field(DEFAULT_MASTER, alias="REDIS_SENTINEL_MASTER")
    redis_sentinel_password: SecretStr = Field(SecretStr(""), alias="REDIS_SENTINEL_PASSWORD")
    redis_password: SecretStr = Field(SecretStr(""), alias="REDIS_PASSWORD")
    # With sentinels: how long a stores call (and a task's publish) keeps retrying while no master can be reached.
    redis_failover_wait_s: float = Field(DEFAULT_FAILOVER_WAIT_S, ge=0, le=600, alias="NEXUS_REDIS_FAILOVER_WAIT_S")

    workday_base_url: str = Field("https://wd2-impl-services1.workday.com", alias="WORKDAY_BASE_URL")
    workday_tenant: str = Field("acme", alias="WORKDAY_TENANT")
    workday_client_id: str = Field("", alias="WORKDAY_CLIENT_ID")
    workday_client_secret: SecretStr = Field(SecretStr(""), alias="WORKDAY_CLIENT_SECRET")
    workday_refresh_token: SecretStr = Field(SecretStr(""), alias="WORKDAY_REFRESH_TOKEN")
    workday_report_owner: str = Field("ISU_Nexus", alias="NEXUS_WORKDAY_REPORT_OWNER")
    workday_report_name: str = Field("Nexus_Workers", alias="NEXUS_WORKDAY_REPORT_NAME")
    # The report's field names (nexus.workday_fields): a JSON object or role=Field pairs over the defaults.
    workday_fields: str = Field("", alias="NEXUS_WORKDAY_FIELDS")
    # The unprompted report (every worker, one request) may take minutes on a large tenant: its own read timeout.
    workday_report_timeout_s: float = Field(300.0, gt=0, alias="NEXUS_WORKDAY_REPORT_TIMEOUT_S")

    azure_authority_url: str = Field("https://login.microsoftonline.com", alias="AZURE_AUTHORITY_URL")
    azure_tenant_id: str = Field("", alias="AZURE_TENANT_ID")
    azure_client_id: str = Field("", alias="AZURE_CLIENT_ID")
    azure_client_secret: SecretStr = Field(SecretStr(""), alias="AZURE_CLIENT_SECRET")
    graph_base_url: str = Field("https://graph.microsoft.com", alias="GRAPH_BASE_URL")
    # Read Entra users' signInActivity (dormant accounts; needs Entra ID P1/P2 and AuditLog.Read.All: clients.entra).
    entra_sign_in_activity: bool = Field(True, alias="ENTRA_SIGN_IN_ACTIVITY")

    ad_ldap_url: str = Field("ldap://127.0.0.1:389", alias="AD_LDAP_URL")
    ad_bind_dn: str = Field("", alias="AD_BIND_DN")
    ad_bind_password: SecretStr = Field(SecretStr(""), alias="AD_BIND_PASSWORD")
    ad_base_dn: str = Field("DC=corp,DC=example", alias="AD_BASE_DN")
    # TLS (clients.ad.connection): ldaps:// in AD_LDAP_URL, or StartTLS on ldap://; the certificate is verified
    # against AD_CA_FILE (PEM; empty: the system's CAs) and the host name, unless AD_TLS_VERIFY=false (logged loudly).
    ad_start_tls: bool = Field(False, alias="AD_START_TLS")
    ad_ca_file: str = Field("", alias="AD_CA_FILE")
    ad_tls_verify: bool = Field(True, alias="AD_TLS_VERIFY")
    # Accounts that are never people (clients.ad.exclusions): sAMAccountName patterns (fnmatch, case-insensitive,
    # comma separated) and OUs (DNs, semicolon separated) whose entries are skipped; the bind account always is.
    ad_exclude_accounts: str = Field(
        "krbtgt,Guest,Administrator,DefaultAccount,WDAGUtilityAccount,dns-*", alias="NEXUS_AD_EXCLUDE_ACCOUNTS"
    )
    ad_exclude_ous: str = Field("", alias="NEXUS_AD_EXCLUDE_OUS")

    lansweeper_graphql_url: str = Field("https://api.lansweeper.com/api/v2/graphql", alias="LANSWEEPER_GRAPHQL_URL")
    lansweeper_token: SecretStr = Field(SecretStr(""), alias="LANSWEEPER_TOKEN")
    lansweeper_site_id: str = Field("", alias="LANSWEEPER_SITE_ID")

    helix_base_url: str = Field("https://helix.example.com", alias="HELIX_BASE_URL")
    helix_username: str = Field("", alias="HELIX_USERNAME")
    helix_password: SecretStr = Field(SecretStr(""), alias="HELIX_PASSWORD")

    fedex_base_url: str = Field("https://apis.fedex.com", alias="FEDEX_BASE_URL")
    fedex_client_id: str = Field("", alias="FEDEX_CLIENT_ID")
    fedex_client_secret: SecretStr = Field(SecretStr(""), alias="FEDEX_CLIENT_SECRET")

    # Resilience policy (the seed's numbers are the defaults).
    retry_max_attempts: int = Field(3, ge=1, le=10, alias="NEXUS_RETRY_MAX_ATTEMPTS")
    retry_backoff_base_s: float = Field(2.0, ge=0, alias="NEXUS_RETRY_BACKOFF_BASE_S")
    retry_backoff_max_s: float = Field(60.0, ge=0, alias="NEXUS_RETRY_BACKOFF_MAX_S")
    retry_jitter: bool = Field(False, alias="NEXUS_RETRY_JITTER")
    retry_after_max_s: float = Field(120.0, ge=0, alias="NEXUS_RETRY_AFTER_MAX_S")
    # A fetch task waits at most this long in-process between a request's attempts; a longer wait (a 429's
    # Retry-After) becomes the task's countdown, so a worker slot never sleeps out a throttle.
    retry_inline_max_s: float = Field(10.0, ge=0, alias="NEXUS_RETRY_INLINE_MAX_S")
    breaker_fail_max: int = Field(5, ge=1, alias="NEXUS_BREAKER_FAIL_MAX")
    breaker_reset_timeout_s: float = Field(60.0, gt=0, alias="NEXUS_BREAKER_RESET_TIMEOUT_S")
    breaker_enabled: bool = Field(True, alias="NEXUS_BREAKER_ENABLED")
    breaker_redis_url: str = Field("", alias="NEXUS_BREAKER_REDIS_URL")
    http_timeout_s: float = Field(10.0, gt=0, alias="NEXUS_HTTP_TIMEOUT_S")
    http_connect_timeout_s: float = Field(5.0, gt=0, alias="NEXUS_HTTP_CONNECT_TIMEOUT_S")
    report_ttl_s: int = Field(30 * 86400, ge=60, alias="NEXUS_REPORT_TTL_S")
    # Redis broker: a message a worker took and did not acknowledge (it died, or it holds a countdown retry until
    # its ETA) is handed out again after this many seconds. Above the longest countdown (checked below) and the
    # longest task run, or a live worker's task runs twice; it is also how long a killed worker's tasks wait.
    visibility_timeout_s: int = Field(3600, ge=1, alias="NEXUS_VISIBILITY_TIMEOUT_S")
    # Redis broker: a worker's main process renews a lease on every message it holds; a message whose lease expired
    # (its worker died) is put back on its queue by any live worker (workers/message_leases.py).
    part_lease_s: float = Field(60.0, ge=3, alias="NEXUS_PART_LEASE_S")
    bulk_max_emails: int = Field(100_000, ge=1, alias="NEXUS_BULK_MAX_EMAILS")
    bulk_window: int = Field(8, ge=1, le=1000, alias="NEXUS_BULK_WINDOW")
    bulk_chunk_size: int = Field(25, ge=1, le=500, alias="NEXUS_BULK_CHUNK_SIZE")
    token_refresh_margin_s: float = Field(60.0, ge=0, alias="NEXUS_TOKEN_REFRESH_MARGIN_S")

    # Fleet audits: snapshots, the mass-drift guard, the last-known-good fallback (nexus.fleet).
    fleet_snapshot_ttl_s: int = Field(2 * 86400, ge=60, alias="NEXUS_FLEET_SNAPSHOT_TTL_S")
    fleet_page_concurrency: int = Field(8, ge=1, le=64, alias="NEXUS_FLEET_PAGE_CONCURRENCY")
    fleet_max_task_retries: int = Field(200, ge=1, alias="NEXUS_FLEET_MAX_TASK_RETRIES")
    fleet_guard_drop: float = Field(0.5, gt=0, lt=1, alias="NEXUS_FLEET_GUARD_DROP")
    fleet_guard_ttl_s: int = Field(90 * 86400, ge=60, alias="NEXUS_FLEET_GUARD_TTL_S")
    # The findings policy (nexus.findings_policy): kinds on/off, severities, thresholds, non-person accounts.
    policy_file: str = Field("", alias="NEXUS_POLICY_FILE")
    fleet_stale_fallback: bool = Field(False, alias="NEXUS_FLEET_STALE_FALLBACK")
    fleet_stale_max_age_s: int = Field(14 * 86400, ge=60, alias="NEXUS_FLEET_STALE_MAX_AGE_S")
    fleet_bulk_snapshot: str = Field("auto", pattern="^(auto|always|never)$", alias="NEXUS_FLEET_BULK_SNAPSHOT")

    # Request budgets per system (parsed by nexus.budgets, enforced by clients.ratelimit):
    # "<system>=<requests>/<window>", comma separated; "" = off.
    rate_budgets: str = Field(DEFAULT_RATE_BUDGETS, alias="NEXUS_RATE_BUDGETS")
    rate_max_wait_s: float = Field(30.0, ge=0, alias="NEXUS_RATE_MAX_WAIT_S")

    @model_validator(mode="after")
    def _check_visibility_timeout(self) -> Settings:
        longest = max(self.retry_backoff_max_s, self.retry_after_max_s)
        if self.visibility_timeout_s <= longest:
            raise ValueError(
                f"NEXUS_VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s}) must be above the longest retry countdown "
                f"({longest:g} s: NEXUS_RETRY_BACKOFF_MAX_S / NEXUS_RETRY_AFTER_MAX_S), or Redis would hand a "
                "message waiting for its countdown to a second worker")
        return self

    @model_validator(mode="after")
    def _check_trial_lease(self) -> Settings:
        if self.breaker_trial_lease_s < self.http_timeout_s:
            raise ValueError(
                f"the breaker's half-open trial lease ({self.breaker_trial_lease_s:g} s: the larger of "
                f"NEXUS_BREAKER_RESET_TIMEOUT_S and {TRIAL_LEASE_MIN_S:g} s) is shorter than NEXUS_HTTP_TIMEOUT_S "
                f"({self.http_timeout_s:g} s): a trial request could outlive its lease and a second trial start; "
                "raise NEXUS_BREAKER_RESET_TIMEOUT_S or lower NEXUS_HTTP_TIMEOUT_S")
        return self

    @property
    def breaker_trial_lease_s(self) -> float:
        """How long a half-open trial holds its slot without renewal (``BreakerPolicy.trial_ttl_s``)."""
        return max(self.breaker_reset_timeout_s, TRIAL_LEASE_MIN_S)

    def longest_request_s(self, system: str) -> float:
        """The longest one request to ``system`` (a ``System`` value) may take: the HTTP timeout, or for Workday the
        whole report's read timeout when that is longer (how long waiting for a half-open trial is worth it)."""
        if system == "workday":
            return max(self.http_timeout_s, self.workday_report_timeout_s)
        return self.http_timeout_s

    @field_validator("rate_budgets")
    @classmethod
    def _check_budgets(cls, value: str) -> str:
        parse_budgets(value)  # raises ValueError with a readable message
        return value

    @field_validator("policy_file")
    @classmethod
    def _check_policy(cls, value: str) -> str:
        """A policy that cannot be used stops a worker or a submit at once (exit 2), not an audit half-way."""
        load_policy(value)  # PolicyError is a ValueError naming the file and line
        return value.strip()

    @field_validator("workday_fields")
    @classmethod
    def _check_workday_fields(cls, value: str) -> str:
        parse_fields(value)  # raises ValueError with a readable message
        return value

    @model_validator(mode="after")
    def _one_workday_mapping(self) -> Settings:
        if self.workday_fields.strip() and load_policy(self.policy_file).workday.fields:
            raise ValueError("the Workday report's field names are set twice: NEXUS_WORKDAY_FIELDS and "
                             f"[workday.fields] in {self.policy_file}; keep one")
        return self

    def workday_report_fields(self) -> ReportFields:
        """The report's field names: NEXUS_WORKDAY_FIELDS, else the findings policy's [workday.fields], else the
        defaults (nexus.workday_fields)."""
        if self.workday_fields.strip():
            return parse_fields(self.workday_fields)
        return load_policy(self.policy_file).workday.mapping()

    # Weekly fleet audit (celery beat + celery-redbeat; see workers/beat.py). Cron fields are in UTC.
    fleet_audit_enabled: bool = Field(True, alias="NEXUS_FLEET_AUDIT_ENABLED")
    fleet_audit_cron: str = Field("0 6 * * 1", alias="NEXUS_FLEET_AUDIT_CRON")
    fleet_audit_every_s: float = Field(0.0, ge=0, alias="NEXUS_FLEET_AUDIT_EVERY_S")  # > 0 replaces the cron
    beat_redis_url: str = Field("", alias="NEXUS_BEAT_REDIS_URL")  # empty: REDIS_URL
    beat_key_prefix: str = Field("nexus:redbeat:", alias="NEXUS_BEAT_KEY_PREFIX")
    beat_max_interval_s: float = Field(30.0, gt=0, alias="NEXUS_BEAT_MAX_INTERVAL_S")
    beat_lock_timeout_s: int = Field(150, ge=1, alias="NEXUS_BEAT_LOCK_TIMEOUT_S")

    # Flower (`nexus flower`, `make flower`): basic auth is always on; an empty password is generated at start.
    flower_user: str = Field("nexus", alias="NEXUS_FLOWER_USER")
    flower_password: SecretStr = Field(SecretStr(""), alias="NEXUS_FLOWER_PASSWORD")
    flower_address: str = Field("127.0.0.1", alias="NEXUS_FLOWER_ADDRESS")
    flower_port: int = Field(5555, ge=1, le=65535, alias="NEXUS_FLOWER_PORT")

    # Prometheus metrics served by each worker's main process (0 disables; one port per worker on a host).
    metrics_port: int = Field(9808, ge=0, le=65535, alias="NEXUS_METRICS_PORT")
    metrics_host: str = Field("127.0.0.1", alias="NEXUS_METRICS_HOST")
    # prometheus-client's own variable: this worker's multiprocess directory (a temp dir per worker when empty).
    prometheus_multiproc_dir: str = Field("", alias="PROMETHEUS_MULTIPROC_DIR")

    # MCP server over HTTP (`nexus mcp --transport http`): a static bearer token and/or JWTs (see nexus/mcp/auth.py).
    mcp_token: SecretStr = Field(SecretStr(""), alias="NEXUS_MCP_TOKEN")
    mcp_jwt_jwks_uri: str = Field("", alias="NEXUS_MCP_JWT_JWKS_URI")
    mcp_jwt_public_key: str = Field("", alias="NEXUS_MCP_JWT_PUBLIC_KEY")
    mcp_jwt_issuer: str = Field("", alias="NEXUS_MCP_JWT_ISSUER")
    mcp_jwt_audience: str = Field("", alias="NEXUS_MCP_JWT_AUDIENCE")
    mcp_jwt_algorithm: str = Field("RS256", alias="NEXUS_MCP_JWT_ALGORITHM")

    # Helix remediation (opt-in, nexus/remediation.py): each critical discrepancy of a finished audit opens one
    # incident, idempotently (a correlation key in "Vendor Ticket Number"). First/last name: the People record the
    # site created for Nexus as the incidents' customer. At most max_incidents per audit (an incident storm guard).
    helix_remediation: bool = Field(False, alias="NEXUS_HELIX_REMEDIATION")
    helix_remediation_first_name: str = Field("Nexus", alias="NEXUS_HELIX_REMEDIATION_FIRST_NAME")
    helix_remediation_last_name: str = Field("Audit", alias="NEXUS_HELIX_REMEDIATION_LAST_NAME")
    helix_remediation_max_incidents: int = Field(50, ge=0, le=10_000, alias="NEXUS_HELIX_REMEDIATION_MAX_INCIDENTS")

    # Logs on stderr (nexus.logs): the level (`nexus --log-level` overrides it) and text or JSON lines.
    log_level: str = Field("INFO", alias="NEXUS_LOG_LEVEL")
    log_format: str = Field("text", alias="NEXUS_LOG_FORMAT")

    @model_validator(mode="after")
    def _check_use_mock(self) -> Settings:
        """USE_MOCK=true refuses every non-simulator URL, false every simulator URL, for the systems in use (with
        at least one credential set); one line naming every offending setting."""
        sim_hosts = simulator_hosts(self.sim_url)
        wrong: list[str] = []
        for connection in CONNECTIONS.values():
            if not any(_is_set(getattr(self, _FIELDS[name])) for name in connection.required):
                continue  # not in use: never dialled (health and submit say "not configured")
            for name in connection.urls:
                url = getattr(self, _FIELDS[name])
                entry = f"{name}={mask_url_password(url)}"
                if is_simulator_url(url, sim_hosts) is not self.use_mock and entry not in wrong:
                    wrong.append(entry)
        if wrong and self.use_mock:
            raise ValueError(
                f"USE_MOCK=true (the default) refuses anything but simulator URLs (a loopback host, `mock://` or "
                f"the host of NEXUS_SIM_URL), but {', '.join(wrong)}: point it at `nexus sim` (its env file), or "
                "set USE_MOCK=false to use the real systems")
        if wrong:
            raise ValueError(
                f"USE_MOCK=false refuses simulator URLs (a loopback host, `mock://` or the host of NEXUS_SIM_URL), "
                f"but {', '.join(wrong)}: give the real system's URL, or set USE_MOCK=true to use the simulators")
        return self

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"NEXUS_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
        return level

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        fmt = value.strip().lower()
        if fmt not in ("text", "json"):
            raise ValueError(f"NEXUS_LOG_FORMAT must be text or json, not {value!r}")
        return fmt

    @property
    def effective_breaker_redis_url(self) -> str:
        return self.breaker_redis_url or self.redis_url

    @field_validator("redis_sentinels")
    @classmethod
    def _check_sentinels(cls, value: str) -> str:
        parse_sentinels(value)  # ValueError naming REDIS_SENTINELS and the bad item
        return value.strip()

    @field_validator("redis_sentinel_master")
    @classmethod
    def _check_sentinel_master(cls, value: str) -> str:
        name = value.strip()
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"REDIS_SENTINEL_MASTER must be the master's name as the sentinels monitor it, not "
                             f"{value!r}")
        return name

    @model_validator(mode="after")
    def _check_sentinel_urls(self) -> Settings:
        """With sentinels, every Redis use goes through them: a second Redis address would be a Redis that does not
        fail over, so one is refused (``memory://``, the embedded demo's in-process store, is no address)."""
        if not self.redis_sentinels:
            return self
        parts = urlsplit(self.redis_url)
        if parts.scheme != "redis":
            tls = ": TLS to a Sentinel-managed master is not supported" if parts.scheme == "rediss" else ""
            raise ValueError(f"REDIS_URL must be redis://[user:password@]host/<db> with REDIS_SENTINELS (it gives the "
                             "database and password; the sentinels give the master), not "
                             f"{mask_url_password(self.redis_url)}{tls}")
        path = parts.path.strip("/") or "0"
        if not path.isdigit():
            raise ValueError(f"REDIS_URL: the database must be a number, not {path!r}")
        url_password = unquote(parts.password) if parts.password else ""
        password = self.redis_password.get_secret_value()
        if url_password and password and url_password != password:
            raise ValueError("REDIS_PASSWORD and the password in REDIS_URL differ; give the master's password once")
        for name, url in (("NEXUS_BREAKER_REDIS_URL", self.breaker_redis_url),
                          ("NEXUS_BEAT_REDIS_URL", self.beat_redis_url)):
            if url.strip() and not url.startswith("memory://"):
                raise ValueError(f"{name} must be empty with REDIS_SENTINELS: the breakers, budgets and beat use the "
                                 "Sentinel-managed master too (a separate Redis would not fail over)")
        return self

    def redis_sentinel(self) -> SentinelTarget | None:
        """The Sentinel-managed master (None: ``REDIS_SENTINELS`` is empty, Redis is ``REDIS_URL`` itself)."""
        if not self.redis_sentinels:
            return None
        parts = urlsplit(self.redis_url)
        return SentinelTarget(
            sentinels=parse_sentinels(self.redis_sentinels),
            master=self.redis_sentinel_master,
            db=int(parts.path.strip("/") or 0),
            username=unquote(parts.username) if parts.username else None,
            password=self.redis_password.get_secret_value() or (unquote(parts.password) if parts.password else None),
            sentinel_password=self.redis_sentinel_password.get_secret_value() or None,
            failover_wait_s=self.redis_failover_wait_s,
        )

    @property
    def redis_target(self) -> str | SentinelTarget:
        """Where the stores' Redis is: ``REDIS_URL``, or the Sentinel-managed master (:mod:`nexus.redis_conn`)."""
        return self.redis_sentinel() or self.redis_url

    @property
    def breaker_redis_target(self) -> str | SentinelTarget:
        """Where the breakers and rate budgets live: ``NEXUS_BREAKER_REDIS_URL`` (only ``memory://`` with
        sentinels), else the stores' Redis."""
        return self.breaker_redis_url or self.redis_target

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """repr() and str() mask a password inside a URL (``REDIS_URL`` may carry one) as pydantic masks SecretStr."""
        for name, value in super().__repr_args__():
            yield name, mask_url_password(value) if isinstance(value, str) else value


def mask_url_password(url: str) -> str:
    """``rediss://user:secret@host:6380/0`` -> ``rediss://user:***@host:6380/0``, for display; other text as is."""
    scheme, sep, rest = url.partition("://")
    head, question, query = rest.partition("?")
    userinfo, at, location = head.rpartition("@")  # the last @: an unescaped one in a password stays hidden
    user, colon, password = userinfo.partition(":")
    if not sep or not at or not colon or not password:
        return url
    return f"{scheme}://{user}:***@{location}{question}{query}"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# -- which systems are configured, and where they are ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Connection:
    """One system's settings (environment names): the URLs Nexus dials, and the credentials without which it is not
    configured (and never dialled by `nexus health` or `nexus audit submit`)."""

    urls: tuple[str, ...]
    required: tuple[str, ...]


_AZURE = Connection(("AZURE_AUTHORITY_URL", "GRAPH_BASE_URL"), ("AZURE_TENANT_ID", "AZURE_CLIENT_ID",
                                                                "AZURE_CLIENT_SECRET"))
CONNECTIONS: Mapping[System, Connection] = {
    System.WORKDAY: Connection(("WORKDAY_BASE_URL",), ("WORKDAY_CLIENT_ID", "WORKDAY_CLIENT_SECRET",
                                                       "WORKDAY_REFRESH_TOKEN")),
    System.AD: Connection(("AD_LDAP_URL",), ("AD_BIND_DN", "AD_BIND_PASSWORD")),
    System.ENTRA: _AZURE,
    System.INTUNE: _AZURE,
    System.LANSWEEPER: Connection(("LANSWEEPER_GRAPHQL_URL",), ("LANSWEEPER_TOKEN", "LANSWEEPER_SITE_ID")),
    System.HELIX: Connection(("HELIX_BASE_URL",), ("HELIX_USERNAME", "HELIX_PASSWORD")),
    System.FEDEX: Connection(("FEDEX_BASE_URL",), ("FEDEX_CLIENT_ID", "FEDEX_CLIENT_SECRET")),
}

#: Environment name -> field name.
_FIELDS: dict[str, str] = {f.alias: name for name, f in Settings.model_fields.items() if f.alias}


def _is_set(value: object) -> bool:
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return bool(text.strip())


def simulator_hosts(sim_url: str) -> frozenset[str]:
    """The host of ``NEXUS_SIM_URL`` (compose's sim profile advertises the simulators as ``sim``), if any."""
    try:
        host = urlsplit(sim_url).hostname if sim_url else None
    except ValueError:
        host = None
    return frozenset({host.lower()}) if host else frozenset()


def is_simulator_url(url: str, sim_hosts: Collection[str] = ()) -> bool:
    """What ``USE_MOCK`` means by a simulator URL: a ``mock://`` URL (the in-process directory), a loopback host
    (``localhost``, ``*.localhost``, 127.0.0.0/8, ``::1``: `nexus sim` serves loopback only), or one of
    ``sim_hosts`` (the host of ``NEXUS_SIM_URL``). Everything else is a real system."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme == "mock":
        return True
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost") or host in sim_hosts:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def missing_settings(settings: Settings) -> dict[System, list[str]]:
    """{system: the credentials it lacks} for every system that is not configured (empty: all are)."""
    out: dict[System, list[str]] = {}
    for system, connection in CONNECTIONS.items():
        missing = [name for name in connection.required if not _is_set(getattr(settings, _FIELDS[name]))]
        if missing:
            out[system] = missing
    return out


def not_configured_message(missing: Mapping[System, list[str]]) -> str:
    """One line: ``not configured: set A, B, ... or run `nexus sim` and use its env file`` (each name once)."""
    names = list(dict.fromkeys(name for names in missing.values() for name in names))
    return f"not configured: set {', '.join(names)} or run `nexus sim` and use its env file (--env-file)"


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return Settings()


class _SettingsProvider:
    """``get_settings()``: the installed runtime's settings (:func:`nexus.runtime.install`) while one is installed,
    else the settings of the environment and ``.env``, read once (``get_settings.cache_clear()`` re-reads them).

    Code below the runtime that still needs "the settings" without being handed them (a default argument, the log
    formatter) thus sees the same settings as the runtime, and an entry point that builds its own settings (the
    demo, a test's rig) never has to edit the environment."""

    def __init__(self) -> None:
        self._installed: Settings | None = None

    def __call__(self) -> Settings:
        installed = self._installed
        return installed if installed is not None else _from_environment()

    def cache_clear(self) -> None:
        _from_environment.cache_clear()

    def install(self, settings: Settings | None) -> None:
        self._installed = settings


get_settings = _SettingsProvider()
