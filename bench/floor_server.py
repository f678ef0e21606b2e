"""The floor's consumer, run as its own process (as the EMS fleet is): ``count`` queues
``<prefix>.<i>``, one consumer each with prefetch 1 (as an EMS agent), answering every request on
its ``reply_to``. A request whose body starts with ``x`` spawns ``/bin/true`` (stdout and stderr
captured, as an EMS runs a script) before answering; ``b`` spawns ``/bin/bash <an empty file>`` (what
the EMS contract makes every script cost); ``s<seconds>`` spawns ``/bin/sleep <seconds>``; any other is
answered at once.

``python -m bench.floor_server --url URL --prefix P --count N`` prints ``READY`` when consuming and,
on SIGTERM, a JSON line with what it served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path

from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import connect, reply

OK = json.dumps({"output": "", "err": "", "status": 0}).encode()


async def serve(url: str, prefix: str, count: int) -> dict[str, int]:
    stats = {"served": 0, "spawned": 0, "failed": 0}
    conn = await connect(url)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=1)   # per consumer (RabbitMQ's default, global=False)
    empty = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "empty.sh"
    empty.write_bytes(b"")
    commands = {b"x": ("/bin/true",), b"b": ("/bin/bash", str(empty))}

    async def on_message(message: AbstractIncomingMessage) -> None:
        body = OK
        argv = commands.get(message.body[:1])
        if message.body[:1] == b"s":
            argv = ("/bin/sleep", message.body[1:].decode())
        if argv is not None:
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            await proc.communicate()
            stats["spawned"] += 1
            if proc.returncode != 0:
                stats["failed"] += 1
                body = json.dumps({"output": "", "err": "spawn failed", "status": proc.returncode}).encode()
        await reply(channel, message, body)
        await message.ack()
        stats["served"] += 1

    for i in range(count):
        queue = await channel.declare_queue(f"{prefix}.{i}", exclusive=True, auto_delete=True)
        await queue.consume(on_message)
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await conn.close()
    empty.unlink(missing_ok=True)
    empty.parent.rmdir()
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server")
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args(argv)
    stats = asyncio.run(serve(args.url, args.prefix, max(1, args.count)))
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
