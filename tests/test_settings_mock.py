"""``USE_MOCK``: the switch between the simulators and the real systems, checked by the settings.

With ``USE_MOCK=true`` every system Nexus has credentials for must be on a simulator URL (a loopback host, the host
of ``NEXUS_SIM_URL``, or ``mock://``); with ``USE_MOCK=false`` none may be. A system without credentials is not
configured: nothing is checked for it, and nothing dials it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nexus.settings import Settings, missing_settings, not_configured_message
from nexus.systems import System

WORKDAY_CREDS = {"WORKDAY_CLIENT_ID": "id", "WORKDAY_CLIENT_SECRET": "secret-1", "WORKDAY_REFRESH_TOKEN": "ref-1"}
AZURE_CREDS = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "secret-2"}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def one_message(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return str(errors[0]["msg"])


def test_use_mock_true_refuses_a_production_url_for_a_configured_system() -> None:
    with pytest.raises(ValidationError) as exc:
        settings(USE_MOCK="true", **WORKDAY_CREDS)  # WORKDAY_BASE_URL keeps its production default
    message = one_message(exc)
    assert "USE_MOCK=true" in message
    assert "WORKDAY_BASE_URL" in message and "wd2-impl-services1.workday.com" in message
    assert "USE_MOCK=false" in message  # says how to mean the real systems


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]", "sim.localhost"])
def test_use_mock_true_accepts_loopback_simulator_urls(host: str) -> None:
    s = settings(USE_MOCK="true", WORKDAY_BASE_URL=f"http://{host}:8400/workday", **WORKDAY_CREDS)
    assert s.use_mock is True


def test_use_mock_true_accepts_the_host_the_simulator_env_file_names() -> None:
    """compose's sim profile: the shared env file points at host `sim` and names it in NEXUS_SIM_URL."""
    s = settings(USE_MOCK="true", NEXUS_SIM_URL="http://sim:8400", WORKDAY_BASE_URL="http://sim:8400/workday",
                 AD_LDAP_URL="ldap://sim:3890", AD_BIND_DN="cn=x", AD_BIND_PASSWORD="pw-123456", **WORKDAY_CREDS)
    assert s.workday_base_url == "http://sim:8400/workday"
    with pytest.raises(ValidationError, match="WORKDAY_BASE_URL"):
        settings(USE_MOCK="true", NEXUS_SIM_URL="http://sim:8400", WORKDAY_BASE_URL="http://other:8400/workday",
                 **WORKDAY_CREDS)


def test_use_mock_true_accepts_the_in_process_directory() -> None:
    s = settings(USE_MOCK="true", AD_LDAP_URL="mock://ad-1234", AD_BIND_DN="cn=x", AD_BIND_PASSWORD="pw-123456")
    assert s.ad_ldap_url.startswith("mock://")


def test_use_mock_true_names_every_offending_url_in_one_line() -> None:
    with pytest.raises(ValidationError) as exc:
        settings(USE_MOCK="true", **AZURE_CREDS)
    message = one_message(exc)
    assert "AZURE_AUTHORITY_URL" in message and "GRAPH_BASE_URL" in message
    assert "\n" not in message


@pytest.mark.parametrize("url_setting,url", [
    ("WORKDAY_BASE_URL", "http://127.0.0.1:8400/workday"),
    ("WORKDAY_BASE_URL", "http://localhost:8400/workday"),
    ("WORKDAY_BASE_URL", "http://[::1]:8400/workday"),
])
def test_use_mock_false_refuses_simulator_urls(url_setting: str, url: str) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(USE_MOCK="false", **{url_setting: url}, **WORKDAY_CREDS)
    message = one_message(exc)
    assert "USE_MOCK=false" in message and url_setting in message


def test_use_mock_false_refuses_the_in_process_directory_and_the_sim_host() -> None:
    with pytest.raises(ValidationError, match="AD_LDAP_URL"):
        settings(USE_MOCK="false", AD_LDAP_URL="mock://ad-1", AD_BIND_DN="cn=x", AD_BIND_PASSWORD="pw-123456")
    with pytest.raises(ValidationError, match="HELIX_BASE_URL"):
        settings(USE_MOCK="false", NEXUS_SIM_URL="http://sim:8400", HELIX_BASE_URL="https://sim:8400/helix",
                 HELIX_USERNAME="u", HELIX_PASSWORD="pw-123456")


def test_use_mock_false_accepts_the_real_systems() -> None:
    s = settings(USE_MOCK="false", **WORKDAY_CREDS, **AZURE_CREDS, AD_LDAP_URL="ldaps://dc1.corp.example:636",
                 AD_BIND_DN="cn=x", AD_BIND_PASSWORD="pw-123456")
    assert s.use_mock is False


def test_unconfigured_systems_are_not_checked_and_are_listed_with_what_is_missing() -> None:
    s = settings(USE_MOCK="true")  # no credentials at all: production defaults, but nothing will dial them
    missing = missing_settings(s)
    assert set(missing) == set(System)
    assert missing[System.WORKDAY] == ["WORKDAY_CLIENT_ID", "WORKDAY_CLIENT_SECRET", "WORKDAY_REFRESH_TOKEN"]
    assert missing[System.AD] == ["AD_BIND_DN", "AD_BIND_PASSWORD"]
    assert missing[System.ENTRA] == missing[System.INTUNE] == ["AZURE_TENANT_ID", "AZURE_CLIENT_ID",
                                                                "AZURE_CLIENT_SECRET"]
    message = not_configured_message(missing)
    assert message.startswith("not configured: set ")
    assert "WORKDAY_CLIENT_ID" in message and "LANSWEEPER_TOKEN" in message and "FEDEX_CLIENT_SECRET" in message
    assert "nexus sim" in message


def test_a_partly_configured_system_lists_only_what_is_missing() -> None:
    s = settings(USE_MOCK="true", WORKDAY_BASE_URL="http://127.0.0.1:1/workday", WORKDAY_CLIENT_ID="id")
    assert missing_settings(s)[System.WORKDAY] == ["WORKDAY_CLIENT_SECRET", "WORKDAY_REFRESH_TOKEN"]
    full = settings(USE_MOCK="true", WORKDAY_BASE_URL="http://127.0.0.1:1/workday", **WORKDAY_CREDS)
    assert System.WORKDAY not in missing_settings(full)


def test_the_simulator_env_file_is_valid_settings() -> None:
    """What `nexus sim` writes passes its own check (USE_MOCK=true, every URL on loopback)."""
    from nexus.sim.base import SimCredentials
    from nexus.sim.orggen import generate_org
    from nexus.sim.stack import SimulatorStack

    stack = SimulatorStack(people=10, seed=3, org=generate_org(10, 3), creds=SimCredentials.random(3))
    stack._http = type("FakeServer", (), {"url": "http://127.0.0.1:8400"})()  # env() only needs the URL
    stack.ldap_url = "ldap://127.0.0.1:3890"
    s = settings(**stack.env())
    assert s.use_mock is True and missing_settings(s) == {}


# -- the CLI: one line, exit 2 --------------------------------------------------------------------------------------
def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """This process's environment without any Nexus or vendor setting, plus ``values``."""
    prefixes = ("NEXUS_", "WORKDAY_", "AZURE_", "GRAPH_", "AD_", "LANSWEEPER_", "HELIX_", "FEDEX_", "REDIS_",
                "USE_MOCK")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # never a shared Redis
    env.update(values)
    return env


def run_nexus(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nexus.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", [["health"], ["audit", "submit", "--email", "a.b@example.com"]],
                         ids=["health", "submit"])
def test_cli_refuses_a_production_url_under_use_mock_in_one_line(tmp_path: Path, command: list[str]) -> None:
    proc = run_nexus(tmp_path, clean_env(tmp_path, USE_MOCK="true", **WORKDAY_CREDS), *command)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("nexus: error: ") and "USE_MOCK=true" in lines[0] and "WORKDAY_BASE_URL" in lines[0]
    assert "secret-1" not in proc.stderr


def test_an_audit_with_nothing_configured_is_refused_by_the_facade_itself() -> None:
    """CLI, MCP and the weekly task share the facade: none of them stores or enqueues an audit that would contact
    nothing (the check is not a CLI nicety)."""
    import fakeredis

    from nexus.audits.spec import AuditRequest
    from nexus.audits.store import AuditStore
    from nexus.errors import InvalidInput, NotConfigured
    from nexus.facade import Nexus

    r = fakeredis.FakeRedis()
    nx = Nexus(store=AuditStore(r), settings=Settings())
    with pytest.raises(NotConfigured, match=r"^not configured: set .*WORKDAY_CLIENT_ID.* or run `nexus sim`") as caught:
        nx.submit(AuditRequest.user("ada@example.com"))
    assert isinstance(caught.value, InvalidInput)
    assert r.keys("*") == []
