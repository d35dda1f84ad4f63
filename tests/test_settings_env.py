"""Where settings come from: the process environment wins over ``--env-file``, which wins over ``./.env``
(as docker compose and python-dotenv do); ``NEXUS_LOG_LEVEL`` and ``NEXUS_LOG_FORMAT`` are settings like any other,
so an env file (or ``.env``) applies them, and ``--log-level`` overrides them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from nexus.logs import JsonFormatter, KeyValueFormatter, setup_logging
from nexus.settings import Settings, get_settings


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean working directory and environment; the environment, settings cache and root logger are restored."""
    saved_env = dict(os.environ)
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    for key in [k for k in os.environ if k.startswith(("NEXUS_", "USE_MOCK", "REDIS_URL"))]:
        del os.environ[key]
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        yield tmp_path
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        get_settings.cache_clear()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def nexus_handler() -> logging.Handler:
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_nexus", False)]
    assert len(handlers) == 1
    return handlers[0]


def test_the_process_environment_wins_over_the_env_file(isolated: Path) -> None:
    from nexus.cli.app import load_env_file

    env_file = isolated / "sim.env"
    env_file.write_text("REDIS_URL=redis://from-file:6379/0\nNEXUS_BULK_WINDOW=3\n")
    os.environ["REDIS_URL"] = "redis://from-env:6379/0"
    load_env_file(env_file)
    s = get_settings()
    assert s.redis_url == "redis://from-env:6379/0"
    assert s.bulk_window == 3  # what the environment does not set comes from the file


def test_the_env_file_wins_over_dot_env(isolated: Path) -> None:
    from nexus.cli.app import load_env_file

    (isolated / ".env").write_text("NEXUS_BULK_WINDOW=5\nNEXUS_BULK_CHUNK_SIZE=7\n")
    env_file = isolated / "other.env"
    env_file.write_text("NEXUS_BULK_WINDOW=3\n")
    load_env_file(env_file)
    s = get_settings()
    assert (s.bulk_window, s.bulk_chunk_size) == (3, 7)


def test_log_settings_are_validated() -> None:
    s = Settings(_env_file=None, NEXUS_LOG_LEVEL="warning", NEXUS_LOG_FORMAT="JSON")
    assert (s.log_level, s.log_format) == ("WARNING", "json")
    with pytest.raises(ValueError, match="NEXUS_LOG_LEVEL"):
        Settings(_env_file=None, NEXUS_LOG_LEVEL="bogus")
    with pytest.raises(ValueError, match="NEXUS_LOG_FORMAT"):
        Settings(_env_file=None, NEXUS_LOG_FORMAT="xml")


def test_dot_env_applies_the_log_level_and_format(isolated: Path) -> None:
    (isolated / ".env").write_text("NEXUS_LOG_LEVEL=WARNING\nNEXUS_LOG_FORMAT=json\n")
    setup_logging()
    assert logging.getLogger().level == logging.WARNING
    assert isinstance(nexus_handler().formatter, JsonFormatter)


def test_the_env_file_applies_the_log_level_unless_the_option_is_given(isolated: Path) -> None:
    from nexus.cli.app import main_options

    env_file = isolated / "sim.env"
    env_file.write_text("NEXUS_LOG_LEVEL=DEBUG\nNEXUS_LOG_FORMAT=text\n")
    main_options(env_file=env_file)
    assert logging.getLogger().level == logging.DEBUG
    assert isinstance(nexus_handler().formatter, KeyValueFormatter)
    main_options(env_file=env_file, log_level="error")
    assert logging.getLogger().level == logging.ERROR


def test_a_bad_log_level_option_is_one_line_exit_2(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nexus.cli.app import main_options

    with pytest.raises(typer.Exit) as exc:
        main_options(env_file=None, log_level="bogus")
    assert exc.value.exit_code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nexus: error: ") and "bogus" in err[0]


ROOT = Path(__file__).resolve().parents[1]


def _env_example(include_commented: bool) -> dict[str, str]:
    """.env.example as a dotenv file; with ``include_commented``, the ``# NAME=value`` lines count too."""
    import io
    import re

    from dotenv import dotenv_values

    text = (ROOT / ".env.example").read_text()
    if include_commented:
        text = re.sub(r"(?m)^# (?=[A-Z][A-Z0-9_]*=)", "", text)
    return {k: v or "" for k, v in dotenv_values(stream=io.StringIO(text)).items()}


def test_env_example_lists_every_setting_with_its_default() -> None:
    listed = _env_example(include_commented=True)
    aliases = {f.alias for f in Settings.model_fields.values() if f.alias}
    assert {"NEXUS_LOG_LEVEL", "NEXUS_LOG_FORMAT", "USE_MOCK", "NEXUS_SIM_URL"} <= aliases
    missing = sorted(aliases - set(listed))
    assert not missing, f"add to .env.example: {missing}"
    from_example = Settings(_env_file=None, **{k: v for k, v in listed.items() if k in aliases})  # type: ignore[arg-type]
    defaults = Settings(_env_file=None)
    differ = {name for name in Settings.model_fields if getattr(from_example, name) != getattr(defaults, name)}
    assert not differ, f".env.example differs from the defaults for {sorted(differ)}"


def test_a_dot_env_copied_from_the_example_never_overrides_the_simulators_env_file(isolated: Path) -> None:
    """docker compose puts .env (a copy of .env.example) into every container's environment, and the environment
    wins over NEXUS_ENV_FILE: nothing in it may hide what `nexus sim` wrote."""
    from nexus.cli.app import load_env_file
    from nexus.settings import missing_settings
    from nexus.sim.base import SimCredentials
    from nexus.sim.stack import SimulatorStack

    os.environ.update(_env_example(include_commented=False))  # what compose's env_file: .env does
    stack = SimulatorStack(seed=3, creds=SimCredentials.for_seed(3))
    stack.org = type("Org", (), {"base_dn": "DC=corp,DC=example"})()
    stack._http = type("Server", (), {"url": "http://sim:8400"})()
    stack.ldap_url = "ldap://sim:3890"
    env_file = stack.write_env_file(isolated / "sim.env")
    load_env_file(env_file)
    s = get_settings()
    assert s.use_mock is True and s.workday_base_url == "http://sim:8400/workday"
    assert missing_settings(s) == {}
