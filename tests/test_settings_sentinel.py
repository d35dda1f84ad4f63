"""Redis Sentinel settings (``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER``, the passwords): parsed and validated
with errors that name the variable, and routed into every Redis use (the stores, the breakers and budgets, Celery's
broker and result backend, beat) without a secret in a URL, a repr or a log line. No server: see
tests/test_sentinel_failover.py for the real thing."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from pydantic import ValidationError

from nexus.redis_sentinel import SentinelTarget, celery_url, failover_retries, failover_retry, parse_sentinels
from nexus.settings import Settings

SENTINELS = "10.0.0.1:26379, sentinel-b:26380,[::1]:26381"
MASTER_PW = "m4ster-pa55word"
SENTINEL_PW = "s3ntinel-pa55word"


def settings(**env: Any) -> Settings:
    values: dict[str, Any] = {"_env_file": None, **env}
    return Settings(**values)


def sentinel_settings(**env: Any) -> Settings:
    return settings(REDIS_SENTINELS=SENTINELS, REDIS_SENTINEL_MASTER="nexus", REDIS_URL="redis://ignored:1/3",
                    REDIS_PASSWORD=MASTER_PW, REDIS_SENTINEL_PASSWORD=SENTINEL_PW, **env)


def test_sentinels_parse_as_host_port_pairs() -> None:
    assert parse_sentinels(SENTINELS) == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381))
    assert parse_sentinels("") == () and parse_sentinels("  ") == ()
    assert parse_sentinels("a,a:26379,b") == (("a", 26379), ("b", 26379))  # a bare host: the usual port, once


@pytest.mark.parametrize("bad", ["h1:notaport", "h1:0", "h1:70000", "::1:26379", "redis://h1:26379",
                                 "h 1:26379", "user@h1:26379", "h1:26379:1", "[nonsense]:26379"])
def test_a_bad_sentinel_is_a_settings_error_naming_the_variable(bad: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"REDIS_SENTINELS: '{bad}'")):
        settings(REDIS_SENTINELS=f"ok:26379,{bad}")
    with pytest.raises(ValidationError, match="REDIS_SENTINELS: ', ' names no sentinel"):
        settings(REDIS_SENTINELS=", ")


def test_a_bad_sentinel_is_one_line_exit_2_from_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from nexus.cli import app
    from nexus.settings import get_settings

    monkeypatch.setenv("REDIS_SENTINELS", "h1:26379,h2:port")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["audit", "list"])
    finally:
        monkeypatch.delenv("REDIS_SENTINELS")
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "REDIS_SENTINELS: 'h2:port' is not host:port" in result.output


def test_without_sentinels_nothing_changes() -> None:
    s = settings(REDIS_URL="redis://:pw@127.0.0.1:6390/2")
    assert s.redis_sentinel() is None
    assert s.redis_target == "redis://:pw@127.0.0.1:6390/2" == s.breaker_redis_target
    from workers.config import celery_config

    config = celery_config(s)
    assert config["broker_url"] == config["result_backend"] == "redis://:pw@127.0.0.1:6390/2"
    assert "broker_password" not in config and "master_name" not in config["broker_transport_options"]
    assert config["redis_password"] is None and config["task_publish_retry_policy"]["max_retries"] == 3


def test_the_target_takes_the_database_and_password_from_redis_url_or_redis_password() -> None:
    target = sentinel_settings().redis_sentinel()
    assert target == SentinelTarget(sentinels=(("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381)),
                                    master="nexus", db=3, password=MASTER_PW, sentinel_password=SENTINEL_PW)
    from_url = settings(REDIS_SENTINELS="h:1", REDIS_URL="redis://nexus:p%40ss@x/5").redis_sentinel()
    assert from_url is not None and (from_url.username, from_url.password, from_url.db) == ("nexus", "p@ss", 5)
    assert from_url.master == "mymaster" and from_url.sentinel_password is None
    same = settings(REDIS_SENTINELS="h:1", REDIS_URL=f"redis://:{MASTER_PW}@x/0", REDIS_PASSWORD=MASTER_PW)
    assert same.redis_sentinel() is not None
    compose = settings(REDIS_SENTINELS="h:1", REDIS_URL="redis://:@redis:6379/0")  # compose, no password
    assert compose.redis_sentinel() == SentinelTarget((("h", 1),))


@pytest.mark.parametrize(("env", "message"), [
    ({"REDIS_URL": "rediss://x:6380/0"}, "TLS to a Sentinel-managed master is not supported"),
    ({"REDIS_URL": "redis://x/zero"}, "the database must be a number"),
    ({"REDIS_URL": "redis://:other@x/0", "REDIS_PASSWORD": "mine"}, "REDIS_PASSWORD and the password in REDIS_URL"),
    ({"NEXUS_BREAKER_REDIS_URL": "redis://other:6379/0"}, "NEXUS_BREAKER_REDIS_URL must be empty with"),
    ({"NEXUS_BEAT_REDIS_URL": "redis://other:6379/0"}, "NEXUS_BEAT_REDIS_URL must be empty with"),
    ({"REDIS_SENTINEL_MASTER": "my master"}, "REDIS_SENTINEL_MASTER must be"),
])
def test_sentinel_settings_that_cannot_work_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as exc:
        settings(REDIS_SENTINELS="h:26379", **env)
    assert "other@" not in str(exc.value)  # a refused URL is shown with its password masked


def test_breakers_and_budgets_use_the_sentinel_master_unless_memory() -> None:
    s = sentinel_settings()
    assert s.breaker_redis_target == s.redis_target == s.redis_sentinel()
    assert sentinel_settings(NEXUS_BREAKER_REDIS_URL="memory://").breaker_redis_target == "memory://"


def test_celery_goes_through_the_sentinels_with_the_passwords_out_of_the_urls() -> None:
    from workers.config import celery_config

    config = celery_config(sentinel_settings(NEXUS_VISIBILITY_TIMEOUT_S=900))
    urls = "sentinel://10.0.0.1:26379/3;sentinel://sentinel-b:26380/3;sentinel://[::1]:26381/3"
    assert config["result_backend"] == urls
    assert config["broker_url"] == urls.replace("sentinel://", f"sentinel://:{MASTER_PW}@")  # see below
    for name in ("broker_transport_options", "result_backend_transport_options"):
        assert config[name] == {"visibility_timeout": 900, "master_name": "nexus",
                                "sentinel_kwargs": {"password": SENTINEL_PW, "socket_timeout": 1.0,
                                                    "socket_connect_timeout": 1.0}}
    assert config["redis_password"] == MASTER_PW and "broker_password" not in config
    policy = config["task_publish_retry_policy"]  # Celery's default gives up after 0.6 s: no failover fits
    assert policy["max_retries"] == failover_retries(15.0) and policy["interval_max"] == 0.5
    # an explicit broker (the embedded worker's memory://, another broker) keeps its own URL and options
    own = celery_config(sentinel_settings(), broker_url="memory://")
    assert own["broker_url"] == "memory://" and "master_name" not in own["broker_transport_options"]
    assert own["result_backend"] == urls


def test_kombu_and_celery_read_the_options_as_given() -> None:
    """The option names are the ones the installed kombu and celery read (SentinelChannel, SentinelBackend)."""
    from celery import Celery
    from kombu.transport.redis import SentinelChannel

    from workers.config import celery_config

    assert {"master_name", "sentinel_kwargs", "visibility_timeout"} <= set(SentinelChannel.from_transport_options)
    app = Celery("sentinel-options", set_as_current=False)
    app.conf.update(celery_config(sentinel_settings()))
    connection = app.connection_for_write()
    assert connection.transport_cls == "sentinel" and connection.password == MASTER_PW
    target = sentinel_settings().redis_sentinel()
    assert target is not None and connection.alt == celery_url(target, credentials=True).split(";")
    assert MASTER_PW not in connection.as_uri() and SENTINEL_PW not in connection.as_uri()
    # A failed connection moves to the next alternate with its URL's parameters only: the password must be there.
    connection.switch(connection.alt[1])
    assert (connection.hostname, connection.port, connection.password) == ("sentinel-b", 26380, MASTER_PW)
    backend = app.backend
    params = backend.connparams
    assert type(backend).__name__ == "SentinelBackend"
    assert [(h["host"], h["port"]) for h in params["hosts"]] == [("10.0.0.1", 26379), ("sentinel-b", 26380),
                                                                  ("::1", 26381)]
    assert params["password"] == MASTER_PW and params["db"] == 3
    assert MASTER_PW not in backend.as_uri()
    from celery.app.utils import filter_hidden_settings

    shown = repr(filter_hidden_settings(dict(app.conf)))  # what `inspect conf` and Flower show
    assert MASTER_PW not in shown and SENTINEL_PW not in shown


def test_beat_goes_through_the_sentinels() -> None:
    from workers.beat import beat_config

    config = beat_config(sentinel_settings())
    assert config["redbeat_redis_url"] == "redis-sentinel://"
    options = config["redbeat_redis_options"]
    assert options["sentinels"] == [("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381)]
    assert (options["service_name"], options["db"], options["password"]) == ("nexus", 3, MASTER_PW)
    assert options["sentinel_kwargs"]["password"] == SENTINEL_PW


def test_secrets_stay_out_of_repr_and_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus.logs import KeyValueFormatter, configured_secrets
    from nexus.settings import get_settings

    s = sentinel_settings()
    for text in (repr(s), str(s), repr(s.redis_sentinel()), s.redis_sentinel().describe()):  # type: ignore[union-attr]
        assert MASTER_PW not in text and SENTINEL_PW not in text
    get_settings.install(s)
    try:
        secrets = configured_secrets()
    finally:
        get_settings.install(None)
    assert {MASTER_PW, SENTINEL_PW} <= set(secrets)
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "AUTH failed with %s / %s", (MASTER_PW, SENTINEL_PW),
                               None)
    line = KeyValueFormatter(secrets).format(record)
    assert MASTER_PW not in line and SENTINEL_PW not in line


def test_the_clients_are_sentinel_managed() -> None:
    """No server needed to build them: a Sentinel-managed pool connects on first use."""
    from redis.sentinel import SentinelConnectionPool

    from nexus.redis_conn import clear_redis_clients, close, connect, redis_for

    target = sentinel_settings().redis_sentinel()
    assert target is not None
    stores = connect(target)
    pool = stores.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "nexus"
    assert pool.connection_kwargs["password"] == MASTER_PW and pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["retry"].get_retries() == failover_retries(15.0)
    assert pool.connection_kwargs["socket_timeout"] == 5
    direct = connect("redis://127.0.0.1:1/0")  # with a URL, as always: no retry, a dead Redis fails a call at once
    assert direct.connection_pool.make_connection().retry.get_retries() == 0  # type: ignore[attr-defined]
    direct.close()
    manager = pool.sentinel_manager
    assert [s.connection_pool.connection_kwargs["password"] for s in manager.sentinels] == [SENTINEL_PW] * 3
    close(stores)
    breakers = redis_for(target)
    assert redis_for(sentinel_settings().redis_target) is breakers  # cached per target (equal, not the same)
    assert breakers.connection_pool.connection_kwargs["socket_timeout"] == 1.0
    clear_redis_clients()


def test_the_failover_wait_is_a_deterministic_budget() -> None:
    """50 ms doubling to 0.5 s, then 0.5 s each: about the setting's seconds of pauses, whatever the jitter."""
    for wait_s in (0.0, 1.0, 15.0, 60.0):
        retry = failover_retry(wait_s)
        pauses = [retry._backoff.compute(n) for n in range(1, retry.get_retries() + 1)]
        assert wait_s <= sum(pauses) < wait_s + 0.5
    assert settings(REDIS_SENTINELS="h:1", NEXUS_REDIS_FAILOVER_WAIT_S="30").redis_sentinel().failover_wait_s == 30  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="NEXUS_REDIS_FAILOVER_WAIT_S"):
        settings(NEXUS_REDIS_FAILOVER_WAIT_S="-1")
