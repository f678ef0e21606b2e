"""StompTransport against a private RabbitMQ node with its STOMP plugin and a private ActiveMQ, that
the tests restart (the shared brokers are never touched here; see tests/support/rabbit.py and
tests/support/activemq.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from gvnfm.transport import Delivery, Message, TransportError, open_transport
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.transport.stomp import StompAddress, StompTransport
from gvnfm.transport.stomp_destinations import Dialect
from tests.support import rabbit
from tests.support.activemq import PrivateActiveMQ, activemq_installed
from tests.support.rabbit import PrivateRabbit
from tests.support.services import unique
from tests.support.transports import opened_transports

pytestmark = pytest.mark.rabbitmq

Open = Callable[..., Awaitable[StompTransport]]
stomp_rabbit = rabbit.stomp_rabbit     # the module's private node (fixture)


@pytest.fixture
async def open_stomp(stomp_rabbit: PrivateRabbit) -> AsyncIterator[Open]:
    async with AmqpTransport(stomp_rabbit.url, connect_timeout=30):   # the exchange, as the NFVO declares it
        pass
    async with opened_transports(lambda **options: StompTransport(stomp_rabbit.stomp_url, **options)) as make:
        yield make


async def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def test_urls_and_passwords() -> None:
    a = StompAddress.parse("stomp://admin:s%40cret@broker:61613/ob")
    assert (a.host, a.port, a.username, a.password, a.vhost, a.ssl) == ("broker", 61613, "admin", "s@cret", "ob", False)
    assert StompAddress.parse("stomp+ssl://u:p@h").port == 61613 and StompAddress.parse("stomp+ssl://u:p@h").ssl
    assert StompAddress.parse("stomp://u:p@h/").vhost == "/"
    assert StompAddress.parse("stomp://u:p@h/?dialect=activemq").dialect is Dialect.ACTIVEMQ
    for bad in ("stomp://h:99999/", "amqp://h/", "stomp://h/?dialect=kafka"):
        with pytest.raises(TransportError) as info:
            StompAddress.parse(bad)
        assert "s%40cret" not in str(info.value)
    assert "s3cret" not in repr(StompTransport("stomp://admin:s3cret@host:61613/"))
    assert isinstance(open_transport("stomp://u:p@h:61613/"), StompTransport)
    assert isinstance(open_transport("stomp+ssl://u:p@h:61614/"), StompTransport)
    # the VNFM's EMS side: the same STOMP broker with the EMS credentials, as over AMQP
    from gvnfm.cli.vnfm_cmd import ems_connection_url
    from gvnfm.vnfm.settings import VnfmSettings

    assert ems_connection_url(VnfmSettings(broker="stomp://mgr:secret@h:61613/ob")) == "stomp://admin:openbaton@h:61613/ob"
    assert ems_connection_url(VnfmSettings(broker="amqp://m:s@h/", ems_broker="stomp://e:p@a:61614/")) == \
        "stomp://e:p@a:61614/"


async def test_bad_credentials_fail_at_once_without_the_password(stomp_rabbit: PrivateRabbit,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    t = StompTransport(stomp_rabbit.stomp_url.replace("guest:guest", "guest:wrong-pw-123"), connect_timeout=30)
    with pytest.raises(TransportError, match="refused") as info:
        await t.connect()
    assert time.monotonic() - started < 25          # not retried until the deadline
    assert "wrong-pw-123" not in str(info.value) and "wrong-pw-123" not in caplog.text


async def test_a_missing_exchange_is_a_clear_error(stomp_rabbit: PrivateRabbit) -> None:
    t = StompTransport(stomp_rabbit.stomp_url, exchange=unique("no-such-exchange"), connect_timeout=10)
    with pytest.raises(TransportError, match="STOMP cannot declare one"):
        await t.connect()


async def test_broker_restart_loses_no_durable_message_and_restores_consumers(
        stomp_rabbit: PrivateRabbit, open_stomp: Open) -> None:
    t, publisher = await open_stomp(), await open_stomp()
    queue, parked = unique("stomp-restart"), unique("stomp-parked")
    got: list[Message] = []
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message)
        await delivery.ack()

    t.on_reconnect(on_reconnect)
    await t.declare_queue(queue, durable=True)
    await t.consume(queue, collect, prefetch=4)
    await publisher.declare_queue(parked, durable=True)     # nobody consumes it until after the restart
    await publisher.publish(queue, b"before")
    await publisher.publish(parked, b"parked-1")
    await until(lambda: [m.body for m in got] == [b"before"])

    await asyncio.to_thread(stomp_rabbit.restart)
    async with asyncio.timeout(90):
        await reconnected.wait()
    assert t.reconnects >= 1 and t.connected
    await publisher.publish(queue, b"after")                # waits for its own reconnection
    await until(lambda: b"after" in [m.body for m in got])
    assert [m.body for m in got] == [b"before", b"after"]   # consumed once each

    late: list[Message] = []

    async def keep(delivery: Delivery) -> None:
        late.append(delivery.message)
        await delivery.ack()

    await t.consume(parked, keep)
    await until(lambda: [m.body for m in late] == [b"parked-1"])   # persistent in a durable queue: kept


async def test_a_pending_rpc_fails_fast_when_the_connection_is_lost(stomp_rabbit: PrivateRabbit,
                                                                   open_stomp: Open) -> None:
    server, client = await open_stomp(), await open_stomp()
    queue = unique("stomp-silent")
    seen = asyncio.Event()

    async def hold(delivery: Delivery) -> None:
        seen.set()
        await delivery.ack()

    await server.declare_queue(queue, auto_delete=True)
    await server.consume(queue, hold)
    call = asyncio.create_task(client.rpc(queue, b"?", timeout=120))
    async with asyncio.timeout(30):
        await seen.wait()
    restart = asyncio.create_task(asyncio.to_thread(stomp_rabbit.restart))
    with pytest.raises(TransportError, match="connection lost"):
        async with asyncio.timeout(60):
            await call
    await restart


async def test_a_peer_that_does_not_speak_stomp_is_a_clear_error_not_a_hang(stomp_rabbit: PrivateRabbit) -> None:
    """The AMQP port answers a STOMP frame with AMQP's protocol header: no CONNECTED, a clear error."""
    t = StompTransport(f"stomp://guest:guest@127.0.0.1:{stomp_rabbit.port}/", connect_timeout=3)
    with pytest.raises(TransportError, match="cannot connect") as info:
        await t.connect()
    assert "guest:guest" not in str(info.value)


async def test_an_error_frame_fails_the_operation_and_the_connection_comes_back(open_stomp: Open) -> None:
    t = await open_stomp()
    with pytest.raises(TransportError, match="NOT_FOUND"):
        await t.consume(unique("stomp-missing"), lambda d: d.ack())
    queue = unique("stomp-after-error")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    await t.declare_queue(queue, auto_delete=True)      # waits for the reconnection
    await t.consume(queue, collect)
    await t.publish(queue, b"fine")
    await until(lambda: got == [b"fine"])
    assert t.reconnects == 1


async def test_publishes_to_a_queue_at_once_share_one_probe_of_it(open_stomp: Open,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet's agents register at once after a reconnection: one throw-away connection checks the register
    queue for all of them (one each took a thousand sockets, past the broker's file descriptors); a question
    asked after that probe is answered by a new one, as the broker then stands."""
    t, owner = await open_stomp(), await open_stomp()
    queue = unique("stomp-register")
    got: list[bytes] = []

    async def collect(delivery: Delivery) -> None:
        got.append(delivery.message.body)
        await delivery.ack()

    await owner.declare_queue(queue, auto_delete=True)
    subscription = await owner.consume(queue, collect)
    opened = 0
    side_connection = StompTransport._side_connection

    async def counted(self: StompTransport) -> StompTransport:
        nonlocal opened
        opened += 1
        return await side_connection(self)

    monkeypatch.setattr(StompTransport, "_side_connection", counted)
    bodies = [f"registration-{i}".encode() for i in range(50)]
    answers = await asyncio.gather(*(t.publish_routed(queue, body, exchange="") for body in bodies))
    assert answers == [True] * 50 and opened == 1
    await until(lambda: sorted(got) == sorted(bodies))

    await subscription.cancel()     # its last consumer gone, the auto-delete queue goes
    async with asyncio.timeout(30):
        while await t.publish_routed(queue, b"late", exchange=""):
            await asyncio.sleep(0.1)
    assert opened >= 2 and b"late" not in got


@pytest.fixture(scope="module")
def private_activemq() -> Iterator[PrivateActiveMQ]:
    if not activemq_installed():
        pytest.fail("ActiveMQ is not installed (run scripts/ensure-services.sh)")
    broker = PrivateActiveMQ()
    try:
        broker.start()
        yield broker
    finally:
        broker.cleanup()


@pytest.mark.activemq
async def test_activemq_restart_loses_no_persistent_message_and_restores_consumers(
        private_activemq: PrivateActiveMQ) -> None:
    t = StompTransport(private_activemq.url, reconnect_initial=0.2, reconnect_max=1.0, connect_timeout=30)
    publisher = StompTransport(private_activemq.url, reconnect_initial=0.2, reconnect_max=1.0, connect_timeout=30)
    await t.connect()
    await publisher.connect()
    try:
        assert t.dialect is Dialect.ACTIVEMQ
        queue, parked = unique("amq-restart"), unique("amq-parked")
        got: list[bytes] = []
        reconnected = asyncio.Event()

        async def on_reconnect() -> None:
            reconnected.set()

        async def collect(delivery: Delivery) -> None:
            got.append(delivery.message.body)
            await delivery.ack()

        t.on_reconnect(on_reconnect)
        await t.declare_queue(queue, durable=True)
        await t.consume(queue, collect, prefetch=4)
        await publisher.declare_queue(parked, durable=True)
        await publisher.publish(queue, b"before")
        await publisher.publish(parked, b"parked-1")
        await until(lambda: got == [b"before"])

        await asyncio.to_thread(private_activemq.restart)
        async with asyncio.timeout(120):
            await reconnected.wait()
        await publisher.publish(queue, b"after")
        await until(lambda: b"after" in got)
        assert got == [b"before", b"after"]
        late: list[bytes] = []

        async def keep(delivery: Delivery) -> None:
            late.append(delivery.message.body)
            await delivery.ack()

        await t.consume(parked, keep)
        await until(lambda: late == [b"parked-1"])
    finally:
        await t.close()
        await publisher.close()
