"""docker-compose.yml, the Dockerfile and the sim gateway, checked without a Docker engine.

- The compose file is valid YAML with the expected services; every command of a service built from our image is a
  real ``nexus`` command line (parsed by the typer app itself: unknown commands, options or bad values fail); the
  workers consume every queue; every variable it uses is listed in ``.env.example``.
- The file is valid against the Compose Specification's own JSON schema (``tests/data/compose-spec.json``, taken
  unchanged from compose-spec/compose-spec ``schema/compose-spec.json`` at 170098b: the schema Compose
  implementations validate with), always. If a Docker Compose v2 client is installed (``docker compose`` or a v2
  ``docker-compose``), ``config -q`` validates it too (the client needs no engine for that); Debian 12 packages
  none, so CI validates with the schema; an environment that must have the client says so with
  ``NEXUS_REQUIRE_COMPOSE=1``, and there the missing client is a failure.
- The Dockerfile builds from python:3.11-slim, installs the project with ``pip install .``, runs as a non-root user
  and copies only files that exist; .dockerignore keeps secrets and local state out.
- docker/sim_gateway.py (the ``sim`` service's entry point) runs for real on loopback: ``nexus sim`` behind it,
  its relays on 127.0.0.2, and ``nexus --env-file <shared copy> health`` reaching every simulator through them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
import yaml

from nexus.cli import app as nexus_app
from nexus.testing.redis_server import free_port
from workers.routing import ALL_QUEUES, SYSTEM_QUEUES, default_layout

try:  # typer vendors its own click (typer._click) in recent versions; older ones use click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
GATEWAY = ROOT / "docker" / "sim_gateway.py"
WORKER_SERVICES = {f"worker-{group.name}" for group in default_layout()}
EXPECTED = {"redis", *WORKER_SERVICES, "beat", "flower", "mcp", "sim"}
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    return dict(_compose()["services"])


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$`` (enough for this file)."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, op, arg = m.group(1), m.group(2), m.group(3) or ""
            current = env.get(name)
            if op in (":-", "-") and (current is None or (op == ":-" and current == "")):
                return arg
            return current or ""
        return VAR.sub(sub, value).replace("$$", "$")
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"')
    return out


def _nexus_services() -> dict[str, dict[str, Any]]:
    """Services that run our image (their command is a `nexus` command line)."""
    return {name: s for name, s in _services().items() if "build" in s}


# -- the compose file ---------------------------------------------------------------------------------------------
def test_compose_has_the_expected_services_and_profiles() -> None:
    services = _services()
    assert set(services) == EXPECTED
    assert services["sim"]["profiles"] == ["sim"]
    assert all("profiles" not in s for name, s in services.items() if name != "sim")
    redis = services["redis"]
    assert redis["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "ports" not in redis  # Redis stays on the compose network
    for name, service in _nexus_services().items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"
    assert _compose()["volumes"].keys() >= {"redis-data", "shared"}


def _check_cli(argv: list[str]) -> Any:
    """Parse argv with the real `nexus` click command (no callback runs): raises on anything `nexus` would reject."""
    root: Any = typer.main.get_command(nexus_app)
    ctx = root.make_context("nexus", list(argv))
    protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])  # click 9 renamed it
    rest = [*protected, *ctx.args]
    assert rest, f"no subcommand in {argv}"
    sub = root.get_command(ctx, rest[0])
    assert sub is not None, f"`nexus {rest[0]}` does not exist"
    return sub.make_context(rest[0], rest[1:], parent=ctx)


def test_every_service_command_is_a_real_nexus_command_line() -> None:
    env = _env_example()
    checked = []
    for name, service in _nexus_services().items():
        argv = _interpolate(service["command"], env)
        assert argv[0] == "nexus", f"{name}: {argv}"
        try:
            ctx = _check_cli(argv[1:])
        except ClickException as exc:
            pytest.fail(f"{name}: `{' '.join(argv)}` is rejected by nexus: {exc.format_message()}")
        checked.append((name, ctx.info_name))
    assert dict(checked) == {**dict.fromkeys(WORKER_SERVICES, "worker"),
                             "beat": "beat", "flower": "flower", "mcp": "mcp", "sim": "sim"}


def test_cli_check_rejects_what_nexus_rejects() -> None:
    for argv in (["nope"], ["worker", "--no-such-option"], ["worker", "--concurrency", "0"], ["sim", "--port", "x"]):
        with pytest.raises((ClickException, AssertionError)):
            _check_cli(argv)


def test_workers_consume_every_queue_and_nothing_else() -> None:
    env = _env_example()
    consumed: list[str] = []
    for name, service in _nexus_services().items():
        argv = _interpolate(service["command"], env)
        if argv[1] != "worker":
            continue
        queues = argv[argv.index("--queues") + 1].split(",")
        assert set(queues) <= set(ALL_QUEUES), f"{name}: unknown queue in {queues}"
        consumed += queues
    assert sorted(consumed) == sorted(ALL_QUEUES), "each queue must be consumed by exactly one worker service"


def test_each_system_queue_has_a_worker_service_of_its_own() -> None:
    """A slow system fills the pool of every worker on its queue: no other queue may share those workers (the
    layout of `nexus worker`, workers/routing.py default_layout)."""
    env = _env_example()
    by_service = {}
    for name, service in _nexus_services().items():
        argv = _interpolate(service["command"], env)
        if argv[1] == "worker":
            by_service[name] = tuple(argv[argv.index("--queues") + 1].split(","))
    assert by_service == {f"worker-{group.name}": group.queues for group in default_layout()}
    for queue in SYSTEM_QUEUES:
        assert by_service[f"worker-{queue}"] == (queue,)


def test_mcp_is_http_with_a_token_and_flower_has_basic_auth_settings() -> None:
    services = _nexus_services()
    mcp = services["mcp"]
    assert mcp["command"][mcp["command"].index("--transport") + 1] == "http"
    assert "NEXUS_MCP_TOKEN" in mcp["environment"]
    flower = services["flower"]["environment"]
    assert {"NEXUS_FLOWER_USER", "NEXUS_FLOWER_PASSWORD"} <= set(flower)


def test_the_sim_shares_its_env_file_and_the_others_read_it() -> None:
    services = _services()
    sim = services["sim"]
    assert "shared:/shared" in sim["volumes"]
    assert sim["environment"]["NEXUS_SIM_SHARED_ENV"].startswith("/shared/")
    assert sim["entrypoint"] == ["nexus-sim-gateway"]
    for name, service in _nexus_services().items():
        if name == "sim":
            continue
        assert "shared:/shared:ro" in service["volumes"], name
        assert "NEXUS_ENV_FILE" in service["environment"], name
        assert service["depends_on"]["sim"] == {"condition": "service_healthy", "required": False}, name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_every_variable_the_compose_file_uses_is_in_env_example() -> None:
    text = COMPOSE.read_text()
    used = {m[0] for m in VAR.findall(text)}  # every ${VAR} anywhere in the file
    for service in _nexus_services().values():
        used |= set(service.get("environment", {}))
    missing = sorted(used - set(_env_example()))
    assert not missing, f"add to .env.example: {missing}"


def _compose_client() -> list[str] | None:
    """A Docker Compose v2 client, if installed: the docker CLI plugin or a standalone v2 `docker-compose`."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            out = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and re.search(r"\bv?2\.\d+", out.stdout):
                return cmd
    return None


def _compose_required() -> bool:
    """The environment (CI's, not this file) says a compose client must be here: ``NEXUS_REQUIRE_COMPOSE=1``."""
    return os.environ.get("NEXUS_REQUIRE_COMPOSE", "").strip().lower() in ("1", "true", "yes")


COMPOSE_SPEC = Path(__file__).parent / "data" / "compose-spec.json"


def test_the_file_is_valid_against_the_compose_specification_schema() -> None:
    from jsonschema import Draft7Validator

    validator = Draft7Validator(json.loads(COMPOSE_SPEC.read_text()))
    document = yaml.safe_load(COMPOSE.read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # the schema judges: a key Compose does not know is refused
    service = next(iter(document["services"]))
    document["services"][service] = {**document["services"][service], "restart_politely": "yes"}
    assert any("restart_politely" in e.message for e in validator.iter_errors(document))


def test_compose_client_validates_the_file_when_one_is_installed(tmp_path: Path) -> None:
    client = _compose_client()
    if client is None:
        if _compose_required():
            pytest.fail("no Docker Compose v2 client (`docker compose` or `docker-compose`) answers `version` "
                        "here, and NEXUS_REQUIRE_COMPOSE says this environment must have one")
        # No client (Debian 12 packages none): the schema test above validates the file; here the profiles.
        services = yaml.safe_load(COMPOSE.read_text())["services"]
        assert set(services) == EXPECTED
        assert {name for name, svc in services.items() if "sim" in (svc.get("profiles") or ())} == {"sim"}
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "NEXUS_", "REDIS_"))}
    for profile_env in ({}, {"COMPOSE_PROFILES": "sim", "NEXUS_ENV_FILE": "/shared/sim.env"}):
        done = subprocess.run([*client, "-f", str(COMPOSE), "config", "-q"], cwd=tmp_path,
                              env={**env, **profile_env}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    out = subprocess.run([*client, "-f", str(COMPOSE), "--profile", "sim", "config", "--services"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert set(out.stdout.split()) == EXPECTED


# -- Dockerfile ---------------------------------------------------------------------------------------------------
def _stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = ""
    for raw in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = line.split()[-1]
        stages.setdefault(current, []).append(line)
    return stages


def test_dockerfile_is_slim_non_root_and_copies_what_exists() -> None:
    stages = _stages()
    assert set(stages) == {"app", "sim"}
    assert stages["app"][0] == "FROM python:3.11-slim AS app"
    assert any(line == "RUN pip install . && rm -rf build ./*.egg-info" for line in stages["app"])
    for name, lines in stages.items():
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1] == "nexus", f"stage {name} must end as the non-root user"
    sim_run = " ".join(line for line in stages["sim"] if line.startswith("RUN "))
    assert "slapd" in sim_run and "slapd" not in " ".join(stages["app"])
    for lines in stages.values():
        for line in lines:
            if line.startswith("COPY "):
                sources = [p for p in line.split()[1:-1] if not p.startswith("--")]
                for src in sources:
                    assert list(ROOT.glob(src)) or src.endswith("*"), f"COPY source {src} does not exist"
    targets = {s["build"]["target"] for s in _nexus_services().values()}
    assert targets == {"app", "sim"}
    assert "COPY --chmod=0755 docker/sim_gateway.py /usr/local/bin/nexus-sim-gateway" in stages["sim"]


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".env", ".env.*", ".venv", ".git", "tests", "artifacts", "reports"} <= ignored
    assert "docker" not in ignored and "nexus" not in ignored


# -- the sim gateway, for real on loopback -------------------------------------------------------------------------
@contextlib.contextmanager
def _gateway(tmp_path: Path, bind: str) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    shared, local, log_path = tmp_path / "shared" / "sim.env", tmp_path / "local" / "sim.env", tmp_path / "gw.log"
    env = {k: v for k, v in os.environ.items() if k != "NEXUS_ENV_FILE"}
    env.update({"NEXUS_SIM_SHARED_ENV": str(shared), "NEXUS_SIM_ADVERTISE_HOST": bind,
                "NEXUS_SIM_GATEWAY_BIND": bind, "PYTHONUNBUFFERED": "1"})
    cmd = [sys.executable, str(GATEWAY), sys.executable, "-m", "nexus.cli", "sim", "--people", "20", "--seed", "3",
           "--port", str(free_port()), "--ldap-port", str(free_port()), "--env-file", str(local)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not shared.is_file():
            assert proc.poll() is None, f"gateway exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no shared env file after 60 s:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.1)
        yield proc, shared, local
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _env_value(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip("'")
    raise KeyError(key)


@pytest.mark.integration
def test_sim_gateway_lets_another_host_reach_every_simulator(tmp_path: Path) -> None:
    bind = "127.0.0.2"  # stands in for the sim container's address: loopback, but not the simulators' 127.0.0.1
    with _gateway(tmp_path, bind) as (proc, shared, local):
        text = shared.read_text()
        assert "127.0.0.1" not in text and f"//{bind}:" in text
        assert oct(shared.stat().st_mode & 0o777) == "0o600"
        assert text.replace(f"//{bind}:", "//127.0.0.1:") == local.read_text()
        env = {k: v for k, v in os.environ.items() if k != "NEXUS_ENV_FILE"}
        env["NEXUS_ENV_FILE"] = str(shared)  # exactly how the compose services read it
        done = subprocess.run([sys.executable, "-m", "nexus.cli", "health", "--json"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        report = json.loads(done.stdout)
        assert len(report["systems"]) == 7, report
        down = {name: s for name, s in report["systems"].items() if s.get("available") is not True}
        assert not down, (down, done.stderr[-2000:])
        # and the traffic did go through the relay: the simulators' own request log, read through it
        requests = httpx.get(f"{_env_value(text, 'NEXUS_SIM_URL')}/_sim/requests", timeout=10).json()
        assert all(requests[s]["total"] > 0 for s in ("workday", "entra", "lansweeper", "helix", "fedex")), requests
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0 or proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)
        assert not shared.exists(), "the gateway must remove the shared env file when the sim stops"
