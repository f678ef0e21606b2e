"""One contract, four brokers: every test runs against the in-memory broker, a real RabbitMQ over AMQP
(a channel per consumer, and all consumers on one channel as the EMS fleet has them), the same RabbitMQ
over STOMP (its STOMP plugin, a virtual host of the test's own) and ActiveMQ over STOMP.

The in-memory transport is the embedded default and the unit tests' broker; these tests pin it to
RabbitMQ's behaviour for everything the VNFM and the EMS rely on. Every queue and routing key is
unique (other test runs share the brokers). Where STOMP cannot express an AMQP feature, the test says
so with ``stomp_lacks`` (each such gap is in docs/compatibility.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gvnfm.transport import Delivery, Message, RpcTimeout, Transport, TransportError
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.transport.stomp import StompTransport
from gvnfm.transport.stomp_destinations import Dialect
from tests.support.services import unique

Factory = Callable[[], Awaitable[Transport]]


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.rabbitmq),
                        pytest.param("amqp-shared-channel", marks=pytest.mark.rabbitmq),
                        pytest.param("stomp-rabbitmq", marks=pytest.mark.rabbitmq),
                        pytest.param("stomp-activemq", marks=pytest.mark.activemq)])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """``await connect()`` opens one more connection to the same broker; all are closed afterwards."""
    opened: list[Transport] = []
    if request.param == "memory":
        broker = InMemoryBroker()

        def make() -> Transport:
            return InMemoryTransport(broker)
    elif request.param.startswith("amqp"):
        url = request.getfixturevalue("amqp_url")
        shared = request.param == "amqp-shared-channel"   # the EMS fleet's: all consumers on one channel

        def make() -> Transport:
            return AmqpTransport(url, connect_timeout=5, shared_consumer_channel=shared)
    else:
        url = request.getfixturevalue("stomp_vhost" if request.param == "stomp-rabbitmq" else "activemq_url")

        def make() -> Transport:
            return StompTransport(url, connect_timeout=5)

    async def factory() -> Transport:
        transport = make()
        await transport.connect()
        opened.append(transport)
        return transport

    yield factory
    for transport in opened:
        await transport.close()


@pytest.fixture
async def t(connect: Factory) -> Transport:
    return await connect()


def stomp_lacks(t: Transport, why: str, *, broker: Dialect | None = None) -> bool:
    """True (and the reason printed) when ``t`` is a STOMP transport (on ``broker``, or any) that cannot
    express what the assertion that follows checks."""
    if isinstance(t, StompTransport) and (broker is None or t.dialect is broker):
        print(f"not on STOMP/{t.dialect}: {why}")
        return True
    return False


class Collector:
    """A consumer handler that records (and acks) what it gets."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> None:
        self.messages.append(delivery.message)
        await delivery.ack()
        self._changed.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m.body for m in self.messages]

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.bodies


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


async def settle(seconds: float = 0.3) -> None:
    """Give a broker time to deliver what it would deliver (to assert that nothing arrives)."""
    await asyncio.sleep(seconds)


async def test_publish_routed_tells_whether_a_queue_took_it_and_closes_nothing(t: Transport) -> None:
    queue = unique("ctr-routed")
    if stomp_lacks(t, "ActiveMQ makes a queue on the first SEND: always True", broker=Dialect.ACTIVEMQ):
        return
    for _ in range(20):   # a missing queue, again and again (an EMS waiting for its VNFM)
        assert await t.publish_routed(queue, b"lost", exchange="") is False
    if not stomp_lacks(t, "no 'mandatory' in STOMP: whether a key is bound on the topic exchange is unknown"):
        assert await t.publish_routed(queue, b"lost", exchange=None) is False     # nothing bound on the topic
    await t.declare_queue(queue, auto_delete=True)                           # bound with its own name
    got = Collector()
    await t.consume(queue, got)
    assert await t.publish_routed(queue, b"default", exchange="") is True
    assert await t.publish_routed(queue, b"topic") is True
    assert sorted(await got.wait_for(2)) == [b"default", b"topic"]
    await settle()
    assert sorted(got.bodies) == [b"default", b"topic"]   # the returned ones were never delivered
    if isinstance(t, AmqpTransport | StompTransport):
        assert t.reconnects == 0 and t.connected           # no channel or connection was closed for it


async def test_topic_routing_by_routing_key(t: Transport) -> None:
    p = unique("ctr-topic")
    if stomp_lacks(t, "AMQP topic wildcards are not mapped to ActiveMQ's", broker=Dialect.ACTIVEMQ):
        return
    star, hash_, named = Collector(), Collector(), Collector()
    for queue, keys, handler in ((f"{p}-star", [f"{p}.a.*"], star), (f"{p}-hash", [f"{p}.#"], hash_),
                                 (f"{p}.named", [], named)):
        await t.declare_queue(queue, auto_delete=True, bind=not keys)
        for key in keys:
            await t.bind(queue, key)
        await t.consume(queue, handler)
    await t.publish(f"{p}.a.b", b"1")
    await t.publish(f"{p}.c", b"2")
    await t.publish(f"{p}.a.b.c", b"3")
    await t.publish(f"{p}.named", b"4")
    await t.publish(p, b"5")
    assert sorted(await hash_.wait_for(5)) == [b"1", b"2", b"3", b"4", b"5"]   # '#' matches zero words too
    assert await star.wait_for(1) == [b"1"]
    assert await named.wait_for(1) == [b"4"]
    await settle()
    assert star.bodies == [b"1"] and named.bodies == [b"4"] and len(hash_.bodies) == 5
    assert {m.routing_key for m in hash_.messages} == {f"{p}.a.b", f"{p}.c", f"{p}.a.b.c", f"{p}.named", p}


async def test_default_exchange_routes_to_the_queue_named_by_the_key(t: Transport) -> None:
    queue = unique("ctr-default")
    got = Collector()
    await t.declare_queue(queue, auto_delete=True, bind=False)
    await t.consume(queue, got)
    await t.publish(queue, b"topic")            # not bound to the topic exchange: dropped
    await t.publish(queue, b"direct", exchange="")
    assert await got.wait_for(1) == [b"direct"]
    await settle()
    assert got.bodies == [b"direct"]
    assert got.messages[0].content_type == "text/plain"


async def test_unroutable_messages_are_dropped(t: Transport) -> None:
    key = unique("ctr-nowhere")
    if stomp_lacks(t, "ActiveMQ makes a queue on the first SEND: nothing is unroutable", broker=Dialect.ACTIVEMQ):
        return
    await t.publish(key, b"lost on the topic exchange")
    await t.publish(key, b"lost on the default exchange", exchange="")
    await t.declare_queue(key, auto_delete=True)       # created afterwards: must stay empty
    got = Collector()
    await t.consume(key, got)
    await settle()
    assert got.bodies == []
    await t.publish(key, b"now routed")
    assert await got.wait_for(1) == [b"now routed"]


async def test_headers_and_properties_travel(t: Transport) -> None:
    queue = unique("ctr-props")
    got = Collector()
    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, got)
    await t.publish(queue, b"x", reply_to="somewhere", correlation_id="cid-1", headers={"k": "v", "n": 3})
    await got.wait_for(1)
    m = got.messages[0]
    headers: dict[str, object] = {"k": "v", "n": 3}
    if stomp_lacks(t, "header values are text in STOMP"):
        headers = {"k": "v", "n": "3"}
    assert (m.reply_to, m.correlation_id, m.headers, m.redelivered) == ("somewhere", "cid-1", headers, False)


async def _echo_server(t: Transport, queue: str, seen: list[str | None], delay: float = 0.0) -> None:
    async def on_request(delivery: Delivery) -> None:
        seen.append(delivery.message.correlation_id)
        request = json.loads(delivery.message.body)
        await asyncio.sleep(delay * request.get("delay", 0))
        await t.reply(delivery.message, json.dumps({"echo": request, "cid": delivery.message.correlation_id}).encode())
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, on_request, prefetch=10)


async def test_rpc_round_trip_and_correlation_ids(connect: Factory) -> None:
    server, client = await connect(), await connect()
    queue = unique("ctr-rpc")
    seen: list[str | None] = []
    await _echo_server(server, queue, seen, delay=0.05)

    answer = json.loads(await client.rpc(queue, b'{"n": 0}', timeout=5, correlation_id="step-42"))
    assert answer == {"echo": {"n": 0}, "cid": "step-42"}
    assert seen == ["step-42"]

    # Concurrent requests, answered in the reverse order, each get their own reply.
    bodies = [json.dumps({"n": i, "delay": 5 - i}).encode() for i in range(5)]
    replies = await asyncio.gather(*(client.rpc(queue, b, timeout=5) for b in bodies))
    assert [json.loads(r)["echo"]["n"] for r in replies] == list(range(5))
    generated = [json.loads(r)["cid"] for r in replies]
    assert all(generated) and len(set(generated)) == 5 and "step-42" not in generated
    assert sorted(seen[1:]) == sorted(generated)

    # The default exchange works for requests too (the EMS registers that way).
    direct = unique("ctr-rpc-direct")
    await _echo_server(server, direct, seen)
    assert json.loads(await client.rpc(direct, b'{"d": 1}', timeout=5, exchange=""))["echo"] == {"d": 1}


async def test_request_matches_answers_without_correlation_ids(connect: Factory) -> None:
    """``request`` is the Java NFVO's request/reply (a reply address per request, no correlation id): a
    peer answering without a correlation id (python-vnfm-sdk) reaches the right caller, also when
    concurrent requests are answered in the reverse order; a late answer reaches nobody."""
    server, client = await connect(), await connect()
    queue = unique("ctr-request")
    requests: list[Message] = []

    async def on_request(delivery: Delivery) -> None:
        requests.append(delivery.message)
        request = json.loads(delivery.message.body)
        await asyncio.sleep(0.05 * request.get("delay", 0))
        if not request.get("silent"):
            # as python-vnfm-sdk: publish to reply_to on the default exchange, no correlation id
            await server.publish(delivery.message.reply_to or "", json.dumps({"echo": request}).encode(), exchange="")
        await delivery.ack()

    await server.declare_queue(queue, auto_delete=True)
    await server.consume(queue, on_request, prefetch=10)

    assert json.loads(await client.request(queue, b'{"n": 0}', timeout=5)) == {"echo": {"n": 0}}
    assert requests[0].correlation_id is None and requests[0].reply_to
    bodies = [json.dumps({"n": i, "delay": 5 - i}).encode() for i in range(5)]
    replies = await asyncio.gather(*(client.request(queue, b, timeout=5) for b in bodies))
    assert [json.loads(r)["echo"]["n"] for r in replies] == list(range(5))
    assert len({m.reply_to for m in requests}) == len(requests) == 6     # one reply address per request
    assert all(m.correlation_id is None for m in requests)

    with pytest.raises(RpcTimeout):
        await client.request(queue, b'{"silent": true}', timeout=0.3)
    await server.publish(requests[-1].reply_to or "", b"too late", exchange="")   # dropped, nobody waits
    assert json.loads(await client.request(queue, b'{"n": 9}', timeout=5)) == {"echo": {"n": 9}}


async def test_rpc_timeout(connect: Factory) -> None:
    server, client = await connect(), await connect()
    silent = unique("ctr-silent")
    requests: list[Message] = []

    async def keep(delivery: Delivery) -> None:
        requests.append(delivery.message)
        await delivery.ack()

    await server.declare_queue(silent, auto_delete=True)
    await server.consume(silent, keep)
    started = time.monotonic()
    with pytest.raises(RpcTimeout):
        await client.rpc(silent, b"?", timeout=0.5, correlation_id="late-1")
    assert 0.45 <= time.monotonic() - started < 3
    with pytest.raises(RpcTimeout):                     # nobody listens at all
        await client.rpc(unique("ctr-void"), b"?", timeout=0.3)
    assert isinstance(RpcTimeout("x"), TransportError)

    # A reply arriving after the deadline is ignored and does not disturb the next call.
    assert requests and requests[0].correlation_id == "late-1"
    await server.reply(requests[0], b"too late")
    echo = unique("ctr-after-late")
    await _echo_server(server, echo, [])
    assert json.loads(await client.rpc(echo, b'{"ok": 1}', timeout=5))["echo"] == {"ok": 1}


async def test_prefetch_bounds_handler_concurrency(t: Transport) -> None:
    queue = unique("ctr-prefetch")
    running = peak = 0
    done: list[bytes] = []
    all_done = asyncio.Event()

    async def slow(delivery: Delivery) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(delivery.message.body)
        await delivery.ack()
        if len(done) == 12:
            all_done.set()

    await t.declare_queue(queue, auto_delete=True)
    for i in range(12):
        await t.publish(queue, str(i).encode())
    await t.consume(queue, slow, prefetch=3)
    async with asyncio.timeout(10):
        await all_done.wait()
    assert peak == 3
    assert sorted(done, key=int) == [str(i).encode() for i in range(12)]


async def test_a_slow_handler_does_not_block_the_next_delivery(t: Transport) -> None:
    queue = unique("ctr-concurrent")
    release = asyncio.Event()
    fast_done = asyncio.Event()
    order: list[str] = []

    async def handler(delivery: Delivery) -> None:
        body = delivery.message.body.decode()
        order.append(f"start {body}")
        if body == "slow":
            await release.wait()
        else:
            fast_done.set()
        order.append(f"end {body}")
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, handler, prefetch=2)
    await t.publish(queue, b"slow")
    await t.publish(queue, b"fast")
    async with asyncio.timeout(5):
        await fast_done.wait()
    assert order[:3] == ["start slow", "start fast", "end fast"]
    release.set()
    await until(lambda: "end slow" in order)


async def test_unacked_messages_are_redelivered_to_another_consumer_after_close(connect: Factory) -> None:
    first, second = await connect(), await connect()
    queue = unique("ctr-redeliver")
    await first.declare_queue(queue, auto_delete=False)
    holding = asyncio.Event()
    got_first: list[Message] = []

    async def ack_one_hold_other(delivery: Delivery) -> None:
        got_first.append(delivery.message)
        if delivery.message.body == b"acked":
            await delivery.ack()
        else:
            holding.set()
            await asyncio.Event().wait()     # never settles: interrupted by close()

    try:
        await first.consume(queue, ack_one_hold_other, prefetch=5)
        await first.publish(queue, b"acked")
        await first.publish(queue, b"held")
        async with asyncio.timeout(5):
            await holding.wait()
        await asyncio.sleep(0.1)   # the ack reaches the broker
        await first.close()

        got = Collector()
        await second.consume(queue, got)
        assert await got.wait_for(1) == [b"held"]
        assert got.messages[0].redelivered is True
        assert [m.redelivered for m in got_first] == [False, False]
        await settle()
        assert got.bodies == [b"held"]      # the acknowledged one is gone for good
    finally:
        await _delete_queue(second, queue)


async def _delete_queue(t: Transport, queue: str) -> None:
    """Test clean-up for non-auto-delete queues (not part of the Transport interface)."""
    if isinstance(t, AmqpTransport):
        conn = await t._wait_ready()
        ch = await conn.channel()
        await ch.queue_delete(queue)
        await ch.close()
    elif isinstance(t, InMemoryTransport):
        t.broker._delete_queue(queue)


async def test_competing_consumers_share_one_queue(connect: Factory) -> None:
    a, b = await connect(), await connect()
    queue = unique("ctr-compete")
    await a.declare_queue(queue, auto_delete=True)
    got_a, got_b = Collector(), Collector()

    async def slowly(collector: Collector, delivery: Delivery) -> None:
        await asyncio.sleep(0.02)
        await collector(delivery)

    await a.consume(queue, lambda d: slowly(got_a, d), prefetch=1)
    await b.consume(queue, lambda d: slowly(got_b, d), prefetch=1)
    for i in range(20):
        await a.publish(queue, str(i).encode())
    await until(lambda: len(got_a.bodies) + len(got_b.bodies) == 20, timeout=10)
    assert got_a.bodies and got_b.bodies
    assert sorted(got_a.bodies + got_b.bodies, key=int) == [str(i).encode() for i in range(20)]


async def _queue_exists(t: Transport, queue: str) -> bool:
    if isinstance(t, StompTransport):     # no passive declaration in STOMP: a SUBSCRIBE on a connection of its own
        return await t._queue_exists(queue)
    try:
        await t.bind(queue, queue)
    except TransportError as exc:
        assert "NOT_FOUND" in str(exc)
        return False
    return True


async def test_auto_delete_queue_disappears_after_its_last_consumer_leaves(connect: Factory) -> None:
    t, other = await connect(), await connect()
    queue = unique("ctr-autodelete")
    if stomp_lacks(t, "ActiveMQ has no auto-delete queues", broker=Dialect.ACTIVEMQ):
        return
    await t.declare_queue(queue, auto_delete=True)
    assert await _queue_exists(other, queue)
    one = await t.consume(queue, Collector())
    two = await other.consume(queue, Collector())
    await one.cancel()
    await settle(0.1)
    assert await _queue_exists(other, queue)
    await two.cancel()
    for _ in range(60):        # the broker deletes it asynchronously, right after the cancel
        if not await _queue_exists(other, queue):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"auto-delete queue {queue} still exists 3 s after its last consumer left")
    with pytest.raises(TransportError, match="NOT_FOUND"):
        await t.consume(queue, Collector())
    got = Collector()                   # still usable after the refusal
    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, got)
    await t.publish(queue, b"again")
    assert await got.wait_for(1) == [b"again"]


async def test_reject_with_requeue_redelivers_and_without_drops(t: Transport) -> None:
    queue = unique("ctr-reject")
    seen: list[tuple[bytes, bool]] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        m = delivery.message
        seen.append((m.body, m.redelivered))
        if m.body == b"requeue" and not m.redelivered:
            await delivery.reject(requeue=True)
        elif m.body == b"drop":
            await delivery.reject(requeue=False)
        else:
            await delivery.ack()
        if m.body == b"last":
            done.set()

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, handler, prefetch=1)
    for body in (b"requeue", b"drop", b"last"):
        await t.publish(queue, body)
    async with asyncio.timeout(5):
        await done.wait()
    await settle()
    assert seen.count((b"requeue", False)) == 1 and seen.count((b"requeue", True)) == 1
    assert seen.count((b"drop", False)) == 1 and len(seen) == 4


async def test_a_failing_handler_rejects_its_message_and_consuming_goes_on(t: Transport) -> None:
    queue = unique("ctr-failing")
    seen: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.message.body)
        if delivery.message.body == b"boom":
            raise RuntimeError("handler bug")
        await delivery.ack()
        await delivery.ack()            # settling twice is harmless

    await t.declare_queue(queue, auto_delete=True)
    await t.consume(queue, handler, prefetch=1)
    await t.publish(queue, b"boom")
    await t.publish(queue, b"fine")
    await until(lambda: b"fine" in seen)
    await settle()
    assert seen == [b"boom", b"fine"]     # rejected without requeue: not seen again


async def test_declarations_are_idempotent_and_errors_are_transport_errors(t: Transport) -> None:
    queue = unique("ctr-idem")
    await t.declare_queue(queue, auto_delete=True)
    await t.declare_queue(queue, auto_delete=True)
    await t.bind(queue, queue)
    with pytest.raises(TransportError, match="NOT_FOUND"):
        await t.bind(unique("ctr-missing"), "some.key")
    if not stomp_lacks(t, "ActiveMQ makes a queue on the first consumer", broker=Dialect.ACTIVEMQ):
        with pytest.raises(TransportError, match="NOT_FOUND"):
            await t.consume(unique("ctr-missing"), Collector())
    got = Collector()                    # the transport still works after the refusals
    await t.consume(queue, got)
    await t.publish(queue, b"ok")
    assert await got.wait_for(1) == [b"ok"]


async def test_closed_transport_refuses_operations(connect: Factory) -> None:
    t = await connect()
    await t.close()
    await t.close()                      # idempotent
    with pytest.raises(TransportError):
        await t.publish(unique("ctr-closed"), b"x")
    with pytest.raises(TransportError):
        await t.declare_queue(unique("ctr-closed"))
