"""The simulators' credentials are stable for a given ``--seed``: a restarted `nexus sim` accepts what running
workers already hold (their cached tokens are refused once, and re-authentication with the same credentials works).
Without slapd, `nexus sim` says in one stderr line that workers cannot reach its in-process directory."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nexus.settings import Settings
from nexus.sim.base import SimCredentials
from nexus.sim.stack import SimulatorStack
from nexus.testing.redis_server import free_port

SECRET_FIELDS = ("workday_client_secret", "workday_refresh_token", "azure_client_secret", "lansweeper_token",
                 "helix_password", "fedex_client_secret", "ad_bind_password")


def test_credentials_derive_from_the_seed() -> None:
    a, b, other = SimCredentials.for_seed(7), SimCredentials.for_seed(7), SimCredentials.for_seed(8)
    assert a == b
    constants = SimCredentials()
    for name in SECRET_FIELDS:
        value = getattr(a, name)
        assert value != getattr(constants, name), name  # never the guessable placeholders
        assert value != getattr(other, name), name
        assert len(value) >= 24, (name, value)
    assert len({getattr(a, n) for n in SECRET_FIELDS}) == len(SECRET_FIELDS)  # one per credential


def test_a_stack_uses_its_seeds_credentials_unless_given_others() -> None:
    assert SimulatorStack(seed=7).resolved_credentials() == SimCredentials.for_seed(7)
    given = dataclasses.replace(SimCredentials(), helix_password="given-password-1234")
    assert SimulatorStack(seed=7, creds=given).resolved_credentials() is given


@pytest.mark.integration
def test_a_restarted_simulator_accepts_the_running_clients() -> None:
    """The same client object (as a worker holds it) works across a restart with the same seed and port."""
    from nexus.registry import SPECS
    from nexus.systems import System

    port = free_port()
    with SimulatorStack(people=10, seed=9, port=port, ldap_mode="mock") as first:
        env = {k: v for k, v in first.env().items() if not k.startswith("AD_")}
        settings = Settings(_env_file=None, **env)  # type: ignore[arg-type]
        clients = {s: SPECS[s].build(settings) for s in (System.WORKDAY, System.ENTRA, System.LANSWEEPER,
                                                          System.HELIX, System.FEDEX)}
        for client in clients.values():
            client.health()  # tokens issued by the first simulator are now cached in the clients
    with SimulatorStack(people=10, seed=9, port=port, ldap_mode="mock") as second:
        assert {k: v for k, v in second.env().items() if not k.startswith("AD_")} == env
        for system, client in clients.items():
            try:
                client.health()
            except Exception as exc:  # the assertion names the failure
                pytest.fail(f"{system.display} after a restart: {type(exc).__name__}: {exc}")
            finally:
                client.close()


@pytest.mark.integration
def test_sim_without_slapd_warns_in_one_line(tmp_path: Path) -> None:
    env_file = tmp_path / "sim.env"
    code = ("import sys; import nexus.sim.ldap_server as s; s.is_available = lambda: False; "
            "from nexus.cli.app import main; sys.argv[0] = 'nexus'; main()")
    env = {k: v for k, v in os.environ.items() if k != "NEXUS_ENV_FILE"}
    proc = subprocess.Popen([sys.executable, "-c", code, "sim", "--port", "0", "--people", "10", "--env-file",
                             str(env_file)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if "warning" in line.lower()]
    assert len(lines) == 1, stderr
    warning = lines[0]
    assert warning.startswith("nexus sim: warning: "), warning
    assert "workers" in warning and "cannot reach" in warning  # the consequence
    assert "apt-get install slapd" in warning  # the remedy
