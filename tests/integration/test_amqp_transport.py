"""AmqpTransport against a private RabbitMQ node that the tests restart, stop and kill.

(The shared broker on 5672 is never touched here; see tests/support/rabbit.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from gvnfm.transport import Delivery, Message, RpcTimeout, TransportError, amqp
from gvnfm.transport.amqp import AmqpTransport, safe_url
from gvnfm.transport.base import QueueSpec
from gvnfm.transport.lifecycle import backoff_delays
from tests.support.rabbit import PrivateRabbit
from tests.support.services import unique
from tests.support.transports import opened_transports

pytestmark = pytest.mark.rabbitmq

Open = Callable[..., Awaitable[AmqpTransport]]


@pytest.fixture
async def open_transport(private_rabbit: PrivateRabbit) -> AsyncIterator[Open]:
    async with opened_transports(lambda **options: AmqpTransport(private_rabbit.url, **options)) as make:
        yield make


@pytest.fixture(autouse=True)
def broker_back_up(private_rabbit: PrivateRabbit) -> Iterator[None]:
    """The module's private node is shared by its tests: whatever a test stopped or killed (and however
    it failed), the next test gets a running broker."""
    yield
    if not private_rabbit.running:
        private_rabbit.start()
    elif private_rabbit.ctl("await_startup", "--timeout", "1", check=False, timeout=60).returncode != 0:
        private_rabbit.start_app()


async def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``predicate`` (the timeout is a hang guard, not a time bound)."""
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


class Seen:
    """What a test's consumers received (acknowledged) and which of them were restored, in order."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.restored: list[str] = []

    async def collect(self, delivery: Delivery) -> None:
        self.got.append(delivery.message.body)
        await delivery.ack()

    def on_restored(self, queue: str) -> Callable[[], Awaitable[None]]:
        async def restored() -> None:
            self.restored.append(queue)
        return restored


def test_backoff_doubles_and_is_capped() -> None:
    delays = backoff_delays(0.5, 10.0)
    assert [next(delays) for _ in range(8)] == [0.5, 1, 2, 4, 8, 10, 10, 10]
    zero = backoff_delays(0.0, 3.0)
    assert [next(zero) for _ in range(3)] == [0.0, 3.0, 3.0]


def test_passwords_are_not_shown() -> None:
    assert safe_url("amqp://admin:s3cret@host:5672/") == "amqp://admin:***@host:5672/"
    assert "s3cret" not in repr(AmqpTransport("amqp://admin:s3cret@host:5672/"))


async def test_broker_restart_reconnects_restores_consumers_and_runs_callbacks(
        private_rabbit: PrivateRabbit, open_transport: Open) -> None:
    t = await open_transport()
    queue, topic = unique("amqp-restart"), unique("amqp-restart-topic")
    got: list[Message] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message)
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)          # transient: the restart deletes it
    await t.bind(queue, f"{topic}.*")
    await t.consume(queue, collect, prefetch=4)

    async def echo(delivery: Delivery) -> None:
        await t.reply(delivery.message, b"pong:" + delivery.message.body)
        await delivery.ack()

    await t.declare_queue(f"{queue}.rpc", auto_delete=True)
    await t.consume(f"{queue}.rpc", echo)
    assert await t.rpc(f"{queue}.rpc", b"1", timeout=5) == b"pong:1"

    callbacks: list[str] = []

    async def on_reconnect() -> None:
        # Runs after queues, bindings and consumers are back: what it publishes is consumed.
        callbacks.append("ran")
        await t.publish(queue, b"from-callback")

    t.on_reconnect(on_reconnect)
    await t.publish(queue, b"before")
    await until(lambda: len(got) == 1)

    await asyncio.to_thread(private_rabbit.restart)
    await until(lambda: t.reconnects == 1 and callbacks == ["ran"])
    assert t.connected
    await t.publish(f"{topic}.x", b"after")                  # the re-made binding routes it
    await until(lambda: len(got) == 3)
    assert [m.body for m in got] == [b"before", b"from-callback", b"after"]
    assert await t.rpc(f"{queue}.rpc", b"2", timeout=5) == b"pong:2"   # new reply queue, restored consumer
    assert t.last_backoff and t.last_backoff[0] == pytest.approx(0.2)


async def test_a_connection_the_broker_closed_is_closed_on_our_side_too(
        private_rabbit: PrivateRabbit, open_transport: Open) -> None:
    """aio-pika leaves a connection that the broker closed open on its own side (``is_closed`` False);
    dropped so, its ``__del__`` schedules ``close()`` in whichever thread collects it, and in a thread
    without an event loop (the store's, an executor's) that was "coroutine 'Connection.close' was never
    awaited" on stderr (CI, after broker restarts). The transport closes a lost connection itself."""
    t = await open_transport()
    assert t._conn is not None
    held = [t._conn]      # the lost connection, until the collection below
    gc.collect()
    gc.disable()          # the lost connection's objects wait for the collection below, in a thread
    try:
        await asyncio.to_thread(private_rabbit.ctl, "close_all_connections", "test")
        await until(lambda: t.reconnects == 1 and t.connected)
        with contextlib.suppress(TimeoutError):
            await until(lambda: held[0].is_closed, timeout=10)
        closed_here = held[0].is_closed
        held.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await asyncio.to_thread(gc.collect)
            await asyncio.sleep(0)
    finally:
        gc.enable()
    assert closed_here
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def test_pending_rpc_fails_fast_when_the_connection_is_lost(
        private_rabbit: PrivateRabbit, open_transport: Open) -> None:
    server, client = await open_transport(), await open_transport()
    queue = unique("amqp-pending")
    answered: list[str | None] = []
    answer = asyncio.Event()
    seen: list[bytes] = []

    async def slow_server(delivery: Delivery) -> None:
        await delivery.ack()
        seen.append(delivery.message.body)
        if answer.is_set():
            answered.append(delivery.message.correlation_id)
            await server.reply(delivery.message, b"done")

    await server.declare_queue(queue, durable=True)
    await server.consume(queue, slow_server)
    pending = asyncio.create_task(client.rpc(queue, b"work", timeout=600, correlation_id="step-7"))
    # a request on a reply channel of its own (direct reply-to, the local NFVO's commands) fails as fast
    request = asyncio.create_task(client.request(queue, b"command", timeout=600))
    await until(lambda: len(seen) == 2)      # the server has both and answers neither
    assert not pending.done() and not request.done()

    await asyncio.to_thread(private_rabbit.stop_app)
    try:
        # "fast": on the lost connection, not after the call's own 600 s timeout (the guard is far below)
        with pytest.raises(TransportError, match="connection lost") as failure:
            async with asyncio.timeout(120):
                await pending
        assert not isinstance(failure.value, RpcTimeout)
        with pytest.raises(TransportError) as failure:
            async with asyncio.timeout(120):
                await request
        assert not isinstance(failure.value, RpcTimeout)
        # While the broker is down, a new call waits for the reconnection (connect_timeout), then fails.
        assert not client.connected
    finally:
        await asyncio.to_thread(private_rabbit.start_app)

    # The caller retries with the same correlation id once the broker is back.
    answer.set()
    await until(lambda: client.connected and server.connected)
    assert await client.rpc(queue, b"work", timeout=60, correlation_id="step-7") == b"done"
    assert answered == ["step-7"]
    await _delete(server, queue)


async def test_publish_during_an_outage_waits_for_the_reconnection_and_backoff_is_capped(
        private_rabbit: PrivateRabbit, open_transport: Open) -> None:
    t = await open_transport(reconnect_initial=0.1, reconnect_max=0.4, connect_timeout=20)
    queue = unique("amqp-outage")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, collect)
    await asyncio.to_thread(private_rabbit.stop_app)
    try:
        await until(lambda: not t.connected)
        publishing = asyncio.create_task(t.publish(queue, b"queued while down"))
        await until(lambda: len(t.last_backoff) >= 5)     # five attempts while the broker is away
        assert not publishing.done()
        # 0.1, 0.2, 0.4, then capped at 0.4 while the broker is away.
        assert t.last_backoff[:3] == pytest.approx([0.1, 0.2, 0.4])
        assert len(t.last_backoff) >= 5 and max(t.last_backoff) == pytest.approx(0.4)
    finally:
        await asyncio.to_thread(private_rabbit.start_app)
    async with asyncio.timeout(60):
        await publishing
    await until(lambda: got == [b"queued while down"])

    # The next outage starts again from the initial delay.
    await asyncio.to_thread(private_rabbit.restart)
    await until(lambda: t.reconnects == 2)
    assert t.last_backoff[0] == pytest.approx(0.1)


async def test_ack_after_the_channel_died_does_not_raise_and_the_message_comes_back(
        private_rabbit: PrivateRabbit, open_transport: Open) -> None:
    t = await open_transport()
    queue = unique("amqp-late-ack")
    held: list[Delivery] = []
    got: list[Message] = []

    async def handler(delivery: Delivery) -> None:
        if not held:
            held.append(delivery)      # keep it unsettled across the restart
            return
        got.append(delivery.message)
        await delivery.ack()

    await t.declare_queue(queue, durable=True)
    await t.consume(queue, handler)
    await t.publish(queue, b"survives")
    await until(lambda: len(held) == 1)
    await asyncio.to_thread(private_rabbit.restart)
    await held[0].ack()                # channel gone: logged at debug, no exception
    await held[0].reject(requeue=True)
    await until(lambda: len(got) == 1)
    assert got[0].body == b"survives"  # durable queue + persistent message, redelivered after reconnect
    await _delete(t, queue)


async def test_killed_broker_is_survived(private_rabbit: PrivateRabbit, open_transport: Open) -> None:
    """A crash (the socket just dies, no connection.close) instead of an orderly shutdown."""
    t = await open_transport(reconnect_max=0.5)
    queue = unique("amqp-kill")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, collect)
    other = await open_transport()
    await asyncio.to_thread(private_rabbit._kill)
    await until(lambda: not t.connected and not other.connected)
    async with asyncio.timeout(60):     # closing while reconnecting neither hangs nor raises
        await other.close()
    with pytest.raises(TransportError, match="not connected"):
        await other.publish(queue, b"closed")
    await asyncio.to_thread(private_rabbit.start)
    await until(lambda: t.connected and t.reconnects == 1)
    await t.publish(queue, b"after crash")
    await until(lambda: got == [b"after crash"])


async def test_bad_credentials_fail_quickly(private_rabbit: PrivateRabbit) -> None:
    # "quickly": at the first refusal, not after retrying until connect_timeout (the bound is half of it)
    t = AmqpTransport(private_rabbit.url_for("guest", "wrong-password"), connect_timeout=120)
    started = time.monotonic()
    with pytest.raises(TransportError, match="refused") as failure:
        await t.connect()
    assert time.monotonic() - started < 60
    assert "wrong-password" not in str(failure.value)
    user, password = unique("u"), unique("p")
    await asyncio.to_thread(private_rabbit.add_user, user, password)
    good = AmqpTransport(private_rabbit.url_for(user, password))
    async with good:
        assert good.connected


async def test_bad_urls_and_unencodable_input_are_transport_errors(
        private_rabbit: PrivateRabbit, open_transport: Open) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError, match="virtual host"):
        await AmqpTransport(private_rabbit.url + unique("no-vhost"), connect_timeout=120).connect()
    assert time.monotonic() - started < 60           # at the first refusal, not after connect_timeout
    with pytest.raises(TransportError, match="invalid broker URL"):
        await AmqpTransport("amqp://guest:guest@127.0.0.1:notaport/").connect()

    t = await open_transport()
    with pytest.raises(TransportError, match="too long"):
        await t.publish("k" * 300, b"x")
    with pytest.raises(TransportError):
        await t.declare_queue("q" * 300)
    with pytest.raises(TransportError):
        await t.publish("k", b"x", headers={"bad": object()})
    queue = unique("amqp-after-bad")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, collect)
    await t.publish(queue, b"still fine")
    await until(lambda: got == [b"still fine"])


async def test_unreachable_broker_fails_after_connect_timeout() -> None:
    import socket

    with socket.socket() as sock:      # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t = AmqpTransport(f"amqp://guest:guest@127.0.0.1:{port}/", connect_timeout=1.0, reconnect_initial=0.1)
    started = time.monotonic()
    with pytest.raises(TransportError, match="cannot connect"):
        await t.connect()
    # it retries until connect_timeout (the lower bound is the behaviour), then gives up (the upper bound
    # only says "not forever": a slow machine only adds to it)
    assert 0.5 <= time.monotonic() - started < 60
    with pytest.raises(TransportError):
        await t.publish("x", b"never connected")


async def test_oversized_messages_are_refused(open_transport: Open) -> None:
    t = await open_transport(max_message_bytes=1024)
    assert AmqpTransport("amqp://x/").max_message_bytes == 64 * 1024 * 1024
    queue = unique("amqp-size")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, collect)
    with pytest.raises(TransportError, match="exceeds"):
        await t.publish(queue, b"x" * 1025)
    with pytest.raises(TransportError, match="exceeds"):
        await t.rpc(queue, b"x" * 1025, timeout=1)
    await t.publish(queue, b"y" * 1024)
    await until(lambda: got == [b"y" * 1024])


async def test_publishing_to_a_missing_exchange_is_an_error_and_the_transport_goes_on(
        open_transport: Open) -> None:
    """RabbitMQ closes the channel (404); the transport reports it and opens a new one."""
    t = await open_transport()
    queue = unique("amqp-noexchange")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, collect)
    with pytest.raises(TransportError, match="NOT_FOUND"):
        await t.publish(queue, b"lost", exchange=unique("no-such-exchange"))
    await t.publish(queue, b"fine")
    await until(lambda: got == [b"fine"])


async def test_heartbeat_is_negotiated(private_rabbit: PrivateRabbit) -> None:
    async with AmqpTransport(private_rabbit.url, heartbeat=3) as t:
        conn = await t._wait_ready()
        assert conn.transport is not None and conn.transport.connection.heartbeat_timeout == 3


async def test_the_publishing_channel_is_open_before_the_first_publish(open_transport: Open) -> None:
    """It opens beside the declarations of connect(): the first publish (an EMS's registration) does not
    wait for a channel's two round trips (docs/performance.md, ninth round)."""
    t = await open_transport()
    opened = t._pub
    assert opened is not None and not opened.is_closed
    queue = unique("amqp-first-publish")
    await t.declare_queue(queue, auto_delete=True)
    await t.publish(queue, b"first", exchange="")
    assert t._pub is opened        # the first publish used it


async def test_a_consumer_whose_channel_dies_gets_its_auto_delete_queue_back(open_transport: Open) -> None:
    """A channel error (here an acknowledgement the broker does not know; RabbitMQ's ``consumer_timeout``
    closes the channel the same way) takes an auto-delete queue with its consumer. The consumer comes back
    on a new channel with its queue and bindings made again, and consumes; before, it stayed lost while
    the connection lived on."""
    t = await open_transport()
    queue, topic = unique("amqp-chan-error"), unique("amqp-chan-error-topic")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    restored: list[str] = []

    async def on_restored() -> None:
        restored.append(queue)

    await t.declare_queue(queue, auto_delete=True)
    await t.bind(queue, f"{topic}.*")
    await t.consume(queue, collect, prefetch=4, on_restored=on_restored)
    consumer = t._consumers[0]
    dying = consumer.channel
    assert dying is not None
    await (await dying.get_underlay_channel()).basic_ack(999_999)   # PRECONDITION_FAILED closes it
    await until(lambda: dying.is_closed)
    await until(lambda: consumer.channel is not None and consumer.channel is not dying)
    assert consumer.active and t.connected
    await t.publish(queue, b"direct", exchange="")
    await t.publish(f"{topic}.x", b"routed")                        # the binding was made again
    await until(lambda: sorted(got) == [b"direct", b"routed"])
    assert restored == [queue]          # its owner heard of it (an EMS registers again)


def _consuming_channels(node: PrivateRabbit) -> list[int]:
    """The consumer count of every channel of the node that has consumers (the broker's own view)."""
    listed = node.ctl("list_channels", "consumer_count", "--no-table-headers", "--quiet").stdout
    return sorted(n for n in (int(line) for line in listed.split()) if n > 0)


async def test_a_shared_consumer_channel_carries_every_consumer_each_with_its_own_prefetch(
        open_transport: Open, private_rabbit: PrivateRabbit) -> None:
    """``shared_consumer_channel`` (the EMS fleet's connections): the broker sees one channel with all
    the consumers, and each consumer keeps its own prefetch (basic.qos before its basic.consume)."""
    t = await open_transport(shared_consumer_channel=True)
    held: dict[str, list[Delivery]] = {}
    queues = [unique("amqp-shared-qos") for _ in range(3)]

    def holder(queue: str) -> Callable[[Delivery], Awaitable[None]]:
        async def hold(delivery: Delivery) -> None:     # never acknowledged: the prefetch is what arrives
            held.setdefault(queue, []).append(delivery)
        return hold

    for queue, prefetch in zip(queues, (1, 3, 3), strict=True):
        await t.declare_queue(queue, auto_delete=True)
        await t.consume(queue, holder(queue), prefetch=prefetch)
    assert len({id(c.channel) for c in t._consumers}) == 1
    assert await asyncio.to_thread(_consuming_channels, private_rabbit) == [3]
    for queue in queues:
        for i in range(5):
            await t.publish(queue, b"m%d" % i, exchange="")
    await until(lambda: [len(held.get(q, [])) for q in queues] == [1, 3, 3])
    await asyncio.sleep(0.3)                             # and no more arrive
    assert [len(held.get(q, [])) for q in queues] == [1, 3, 3]
    for delivery in held[queues[0]]:
        await delivery.ack()
    await until(lambda: len(held[queues[0]]) == 2)      # one acknowledged, one more delivered


async def test_a_consumer_cancelled_on_the_shared_channel_leaves_the_others_consuming(open_transport: Open) -> None:
    """Cancelling one consumer keeps the shared channel open: the others go on, and a message the
    cancelled one is still handling is acknowledged on it (not redelivered)."""
    t = await open_transport(shared_consumer_channel=True)
    first, second = unique("amqp-shared-cancel"), unique("amqp-shared-cancel")
    release = asyncio.Event()
    got: list[bytes] = []

    async def slow(delivery: Delivery) -> None:
        await release.wait()
        await delivery.ack()
        got.append(delivery.message.body)

    async def fast(delivery: Delivery) -> None:
        await delivery.ack()
        got.append(delivery.message.body)

    await t.declare_queue(first)        # not auto-delete: the cancelled queue keeps what it holds
    await t.declare_queue(second, auto_delete=True)
    subscription = await t.consume(first, slow, prefetch=1)
    await t.consume(second, fast, prefetch=1)
    await t.publish(first, b"in-hand", exchange="")
    await until(lambda: bool(t._consumers[0].inflight))
    shared = t._consuming
    await subscription.cancel()
    assert shared is not None and not shared.is_closed
    await t.publish(second, b"after-cancel", exchange="")
    await until(lambda: got == [b"after-cancel"])
    release.set()
    await until(lambda: got == [b"after-cancel", b"in-hand"])
    assert await t.delete_unused_queue(first) == 0      # the message was acknowledged, not requeued


async def test_every_consumer_of_a_shared_channel_comes_back_after_a_channel_error(open_transport: Open) -> None:
    """One channel error closes the shared channel: every consumer on it comes back on one new channel,
    each auto-delete queue and its bindings made again, and each consumer's ``on_restored`` runs once
    (an EMS registers again there, so that the VNFM sends again what was queued in the lost queue)."""
    t = await open_transport(shared_consumer_channel=True)
    topic = unique("amqp-shared-error-topic")
    queues = [unique("amqp-shared-error") for _ in range(3)]
    seen = Seen()
    got, restored, collect, on_restored = seen.got, seen.restored, seen.collect, seen.on_restored

    for i, queue in enumerate(queues):
        await t.declare_queue(queue, auto_delete=True)
        await t.bind(queue, f"{topic}.{i}")
        await t.consume(queue, collect, prefetch=2, on_restored=on_restored(queue))
    dying = t._consuming
    assert dying is not None
    await (await dying.get_underlay_channel()).basic_ack(999_999)   # PRECONDITION_FAILED closes it
    await until(lambda: dying.is_closed)
    await until(lambda: sorted(restored) == sorted(queues))
    assert t.connected and all(c.active for c in t._consumers)
    assert {id(c.channel) for c in t._consumers} == {id(t._consuming)} and t._consuming is not dying
    for i in range(3):
        await t.publish(f"{topic}.{i}", b"routed-%d" % i)      # the bindings were made again
    await until(lambda: sorted(got) == [b"routed-0", b"routed-1", b"routed-2"])
    await asyncio.sleep(0.2)
    assert sorted(restored) == sorted(queues)                    # once each


async def test_a_restore_that_fails_is_tried_again(open_transport: Open, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A consumer whose queue could not be made again (the broker answered NOT_FOUND: it was still deleting
    the old queue, seen with 10,000 agents) is tried again after a pause, not given up: it consumes again and
    its ``on_restored`` runs once."""
    monkeypatch.setattr(amqp, "RESTORE_RETRY_INITIAL", 0.05)
    t = await open_transport(shared_consumer_channel=True)
    flaky, steady = unique("amqp-restore-again"), unique("amqp-restore-again")
    seen = Seen()
    restored = seen.restored
    remake = t._remake_queue
    failures = [flaky]

    async def remake_failing_once(queue: str, channel: Any) -> None:
        if queue in failures:
            failures.remove(queue)
            raise TransportError(f"cannot declare queue {queue!r} and its bindings again: NOT_FOUND - no queue")
        await remake(queue, channel)

    for queue in (flaky, steady):
        await t.declare_queue(queue, auto_delete=True)
        await t.consume(queue, seen.collect, on_restored=seen.on_restored(queue))
    monkeypatch.setattr(t, "_remake_queue", remake_failing_once)
    dying = t._consuming
    assert dying is not None
    await (await dying.get_underlay_channel()).basic_ack(999_999)
    await until(lambda: sorted(restored) == sorted([flaky, steady]))
    assert all(c.active and c.channel is t._consuming for c in t._consumers) and not failures
    assert f"event=amqp_consumer_restore_failed queue={flaky} attempt=1" in caplog.text
    assert "event=amqp_consumer_lost" not in caplog.text
    await asyncio.sleep(0.2)
    assert sorted(restored) == sorted([flaky, steady])   # once each


async def test_a_queue_the_broker_will_not_make_again_loses_only_its_consumer(
        open_transport: Open, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """After a shared channel's error the queues are made again on channels of their own (``RESTORE_CHANNELS``
    at once; one here). A declaration the broker refuses (the queue now differs from what the transport
    declared) closes its channel: that queue's consumer is given up and logged, the next queue is made on a
    new channel, and every other consumer comes back."""
    monkeypatch.setattr(amqp, "RESTORE_CHANNELS", 1)
    t = await open_transport(shared_consumer_channel=True)
    refused, *others = [unique("amqp-restore-refused") for _ in range(3)]
    seen = Seen()
    got, restored, collect, on_restored = seen.got, seen.restored, seen.collect, seen.on_restored

    await t.declare_queue(refused)   # not auto-delete: it outlives the channel
    for queue in others:
        await t.declare_queue(queue, auto_delete=True)
    for queue in (refused, *others):   # the refused queue is made again first
        await t.consume(queue, collect, on_restored=on_restored(queue))
    t._queues[refused] = QueueSpec(durable=True)   # the broker's queue is not durable: PRECONDITION_FAILED
    dying = t._consuming
    assert dying is not None
    try:
        await (await dying.get_underlay_channel()).basic_ack(999_999)
        await until(lambda: sorted(restored) == sorted(others))
        consumers = {c.queue: c for c in t._consumers}
        assert not consumers[refused].active and all(consumers[q].active for q in others)
        assert f"event=amqp_consumer_lost queue={refused}" in caplog.text
        for queue in others:
            await t.publish(queue, queue.encode(), exchange="")
        await until(lambda: sorted(got) == sorted(q.encode() for q in others))
        await asyncio.sleep(0.2)
        assert sorted(restored) == sorted(others)   # once each
    finally:
        await _delete(t, refused)


async def test_a_consumer_whose_channel_closes_as_it_starts_is_started_again(
        open_transport: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared channel can close while a consumer's ``consume-ok`` is on its way (another consumer's
    NOT_FOUND closes it, as in a restore at 10,000 agents). The channel's close callback has then listed the
    consumers to restore without that one: its start fails and is tried again, instead of leaving it on a
    closed channel."""
    monkeypatch.setattr(amqp, "RESTORE_RETRY_INITIAL", 0.05)
    t = await open_transport(shared_consumer_channel=True)
    queues = [unique("amqp-closed-as-started") for _ in range(2)]
    seen = Seen()
    for queue in queues:
        await t.declare_queue(queue, auto_delete=True)
        await t.consume(queue, seen.collect, on_restored=seen.on_restored(queue))
    basic_consume = t._basic_consume
    closing = [queues[1]]

    async def consume_then_close(ch: Any, consumer: Any, generation: int) -> str:
        tag = await basic_consume(ch, consumer, generation)
        if consumer.queue in closing:
            closing.remove(consumer.queue)
            await (await ch.get_underlay_channel()).basic_ack(999_999)   # the broker closes the channel ...
            await until(lambda: ch.is_closed)
            await asyncio.sleep(0.2)   # ... and its close callback runs before consume-ok is taken in
        return tag

    monkeypatch.setattr(t, "_basic_consume", consume_then_close)
    dying = t._consuming
    assert dying is not None
    await (await dying.get_underlay_channel()).basic_ack(999_999)
    await until(lambda: set(seen.restored) == set(queues) and not closing
                and all(c.channel is not None and not c.channel.is_closed for c in t._consumers))
    for queue in queues:
        await t.publish(queue, queue.encode())
    await until(lambda: sorted(seen.got) == sorted(q.encode() for q in queues))


async def test_a_reconnection_restore_is_bounded_per_operation_and_tries_a_queue_again(
        private_rabbit: PrivateRabbit, open_transport: Open, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """After a reconnection the queues are made again, and their consumers started, on ``RESTORE_CHANNELS``
    channels (one here), each operation bounded by ``publish_timeout``, the whole not by ``connect_timeout``:
    a restore longer than that (here 3 × 0.4 s against 1 s; ten connections of a 10,000-agent fleet after a
    broker restart) is not cut off and begun again. A queue the broker did not find (as while it still
    deletes the old one) is tried again; every consumer consumes, and then the callbacks run, once."""
    monkeypatch.setattr(amqp, "RESTORE_CHANNELS", 1)
    monkeypatch.setattr(amqp, "RESTORE_RETRY_INITIAL", 0.05)
    t = await open_transport(shared_consumer_channel=True, connect_timeout=1.0)
    queues = [unique("amqp-reconnect-restore") for _ in range(3)]
    seen = Seen()
    for queue in queues:
        await t.declare_queue(queue, auto_delete=True)   # transient: the restart deletes them
        await t.consume(queue, seen.collect)
    remake, start = t._remake_queue, t._start_consumer
    failures = [queues[1]]

    async def failing_once(queue: str, channel: Any) -> None:
        if queue in failures:
            failures.remove(queue)
            raise TransportError(f"cannot declare queue {queue!r} and its bindings again: NOT_FOUND - no queue")
        await remake(queue, channel)

    async def slow_start(consumer: Any) -> None:
        await asyncio.sleep(0.4)
        await start(consumer)

    callbacks: list[bool] = []

    async def on_reconnect() -> None:
        callbacks.append(all(c.channel is not None for c in t._consumers))

    t.on_reconnect(on_reconnect)
    monkeypatch.setattr(t, "_remake_queue", failing_once)
    monkeypatch.setattr(t, "_start_consumer", slow_start)
    await asyncio.to_thread(private_rabbit.restart)
    await until(lambda: t.reconnects == 1 and bool(callbacks))
    assert callbacks == [True] and not failures
    cut_off = [r.message for r in caplog.records   # (refused connections while the broker was down: expected)
               if "event=amqp_reconnect_failed" in r.message and "Connect call failed" not in r.message]
    assert not cut_off
    assert f"event=amqp_consumer_restore_failed queue={queues[1]} attempt=1" in caplog.text
    assert "event=amqp_consumer_lost" not in caplog.text
    for queue in queues:   # made again, bound under its name, consumed
        await t.publish(queue, queue.encode())
    await until(lambda: sorted(seen.got) == sorted(q.encode() for q in queues))


async def _delete(t: AmqpTransport, queue: str) -> None:
    conn = await t._wait_ready()
    ch = await conn.channel()
    await ch.queue_delete(queue)
    await ch.close()
