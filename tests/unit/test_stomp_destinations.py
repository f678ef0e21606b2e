"""The AMQP model on STOMP destinations, per broker (pure functions)."""

from __future__ import annotations

from gvnfm.transport.stomp_destinations import (
    Dialect,
    QueueSpec,
    consume_subscriptions,
    declare_subscriptions,
    publish_destination,
    reply_destination,
    reply_to_of,
    routing_key_of,
)

R, A = Dialect.RABBITMQ, Dialect.ACTIVEMQ
EX = "openbaton-exchange"


def test_the_broker_is_read_from_the_server_header() -> None:
    assert Dialect.from_server("ActiveMQ/5.17.2") is A
    assert Dialect.from_server("RabbitMQ/3.10.8") is R
    assert Dialect.from_server(None) is R


def test_publishing() -> None:
    assert publish_destination(R, EX, "vnfm.h1.actions") == "/exchange/openbaton-exchange/vnfm.h1.actions"
    assert publish_destination(R, "", "ems.generic.register") == "/amq/queue/ems.generic.register"
    assert publish_destination(A, EX, "vnfm.h1.actions") == "/topic/VirtualTopic.vnfm.h1.actions"
    assert publish_destination(A, "", "ems.generic.register") == "/queue/ems.generic.register"


def test_replies() -> None:
    assert reply_to_of("/reply-queue/amq.gen-x") == "amq.gen-x"           # what an AMQP consumer sees
    assert reply_to_of("/remote-temp-queue/ID:1") == "/remote-temp-queue/ID:1"
    assert reply_to_of("") is None
    assert reply_destination(R, "amq.gen-x") == "/amq/queue/amq.gen-x"
    assert reply_destination(R, "amq.rabbitmq.reply-to.abc") == "/amq/queue/amq.rabbitmq.reply-to.abc"
    # a direct reply-to name is base64: a "/" in it is escaped (RabbitMQ splits destinations at "/")
    assert (reply_destination(R, "amq.rabbitmq.reply-to.g1h2AA.lic/1CA+O==")
            == "/amq/queue/amq.rabbitmq.reply-to.g1h2AA.lic%2F1CA+O==")
    assert publish_destination(R, EX, "a/b") == "/exchange/openbaton-exchange/a%2Fb"
    assert reply_destination(A, "/remote-temp-queue/ID:1") == "/remote-temp-queue/ID:1"


def test_declaring_on_rabbitmq_names_and_binds_the_queue() -> None:
    spec = QueueSpec(durable=True)
    (sub,) = declare_subscriptions(R, EX, "ep", spec, ["ep"])
    assert sub.destination == "/exchange/openbaton-exchange/ep"
    assert sub.headers == {"durable": "true", "auto-delete": "false", "exclusive": "false", "x-queue-name": "ep"}
    (plain,) = declare_subscriptions(R, EX, "own", QueueSpec(exclusive=True, auto_delete=True), [])
    assert plain.destination == "/queue/own" and plain.headers["exclusive"] == "true"


def test_consuming() -> None:
    (sub,) = consume_subscriptions(R, "ep", QueueSpec(durable=True), ["ep"], 8)
    assert (sub.destination, sub.headers) == ("/amq/queue/ep", {"prefetch-count": "8"})
    assert consume_subscriptions(R, "ep", None, [], 0)[0].headers == {}
    subs = consume_subscriptions(A, "gvnfm.ep.worker.1", QueueSpec(exclusive=True), ["gvnfm.ep.ems-registered"], 0)
    assert [s.destination for s in subs] == ["/queue/gvnfm.ep.worker.1", "/topic/VirtualTopic.gvnfm.ep.ems-registered"]
    assert subs[0].headers == {"activemq.prefetchSize": "1000"}
    subs = consume_subscriptions(A, "vnfm.h1.actions", QueueSpec(), ["vnfm.h1.actions"], 4)
    assert [s.destination for s in subs] == ["/queue/vnfm.h1.actions",
                                             "/queue/Consumer.vnfm_h1_actions.VirtualTopic.vnfm.h1.actions"]
    assert [s.destination for s in declare_subscriptions(A, EX, "vnfm.h1.actions", QueueSpec(), ["vnfm.h1.actions"])] \
        == ["/queue/Consumer.vnfm_h1_actions.VirtualTopic.vnfm.h1.actions"]


def test_routing_keys_of_deliveries() -> None:
    assert routing_key_of("/exchange/openbaton-exchange/vnfm.h1.actions") == "vnfm.h1.actions"
    assert routing_key_of("/queue/ems.generic.register") == "ems.generic.register"
    assert routing_key_of("/topic/VirtualTopic.vnfm.h1.actions") == "vnfm.h1.actions"
