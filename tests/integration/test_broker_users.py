"""Host users on the real broker: with VM A's credentials, everything the security review found is
refused by RabbitMQ itself (reading B's queue, binding to ``#``, publishing to the VNFM endpoint,
registering as B), while everything A's EMS needs works. Users are made through the management API
exactly as the VNFM makes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import aio_pika
import aiormq
import pytest

from gvnfm.vnfm.broker_users import BrokerUsers, broker_vhost, hosts_pattern, management_url, vnfr_hosts_pattern
from tests.support.broker_admin import BrokerAdmin
from tests.support.services import unique

pytestmark = pytest.mark.rabbitmq

EXCHANGE = "openbaton-exchange"
REGISTER = "ems.generic.register"
#: ACCESS_REFUSED (permissions, topic permissions) and PRECONDITION_FAILED (user_id not the connection's)
REFUSED = (aiormq.exceptions.ChannelAccessRefused, aiormq.exceptions.ChannelPreconditionFailed)


def as_user(vhost_url: str, user: str, password: str) -> str:
    rest = vhost_url.split("@", 1)[1]
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


@pytest.fixture
async def users(amqp_vhost: str) -> AsyncIterator[BrokerUsers]:
    users = BrokerUsers(management_url(amqp_vhost), vhost=broker_vhost(amqp_vhost), exchange=EXCHANGE,
                        register_key=REGISTER)
    assert await users.probe()
    created: list[str] = []
    real_create = users.create

    async def create(hosts: str) -> tuple[str, str]:
        user, password = await real_create(hosts)
        created.append(user)
        return user, password

    users.create = create  # type: ignore[method-assign]
    try:
        yield users
    finally:
        for user in created:
            await users.delete(user)
        await users.close()


@pytest.fixture
async def vnfm(amqp_vhost: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """The VNFM's side (guest): the exchange, its endpoint queue and the registration queue."""
    conn = await aio_pika.connect(amqp_vhost)
    ch = await conn.channel()
    ex = await ch.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    for name in ("generic", REGISTER):
        q = await ch.declare_queue(name, durable=True)
        await q.bind(ex, routing_key=name)
    try:
        yield ch
    finally:
        await conn.close()


async def refused(url: str, action: object) -> None:
    """``action(channel)`` on a fresh connection as that user is refused by the broker."""
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel()
        with pytest.raises(REFUSED):
            await action(ch)  # type: ignore[operator]
    finally:
        await conn.close()


async def test_a_host_user_cannot_touch_what_is_not_its_own(amqp_vhost: str, users: BrokerUsers,
                                                           vnfm: aio_pika.abc.AbstractChannel) -> None:
    user_a, pw_a = await users.create(hosts_pattern(["web-1111111"]))
    user_b, pw_b = await users.create(hosts_pattern(["web-2222222"]))
    url_a, url_b = as_user(amqp_vhost, user_a, pw_a), as_user(amqp_vhost, user_b, pw_b)

    # B's EMS sets up its queue; A's EMS its own, registers and replies: all allowed
    conn_b = await aio_pika.connect(url_b)
    ch_b = await conn_b.channel()
    q_b = await ch_b.declare_queue("vnfm.web-2222222.actions", auto_delete=True)
    await q_b.bind(EXCHANGE, routing_key="vnfm.web-2222222.actions")
    conn_a = await aio_pika.connect(url_a)
    try:
        ch_a = await conn_a.channel()
        q_a = await ch_a.declare_queue("vnfm.web-1111111.actions", auto_delete=True)
        await q_a.bind(EXCHANGE, routing_key="vnfm.web-1111111.actions")
        ex_a = await ch_a.get_exchange(EXCHANGE, ensure=False)
        await ex_a.publish(aio_pika.Message(b'{"hostname":"web-1111111"}', user_id=user_a), routing_key=REGISTER)
        reply_q = await vnfm.declare_queue("", exclusive=True)
        await reply_q.bind(EXCHANGE, routing_key=reply_q.name)
        await ex_a.publish(aio_pika.Message(b'{"status":0}', user_id=user_a), routing_key=reply_q.name)
        registration = await (await vnfm.get_queue(REGISTER)).get(timeout=10)
        assert registration is not None and registration.user_id == user_a
        reply = await reply_q.get(timeout=10)
        assert reply is not None and reply.user_id == user_a
    finally:
        await conn_a.close()

    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        pass

    async def read_b(ch: aio_pika.abc.AbstractChannel) -> None:
        q = await ch.get_queue("vnfm.web-2222222.actions", ensure=False)
        await q.consume(ignore)

    async def bind_everything(ch: aio_pika.abc.AbstractChannel) -> None:
        q = await ch.declare_queue("vnfm.web-1111111.actions", auto_delete=True)
        await q.bind(EXCHANGE, routing_key="#")

    async def bind_b_key(ch: aio_pika.abc.AbstractChannel) -> None:
        q = await ch.declare_queue("vnfm.web-1111111.actions", auto_delete=True)
        await q.bind(EXCHANGE, routing_key="vnfm.web-2222222.actions")

    async def spy_queue(ch: aio_pika.abc.AbstractChannel) -> None:
        await ch.declare_queue("spy", exclusive=True)

    async def server_named_queue(ch: aio_pika.abc.AbstractChannel) -> None:
        await ch.declare_queue("", exclusive=True)

    def publish(routing_key: str, exchange: str = EXCHANGE, user_id: str | None = user_a) -> object:
        async def go(ch: aio_pika.abc.AbstractChannel) -> None:
            ex = ch.default_exchange if exchange == "" else await ch.get_exchange(exchange, ensure=False)
            await ex.publish(aio_pika.Message(b'{"action":"EXECUTE"}', user_id=user_id), routing_key=routing_key)
        return go

    await refused(url_a, read_b)                                          # reading B's queue
    await refused(url_a, bind_everything)                                 # binding to '#'
    await refused(url_a, bind_b_key)                                      # binding B's key
    await refused(url_a, spy_queue)                                       # a queue of its own choosing
    await refused(url_a, server_named_queue)
    await refused(url_a, publish("generic"))                              # the VNFM endpoint
    await refused(url_a, publish("generic", exchange=""))                 # ... through the default exchange
    await refused(url_a, publish("vnfm.web-2222222.actions"))             # a command to B
    await refused(url_a, publish("vnfm.web-2222222.actions", exchange=""))
    await refused(url_a, publish("nfvo.vnfm.actions"))                    # the NFVO
    await refused(url_a, publish(REGISTER, user_id=user_b))               # registering as B
    await refused(url_a, publish(REGISTER, exchange="", user_id=user_a))  # the register queue directly
    # nothing of it reached the VNFM's endpoint or B's queue
    assert await (await vnfm.get_queue("generic")).get(fail=False) is None
    assert await q_b.get(fail=False) is None
    await conn_b.close()


async def test_users_before_and_after_the_nfvo_names_the_hosts(users: BrokerUsers) -> None:
    user, _ = await users.create(vnfr_hosts_pattern("web"))
    assert await users.user_of("web-1234567") == user and await users.serves_host(user, "web-7654321")
    assert await users.user_of("webx-1234567") is None and not await users.serves_host(user, "web-12a")
    await users.pin(user, ["web-1234567", "web-7654321"])
    assert await users.user_of("web-1111111") is None
    assert await users.users_of(["web-1234567", "db-1"]) == {user: ["web-1234567"]}
    # SCALE_IN of one: narrowed to the other; RELEASE of the last: deleted
    await users.release(["web-1234567"], keep=["web-7654321"])
    assert await users.user_of("web-1234567") is None and await users.user_of("web-7654321") == user
    await users.release(["web-7654321"])
    assert await users.users_of(["web-7654321"]) == {}


async def test_a_user_named_like_a_host_user_is_not_one(amqp_vhost: str, users: BrokerUsers,
                                                      rabbit_admin: BrokerAdmin) -> None:
    """Regression (netns e2e hang): the operator's ``--ems-user`` named ``gvnfm-ems-…`` with ``.*`` on the
    vhost was taken for a host user serving every host. ``user_of`` could name it instead of the host's
    own user, so the VNFM refused the host's replies (reason=not_the_requested_host) and waited forever;
    RELEASE_RESOURCES deleted it."""
    vhost = broker_vhost(amqp_vhost)
    operator = unique("gvnfm-ems-0")       # sorts before any host user in the management API's listing
    rabbit_admin.add_user(operator, "pw")
    try:
        rabbit_admin.set_permissions(vhost, operator, ".*", ".*", ".*")
        user, _ = await users.create(vnfr_hosts_pattern("iperf-server"))
        assert await users.user_of("iperf-server-9498039") == user
        await users.pin(user, ["iperf-server-9498039"])
        users._served.clear()               # as another worker: from the broker's record
        assert await users.user_of("iperf-server-9498039") == user
        assert await users.may_register(user, "iperf-server-9498039")
        assert not await users.may_register(operator, "iperf-server-9498039")   # still refused
        assert await users.may_register(operator, "db-1")     # a host of the shared credentials
        assert not await users.may_register(user, "db-1")     # a host user registers only its own hosts
        assert await users.users_of(["iperf-server-9498039"]) == {user: ["iperf-server-9498039"]}
        await users.release(["iperf-server-9498039"])
        assert operator in rabbit_admin.vhost_users(vhost)    # not the VNFM's to delete
        assert await users.user_of("iperf-server-9498039") is None
    finally:
        rabbit_admin.delete_user(operator)


async def test_a_killed_vnfms_unpinned_users_are_swept_and_nothing_else(amqp_vhost: str, users: BrokerUsers,
                                                                        rabbit_admin: BrokerAdmin) -> None:
    """At start a VNFM deletes the host users a killed worker left before the NFVO named their hosts: not
    pinned and named by no running operation. Kept: a pinned user (its hosts may live), one a running
    operation names, another endpoint's (another VNFM type's store knows its operations), the operator's
    ``gvnfm-ems-…`` user, and one pinned between the listing and the deletion (its operation ended)."""
    vhost = broker_vhost(amqp_vhost)
    leaked, _ = await users.create(vnfr_hosts_pattern("lost"))
    named, _ = await users.create(vnfr_hosts_pattern("busy"))
    pinned, _ = await users.create(vnfr_hosts_pattern("live"))
    await users.pin(pinned, ["live-1234567"])
    late, _ = await users.create(vnfr_hosts_pattern("late"))
    other = BrokerUsers(management_url(amqp_vhost), vhost=vhost, exchange=EXCHANGE, register_key="ems.other.register")
    assert await other.probe()
    others, _ = await other.create(vnfr_hosts_pattern("theirs"))
    operator = unique("gvnfm-ems-0")
    rabbit_admin.add_user(operator, "pw")
    try:
        rabbit_admin.set_permissions(vhost, operator, ".*", ".*", ".*")

        async def in_use() -> list[str]:
            await users.pin(late, ["late-7654321"])     # its operation pins it while the sweep reads the store
            return [named]

        assert await users.sweep(in_use) == [leaked]
        left = set(rabbit_admin.vhost_users(vhost))
        assert leaked not in left
        assert {named, pinned, late, others, operator} <= left
        assert await users.sweep(in_use) == []        # nothing more on a second start
    finally:
        await other.delete(others)
        await other.close()
        rabbit_admin.delete_user(operator)
