"""What RabbitMQ's direct reply-to does with an answer sent twice (a VNFM re-sending after a crash
between publishing an answer and recording it), measured on the real broker. The outcome is in
docs/compatibility.md (correlation ids and direct reply-to) and in ``service.reply_at_most_once``."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from tests.support.services import unique

pytestmark = pytest.mark.rabbitmq


async def test_a_re_sent_answer_reaches_the_next_request_of_a_reused_channel_only(amqp_vhost: str) -> None:
    queue = unique("drt")
    nfvo = await aio_pika.connect(amqp_vhost)
    vnfm = await aio_pika.connect(amqp_vhost)
    try:
        vnfm_ch = await vnfm.channel()
        work = await vnfm_ch.declare_queue(queue, auto_delete=True)
        requests: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()

        async def on_request(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            await m.ack()
            await requests.put(m)

        await work.consume(on_request)

        async def requester() -> tuple[aio_pika.abc.AbstractChannel, asyncio.Queue[bytes]]:
            ch = await nfvo.channel()
            answers: asyncio.Queue[bytes] = asyncio.Queue()

            async def on_answer(m: aio_pika.abc.AbstractIncomingMessage) -> None:
                await answers.put(m.body)

            rq = await ch.get_queue("amq.rabbitmq.reply-to", ensure=False)
            await rq.consume(on_answer, no_ack=True)
            return ch, answers

        async def ask(ch: aio_pika.abc.AbstractChannel, body: bytes) -> aio_pika.abc.AbstractIncomingMessage:
            # as Spring AMQP's direct reply-to path: reply_to only, no correlation id
            await ch.default_exchange.publish(aio_pika.Message(body, reply_to="amq.rabbitmq.reply-to"), queue)
            return await asyncio.wait_for(requests.get(), 30)

        async def answer(to: str, body: bytes) -> None:
            await vnfm_ch.default_exchange.publish(aio_pika.Message(body), to)

        ch, answers = await requester()
        first = await ask(ch, b"MODIFY")
        assert first.reply_to and first.reply_to.startswith("amq.rabbitmq.reply-to.") and first.correlation_id is None
        await answer(first.reply_to, b"MODIFY answer")
        assert await asyncio.wait_for(answers.get(), 30) == b"MODIFY answer"

        # the channel is reused for the next request: the name is the same (it stands for the channel)
        second = await ask(ch, b"START")
        assert second.reply_to == first.reply_to
        # the first answer sent again (a takeover after a crash) arrives where START's answer is awaited:
        # without a correlation id the requester takes it for START's
        await answer(first.reply_to, b"MODIFY answer")
        assert await asyncio.wait_for(answers.get(), 30) == b"MODIFY answer"

        # a new channel (even with the same number) has another name; the old name reaches nobody
        await ch.close()
        ch2, answers2 = await requester()
        third = await ask(ch2, b"STOP")
        assert third.reply_to != first.reply_to
        await answer(first.reply_to, b"MODIFY answer")
        await answer(third.reply_to or "", b"STOP answer")
        assert await asyncio.wait_for(answers2.get(), 30) == b"STOP answer"   # in order: nothing came before
        assert answers2.empty()
    finally:
        await nfvo.close()
        await vnfm.close()
