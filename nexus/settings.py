"""Configuration from the environment and `.env` (pydantic-settings).

The connection variable names are a public contract (the env file written by `nexus sim` sets them); everything
Nexus adds is prefixed `NEXUS_`. Every variable and its default is listed in `.env.example`.
Policies (retry, breaker, timeouts) are values built from these settings, never constants in decorators.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    use_mock: bool = Field(True, alias="USE_MOCK")
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")

    workday_base_url: str = Field("https://wd2-impl-services1.workday.com", alias="WORKDAY_BASE_URL")
    workday_tenant: str = Field("acme", alias="WORKDAY_TENANT")
    workday_client_id: str = Field("", alias="WORKDAY_CLIENT_ID")
    workday_client_secret: SecretStr = Field(SecretStr(""), alias="WORKDAY_CLIENT_SECRET")
    workday_refresh_token: SecretStr = Field(SecretStr(""), alias="WORKDAY_REFRESH_TOKEN")
    workday_report_owner: str = Field("ISU_Nexus", alias="NEXUS_WORKDAY_REPORT_OWNER")
    workday_report_name: str = Field("Nexus_Workers", alias="NEXUS_WORKDAY_REPORT_NAME")

    azure_authority_url: str = Field("https://login.microsoftonline.com", alias="AZURE_AUTHORITY_URL")
    azure_tenant_id: str = Field("", alias="AZURE_TENANT_ID")
    azure_client_id: str = Field("", alias="AZURE_CLIENT_ID")
    azure_client_secret: SecretStr = Field(SecretStr(""), alias="AZURE_CLIENT_SECRET")
    graph_base_url: str = Field("https://graph.microsoft.com", alias="GRAPH_BASE_URL")

    ad_ldap_url: str = Field("ldap://127.0.0.1:389", alias="AD_LDAP_URL")
    ad_bind_dn: str = Field("", alias="AD_BIND_DN")
    ad_bind_password: SecretStr = Field(SecretStr(""), alias="AD_BIND_PASSWORD")
    ad_base_dn: str = Field("DC=corp,DC=example", alias="AD_BASE_DN")

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
    breaker_fail_max: int = Field(5, ge=1, alias="NEXUS_BREAKER_FAIL_MAX")
    breaker_reset_timeout_s: float = Field(60.0, gt=0, alias="NEXUS_BREAKER_RESET_TIMEOUT_S")
    breaker_enabled: bool = Field(True, alias="NEXUS_BREAKER_ENABLED")
    breaker_redis_url: str = Field("", alias="NEXUS_BREAKER_REDIS_URL")
    http_timeout_s: float = Field(10.0, gt=0, alias="NEXUS_HTTP_TIMEOUT_S")
    http_connect_timeout_s: float = Field(5.0, gt=0, alias="NEXUS_HTTP_CONNECT_TIMEOUT_S")
    report_ttl_s: int = Field(30 * 86400, ge=60, alias="NEXUS_REPORT_TTL_S")
    bulk_max_emails: int = Field(100_000, ge=1, alias="NEXUS_BULK_MAX_EMAILS")
    bulk_window: int = Field(8, ge=1, le=1000, alias="NEXUS_BULK_WINDOW")
    bulk_chunk_size: int = Field(25, ge=1, le=500, alias="NEXUS_BULK_CHUNK_SIZE")
    token_refresh_margin_s: float = Field(60.0, ge=0, alias="NEXUS_TOKEN_REFRESH_MARGIN_S")

    @property
    def effective_breaker_redis_url(self) -> str:
        return self.breaker_redis_url or self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing the environment)."""
    return Settings()
