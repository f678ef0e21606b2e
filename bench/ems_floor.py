"""The floor of the ``ems-footprint`` case: a bare Python process that imports aio-pika, connects,
publishes the same registration an EMS agent publishes (``{"hostname": ...}``, routing key
``ems.<type>.register`` on the exchange, with a publisher confirm) and then idles until SIGTERM.

``python -m bench.ems_floor URL EXCHANGE ROUTING_KEY HOSTNAME``
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aio_pika


async def main(url: str, exchange: str, routing_key: str, hostname: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    conn = await aio_pika.connect(url)
    channel = await conn.channel(publisher_confirms=True)
    target = await channel.get_exchange(exchange)
    await target.publish(aio_pika.Message(json.dumps({"hostname": hostname}).encode(), content_type="text/plain"),
                         routing_key=routing_key)
    await stop.wait()
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
