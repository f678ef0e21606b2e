"""Registration with the NFVO: an unusable or missing answer is asked again, a refusal for
good of the broker is not."""

from __future__ import annotations

import pytest

from gvnfm.catalogue.queues import NFVO_REGISTRATION_QUEUE
from gvnfm.transport import BrokerRefused, Delivery
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.vnfm import nfvo_client


async def test_an_unusable_answer_is_asked_again_until_it_is_usable() -> None:
    broker = InMemoryBroker()
    nfvo, vnfm = InMemoryTransport(broker), InMemoryTransport(broker)
    await nfvo.connect()
    await vnfm.connect()
    answers = [b"<html>not json", b'{"rabbitUsername": "generic", "rabbitPassword": "pw"}']
    asked: list[bytes] = []

    async def on_register(delivery: Delivery) -> None:
        asked.append(delivery.message.body)
        await nfvo.reply(delivery.message, answers[len(asked) - 1])
        await delivery.ack()

    await nfvo.declare_queue(NFVO_REGISTRATION_QUEUE, durable=True)
    await nfvo.consume(NFVO_REGISTRATION_QUEUE, on_register)
    creds = await nfvo_client.register(vnfm, endpoint="generic", type_="generic", description="d", tries=3,
                                       pause=0.01)
    assert creds == {"rabbitUsername": "generic", "rabbitPassword": "pw"} and len(asked) == 2


async def test_no_answer_fails_after_the_tries_and_a_refusal_at_once() -> None:
    vnfm = InMemoryTransport(InMemoryBroker())
    await vnfm.connect()
    with pytest.raises(nfvo_client.NfvoError, match="after 2 attempts"):
        await nfvo_client.register(vnfm, endpoint="generic", type_="generic", description="d", tries=2,
                                   pause=0.01, timeout=0.05)

    calls = 0

    async def refused(*args: object, **kwargs: object) -> bytes:
        nonlocal calls
        calls += 1
        raise BrokerRefused("ACCESS_REFUSED - access to exchange 'openbaton-exchange' refused")

    vnfm.rpc = refused  # type: ignore[method-assign]
    with pytest.raises(nfvo_client.NfvoError, match="refused the registration"):
        await nfvo_client.register(vnfm, endpoint="generic", type_="generic", description="d", tries=5, pause=0.01)
    assert calls == 1
