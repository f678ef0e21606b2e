"""The floor's consumer, run as its own process (as the EMS fleet is): ``count`` queues
``<prefix>.<i>``, one consumer each with prefetch 1 (as an EMS agent), answering every request on
its ``reply_to``. A request whose body starts with ``x`` spawns ``/bin/true`` (stdout and stderr
captured, as an EMS runs a script) before answering; ``b`` spawns ``/bin/bash <an empty file>`` (what
the EMS contract makes every script cost); ``w`` runs that bash as gvnfm's EMS runs a keyed EXECUTE,
with a crash-safe spool: a record file written before the fork, stdout and stderr to files, the same
``sh`` status wrapper (``gvnfm.ems.journal.WRAPPER``), the files read back and removed afterwards (what
the contract and that durability cost, without gvnfm's code around them); ``s<seconds>`` spawns
``/bin/sleep <seconds>``; any other is answered at once.

``python -m bench.floor_server --url URL --prefix P --count N [--channel-per-queue] [--exchange X]``
prints ``READY`` when consuming and, on SIGTERM, deletes its queues and prints a JSON line with what it
served. (Left to the broker, the deletion of 10,000 exclusive queues after the connection closes went on
for minutes and delayed what the bench measured next: docs/performance.md, run (v).) The consumers share one
channel (with a prefetch of 1 each); ``--channel-per-queue`` gives each its own channel, as gvnfm's EMS
fleet gave each agent before the tenth round (docs/performance.md, ninth round). ``--exchange`` declares
the topic exchange X (auto-delete) and binds every queue to it with its own name as the routing key, as
every EMS queue is bound to ``openbaton-exchange``; the client then publishes there.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from aio_pika import ExchangeType
from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import connect, reply
from gvnfm.ems.journal import WRAPPER

OK = json.dumps({"output": "", "err": "", "status": 0}).encode()


async def serve(url: str, prefix: str, count: int, *, channel_per_queue: bool = False,
                exchange: str | None = None) -> dict[str, int]:
    stats = {"served": 0, "spawned": 0, "failed": 0}
    conn = await connect(url)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=1)   # per consumer (RabbitMQ's default, global=False)
    topic = (await channel.declare_exchange(exchange, ExchangeType.TOPIC, auto_delete=True)
             if exchange else None)
    empty = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "empty.sh"
    empty.write_bytes(b"")
    commands = {b"x": ("/bin/true",), b"b": ("/bin/bash", str(empty))}
    spools = itertools.count()

    async def on_message(message: AbstractIncomingMessage) -> None:
        body = OK
        argv = commands.get(message.body[:1])
        if message.body[:1] == b"s":
            argv = ("/bin/sleep", message.body[1:].decode())
        if message.body[:1] == b"w":
            status = await _spooled(("/bin/bash", str(empty)), empty.parent / f"spool-{next(spools)}")
            stats["spawned"] += 1
            if status != 0:
                stats["failed"] += 1
                body = json.dumps({"output": "", "err": "spawn failed", "status": status}).encode()
        elif argv is not None:
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

    queues = []
    for i in range(count):
        consuming = channel
        if channel_per_queue:   # replies still go out on the first channel, as the fleet's on its publisher
            consuming = await conn.channel()
            await consuming.set_qos(prefetch_count=1)
        queue = await consuming.declare_queue(f"{prefix}.{i}", exclusive=True, auto_delete=True)
        if topic is not None:
            await queue.bind(topic, routing_key=queue.name)
        await queue.consume(on_message)
        queues.append(queue)
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("aiormq").setLevel(logging.ERROR)   # not a line per consumer the deletion cancels
    for queue in queues:   # deleted here, not by the broker after the connection closes: when this process
        await queue.delete(if_unused=False, if_empty=False)   # has exited, the broker is done with them
    await conn.close()
    shutil.rmtree(empty.parent, ignore_errors=True)
    return stats


async def _spooled(argv: tuple[str, ...], base: Path) -> int:
    """``argv`` as the EMS runs a keyed EXECUTE: record, three output files, the status wrapper; the
    files read back and removed. Returns the script's status from the status file."""
    files = [Path(f"{base}.{suffix}") for suffix in ("json", "out", "err", "status")]
    files[0].write_text(json.dumps({"key": base.name, "started": time.time(), "timeout": None}))
    fds = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600) for path in files[1:]]
    try:
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", WRAPPER, "gvnfm-script", *argv,
                                                    stdin=fds[2], stdout=fds[0], stderr=fds[1],
                                                    start_new_session=True)
    finally:
        for fd in fds:
            os.close(fd)
    await proc.wait()
    outputs = [path.read_bytes() for path in files[1:]]
    for path in files:
        path.unlink()
    lines = outputs[2].decode().split("\n")
    return int(lines[1]) if len(lines) > 2 else proc.returncode or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server")
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--channel-per-queue", action="store_true")
    parser.add_argument("--exchange")
    args = parser.parse_args(argv)
    stats = asyncio.run(serve(args.url, args.prefix, max(1, args.count), channel_per_queue=args.channel_per_queue,
                              exchange=args.exchange))
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
