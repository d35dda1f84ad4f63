"""Redis out of memory (``--maxmemory 2mb --maxmemory-policy noeviction``) while an audit runs.

Before workers/redis_refusal.py, the worker's main process died on the first refused write (``Unrecoverable error:
server:OutOfMemoryError``, raised by kombu acknowledging a message in a MULTI), the audit stayed ``running`` and
new audits stayed ``queued``. Now the very same worker process keeps running, logs one clear line, and once memory
is back (``CONFIG SET maxmemory 0``) the audit that was in flight ends (it completes, its refused tasks having gone
back to their queues) and a new audit completes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import redis

from nexus.testing.clock import FakeClock
from nexus.testing.cluster import Cluster
from nexus.testing.redis_server import redis_server
from nexus.testing.waiting import wait_until
from workers.redis_refusal import BACKOFF_START_S, EPISODE, _Held, install, refusal_reason

OOM_ARGS = ("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
WAIT = 30.0
REFUSED = "Redis refused the write: out of memory"


@pytest.fixture(scope="module")
def oom_cluster() -> Iterator[Cluster]:
    with redis_server(extra_args=OOM_ARGS) as url, \
            Cluster.start(people=20, seed=5, workers=1, concurrency=2, redis_url=url) as c:
        yield c


def fill(r: redis.Redis) -> int:
    """Fill Redis until it refuses a write (a limit just above what it uses now, so this is quick), then hold the
    limit a little below what it uses, so buffers shrinking by a few bytes do not let writes through again."""
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", str(used + 256 * 1024))
    written = 0
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        while True:
            r.set(f"filler:{written}", "x" * 4096)
            written += 1
    r.config_set("maxmemory", str(int(r.info("memory")["used_memory"]) - 128 * 1024))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("filler:last", "x")
    return written


def test_refusal_reason_names_the_refusal() -> None:
    oom = redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
    assert refusal_reason(oom) == "Redis refused the write: out of memory"
    try:
        try:
            raise oom
        except redis.exceptions.OutOfMemoryError as exc:
            raise RuntimeError("publish failed") from exc
    except RuntimeError as wrapped:
        assert refusal_reason(wrapped) == "Redis refused the write: out of memory"
    assert refusal_reason(redis.exceptions.ReadOnlyError("READONLY")) == "Redis refused the write: read-only replica"
    assert refusal_reason(redis.exceptions.ResponseError("WRONGTYPE Operation against a key")) is None
    assert refusal_reason(redis.exceptions.ConnectionError("gone")) is None


@pytest.mark.integration
def test_worker_survives_redis_out_of_memory_and_the_audits_complete_once_memory_is_back(
        oom_cluster: Cluster) -> None:
    c = oom_cluster
    r = c.redis()
    nx = c.nexus()
    assert c.stack.org is not None
    people = [w.email for w in c.stack.org.workday[:3]]
    worker = c.workers[0]
    r.config_set("maxmemory", "0")  # room to submit
    c.fault("entra", "slow", delay_ms=1500)
    in_flight = nx.submit(nx.request_for(email=people[0]))
    wait_until(lambda: nx.get(in_flight)["progress"]["systems"].get("entra", {}).get("status") == "running", 10.0,
               what="fetch_entra to be running")
    try:
        fill(r)
        # The slow fetch ends while Redis is full: its progress, result, chord count and acknowledgement are refused.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and worker.proc.poll() is None and REFUSED not in worker.log():
            time.sleep(0.2)
        time.sleep(1.0)  # the acknowledgement comes right after the refused writes
        assert worker.proc.poll() is None, f"the worker died:\n{worker.log()[-3000:]}"
        assert REFUSED in worker.log(), worker.log()[-3000:]
    finally:
        c.clear_faults()
        r.config_set("maxmemory", "0")  # memory is back
    view = nx.wait(in_flight, timeout=WAIT)
    assert view["status"] == "done" and view["report"]["systems_failed"] == [], view
    fresh = nx.wait(nx.submit(nx.request_for(email=people[1])), timeout=WAIT)
    assert fresh["status"] == "done" and fresh["report"]["systems_failed"] == [], fresh
    assert c.workers == [worker] and worker.proc.poll() is None
    log = worker.log()
    assert "Unrecoverable error" not in log
    assert log.count(REFUSED) <= 3, log[-3000:]  # one line per episode, not a flood


class _RefusingChannel:
    """Stands in for kombu's Redis channel: its pushes are refused while ``full``."""

    def __init__(self) -> None:
        self.full = True
        self.pushed: list[tuple[object, str, str, bool]] = []
        self.removed: list[tuple[str, object]] = []

    @contextlib.contextmanager
    def conn_or_acquire(self) -> Iterator[_RefusingChannel]:
        yield self

    def pipeline(self, transaction: bool = True) -> _RefusingChannel:
        assert transaction is False  # a full Redis 7 refuses MULTI itself
        return self

    def _do_restore_message(self, payload: object, exchange: str, routing_key: str, pipe: object,
                            leftmost: bool = False) -> None:
        self._pending = (payload, exchange, routing_key, leftmost)

    def zrem(self, key: str, tag: object) -> None:
        self.removed.append((key, tag))

    def hdel(self, key: str, tag: object) -> None:
        self.removed.append((key, tag))

    def execute(self) -> None:
        if self.full:
            raise redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
        self.pushed.append(self._pending)


def test_held_messages_go_back_to_the_front_of_their_queue_once_redis_accepts_writes() -> None:
    clock = FakeClock()
    held = _Held(clock=clock.monotonic)
    channel = _RefusingChannel()
    held.hold({"body": "a"}, "", "entra", "tag-a")
    held.hold({"body": "b"}, "", "entra")
    assert not held.due()
    waits = []
    for _ in range(5):
        clock.advance(held.next_try - clock.monotonic())
        assert held.due() and held.push_back(channel, ("unacked_index", "unacked")) == 0
        waits.append(held.backoff_s)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]  # doubling from BACKOFF_START_S, capped at BACKOFF_MAX_S
    channel.full = False
    clock.advance(5.0)
    assert held.push_back(channel, ("unacked_index", "unacked")) == 2 and not held.messages and not held.due()
    assert channel.pushed == [({"body": "a"}, "", "entra", True), ({"body": "b"}, "", "entra", True)]
    assert channel.removed == [("unacked_index", "tag-a"), ("unacked", "tag-a")]  # no second copy after the timeout
    assert held.backoff_s == BACKOFF_START_S


class _WrongTypeChannel(_RefusingChannel):
    """A push that fails for another reason than a refusal: the queue's key holds a string."""

    def execute(self) -> None:
        raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")


def test_a_push_back_that_fails_for_another_reason_is_raised_not_called_a_refusal(
        caplog: pytest.LogCaptureFixture) -> None:
    EPISODE.refusing = False
    clock = FakeClock()
    held = _Held(clock=clock.monotonic)
    held.hold({"body": "a"}, "", "entra", "tag-a")
    clock.advance(BACKOFF_START_S)
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        held.push_back(_WrongTypeChannel(), ("unacked_index", "unacked"))
    assert len(held.messages) == 1 and not held.due()  # still held, retried after a backoff
    assert not EPISODE.refusing
    assert not [r for r in caplog.records if "refused" in r.getMessage()]


@pytest.mark.integration
def test_held_messages_survive_a_consumer_restart() -> None:
    """A requeue Redis refused is held by the worker process, not by the consumer's channel: a consumer restart (a
    connection error, a channel error) opens a new connection, whose first ``BRPOP`` pushes the message back."""
    import kombu

    install()
    queue = "nexus-held-restart"
    with redis_server(extra_args=("--maxmemory-policy", "noeviction")) as url:
        r = redis.Redis.from_url(url)
        try:
            with kombu.Connection(url) as first:
                simple = first.SimpleQueue(queue)
                simple.put({"n": 1})
                message = simple.get(timeout=5)
                r.config_set("maxmemory", "1")  # full: every write refused
                message.requeue()  # refused: held
                assert r.llen(queue) == 0
                simple.close()
            r.config_set("maxmemory", "0")  # memory is back; the consumer restarted with a new connection
            with kombu.Connection(url) as second:
                simple = second.SimpleQueue(queue)
                again = simple.get(timeout=5)
                assert again.payload == {"n": 1}
                again.ack()
                simple.close()
            assert r.zcard("unacked_index") == 0 and r.hlen("unacked") == 0
        finally:
            r.close()
