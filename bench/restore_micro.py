"""What a lost consumer channel costs an EMS fleet (docs/performance.md, tenth round). The ``count`` agents of
an in-process ``EmsFleet`` on one connection; the broker closes a consumer channel (an acknowledgement of
an unknown delivery tag: PRECONDITION_FAILED, as RabbitMQ's ``consumer_timeout`` closes it). Printed: the
seconds from that error until every consumer on the channel consumes again, and until every agent whose
queue went with it has registered again (counted on the register queue). With the consumers on one shared
channel (the fleet's way) all ``count`` agents are restored; with a channel each (the fleet before the tenth
round), one.

``python -m bench.restore_micro [--count 1000] [--rounds 3] [--modes shared,own] [--restore-channels 8]
[--fault channel|connection] [--stomp URL] [--broker URL]`` (a channel each stops at RabbitMQ's
``channel_max``, 2047 by default: ``--modes shared`` beyond that; ``--restore-channels``: how many channels
the transport makes queues again on at once; ``--stomp``: with ``--fault connection``, the fleet on
RabbitMQ's STOMP plugin at that URL, the registrations still counted over AMQP at ``--broker``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
from aio_pika.abc import AbstractIncomingMessage

from bench.amqp import connect
from bench.config import DEFAULT_BROKER
from gvnfm.ems import agent as agent_module
from gvnfm.ems.agent import EmsFleet
from gvnfm.ems.config import EmsConfig
from gvnfm.transport import amqp
from gvnfm.transport import stomp as stomp_transport
from gvnfm.transport.amqp import AmqpTransport
from gvnfm.transport.stomp import StompTransport
from gvnfm.vnfm.broker_users import management_url


async def _until(predicate: Callable[[], bool], what: Callable[[], str], limit: float = 300.0) -> None:
    try:
        async with asyncio.timeout(limit):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise RuntimeError(f"not within {limit:.0f} s: {what()}") from None


def _the_fleets(connection: dict[str, Any], stomp: bool) -> bool:
    """A connection of the fleet: over AMQP, named ``gvnfm``; over STOMP (which names none), any."""
    if stomp:
        return str(connection.get("protocol", "")).startswith("STOMP")
    return (connection.get("client_properties") or {}).get("connection_name") == "gvnfm"


async def _close_from_the_broker(broker: str, count: int, *, stomp: bool = False) -> None:
    """The broker closes the fleet's ``count`` connections (CONNECTION_FORCED, as ``rabbitmqctl
    close_connection`` or a node shutting down), all at once: through the management API, whose list of
    connections lags their opening by up to its statistics interval."""
    api = management_url(broker) + "/api/connections"
    names: list[str] = []
    async with httpx.AsyncClient(timeout=60) as http:
        for _ in range(600):
            listed = (await http.get(api, params={"columns": "name,client_properties,protocol"})).json()
            names = [c["name"] for c in listed if _the_fleets(c, stomp)]
            if len(names) == count:
                # with thousands of consumers the API may answer 500 (its own timeout) and close the
                # connection all the same: the caller waits for the close
                for answer in await asyncio.gather(*(http.delete(f"{api}/{quote(n, safe='')}") for n in names)):
                    if answer.status_code >= 400 and answer.status_code != 500:
                        answer.raise_for_status()
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"not {count} connections named gvnfm on the broker: {names}")


async def one_round(broker: str, count: int, shared: bool, fault: str = "channel",
                    stomp: str | None = None) -> tuple[float, float, int, float]:
    """(seconds until consuming again, seconds until registered again, agents restored, seconds from the
    fleet's start until every agent had registered). ``fault``:
    ``channel``: the broker closes one consumer channel, the fleet's agents all on one connection;
    ``connection``: the broker closes every connection of a fleet as ``gvnfm ems --hosts`` makes it
    (``AGENTS_PER_CONNECTION`` agents on each, their consumers on one channel; or, with ``stomp``, on
    STOMP connections), as a broker restart does; the clock starts once the fleet has seen every
    connection close. Over STOMP, "consuming again" is when every connection has restored its
    subscriptions (the transport counts a reconnection once its restore is done)."""
    endpoint = f"restore-micro-{'shared' if shared else 'own'}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    config = EmsConfig(broker_url=stomp or broker, type=endpoint, hostname="rm", root=str(workdir))
    conn = await connect(broker)
    registrations: Counter[str] = Counter()
    try:
        channel = await conn.channel()
        # the NFVO's exchange (STOMP cannot declare one)
        await channel.declare_exchange(config.exchange, "topic", durable=True)
        queue = await channel.declare_queue(config.register_queue, auto_delete=True)

        async def count_it(message: AbstractIncomingMessage) -> None:
            registrations[json.loads(message.body)["hostname"]] += 1
            await message.ack()

        await queue.consume(count_it)
        if fault == "connection":
            fleet = EmsFleet(config, count)
        else:   # all on one connection
            fleet = EmsFleet(config, count, transport=AmqpTransport(broker, exchange=config.exchange,
                                                                    shared_consumer_channel=shared))
        launched = time.perf_counter()
        await fleet.start()
        transports = list(fleet.transports)
        try:
            await _until(lambda: len(registrations) == count,
                         lambda: f"{len(registrations)} of {count} agents registered at start")
            start = time.perf_counter() - launched
            if stomp:
                stomps = [cast(StompTransport, t) for t in transports]
                hosts = [a.hostname for a in fleet.agents]
                before = {h: registrations[h] for h in hosts}
                reconnects = {id(t): t.reconnects for t in stomps}

                def restored(t: StompTransport) -> bool:
                    return t.reconnects > reconnects[id(t)]

                await _close_from_the_broker(broker, len(stomps), stomp=True)
                await _until(lambda: all(t._conn is None or restored(t) for t in stomps),
                             lambda: "a connection is still open")
                started = time.perf_counter()
                await _until(lambda: all(restored(t) for t in stomps),
                             lambda: f"{sum(map(restored, stomps))} of {len(stomps)} connections restored")
                lost_count = count
            else:
                amqps = [cast(AmqpTransport, t) for t in transports]
                consumers = [c for t in amqps for c in t._consumers]
                victim = consumers[0].channel
                assert victim is not None
                lost = [c for c in consumers if fault == "connection" or c.channel is victim]
                hosts = [a.hostname for a in fleet.agents if a.queue in {c.queue for c in lost}]
                before = {h: registrations[h] for h in hosts}
                if fault == "connection":
                    await _close_from_the_broker(broker, len(amqps))
                    await _until(lambda: all(t._conn is None or t._conn.is_closed for t in amqps),
                                 lambda: "a connection is still open")
                    started = time.perf_counter()
                else:
                    started = time.perf_counter()
                    await (await victim.get_underlay_channel()).basic_ack(999_999)
                await _until(lambda: all(c.channel is not None and c.channel is not victim for c in lost),
                             lambda: f"{sum(c.channel is not None and c.channel is not victim for c in lost)} of "
                                     f"{len(lost)} consumers again ({sum(not c.active for c in lost)} given up)")
                lost_count = len(lost)
            consuming = time.perf_counter() - started
            await _until(lambda: all(registrations[h] > before[h] for h in hosts),
                         lambda: f"{sum(registrations[h] > before[h] for h in hosts)} of {len(hosts)} registered again")
            registered = time.perf_counter() - started
            return consuming, registered, lost_count, start
        finally:
            await fleet.stop()
            for transport in transports:
                await transport.close()
    finally:
        await conn.close()


async def run(broker: str, count: int, rounds: int, modes: tuple[str, ...] = ("shared", "own"),
              fault: str = "channel", stomp: str | None = None) -> dict[str, list[tuple[float, float, int, float]]]:
    results: dict[str, list[tuple[float, float, int, float]]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode in modes:
            results[mode].append(await one_round(broker, count, mode == "shared", fault, stomp))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", default="shared,own", help="shared, own or both (default: %(default)s)")
    p.add_argument("--restore-channels", type=int, default=amqp.RESTORE_CHANNELS,
                   help="channels the transport restores on at once (default: %(default)s)")
    p.add_argument("--fault", choices=("channel", "connection"), default="channel",
                   help="what the broker closes: one consumer channel, or the fleet's connection "
                        "(default: %(default)s)")
    p.add_argument("--starts-at-once", type=int, default=agent_module.STARTS_AT_ONCE,
                   help="agents of the fleet starting at once (default: %(default)s)")
    p.add_argument("--stomp-in-flight", type=int, default=stomp_transport.RESTORE_IN_FLIGHT,
                   help="with --stomp: queues the transport restores at once (default: %(default)s)")
    p.add_argument("--stomp", default=None, metavar="URL",
                   help="with --fault connection: the fleet on STOMP at URL "
                        "(RabbitMQ: stomp://guest:guest@127.0.0.1:61613/)")
    p.add_argument("--broker", default=DEFAULT_BROKER)
    args = p.parse_args()
    if args.stomp and args.fault != "connection":
        p.error("--stomp needs --fault connection")
    amqp.RESTORE_CHANNELS = max(1, args.restore_channels)
    stomp_transport.RESTORE_IN_FLIGHT = max(1, args.stomp_in_flight)
    agent_module.STARTS_AT_ONCE = max(1, args.starts_at_once)
    modes = tuple(m for m in args.modes.split(",") if m in ("shared", "own"))
    if args.fault == "connection":
        modes = ("shared",)   # the fleet's own connections: their consumers share a channel
    results = asyncio.run(run(args.broker, args.count, args.rounds, modes or ("shared", "own"), args.fault,
                              args.stomp))
    for mode, rows in results.items():
        consuming = [r[0] * 1000 for r in rows]
        registered = [r[1] * 1000 for r in rows]
        start = [r[3] for r in rows]
        how = (f"STOMP, restoring {stomp_transport.RESTORE_IN_FLIGHT} at once" if args.stomp
               else f"{mode:6} channel, restoring on {amqp.RESTORE_CHANNELS}")
        print(f"{args.fault} closed, {how}: "
              f"{rows[0][2]:5d} agents restored; "
              f"consuming again after "
              f"{statistics.median(consuming):8.1f} ms ({min(consuming):.1f}–{max(consuming):.1f}), "
              f"registered again after {statistics.median(registered):8.1f} ms "
              f"({min(registered):.1f}–{max(registered):.1f}), {len(rows)} rounds; "
              f"the fleet ({agent_module.STARTS_AT_ONCE} starting at once) started and registered in "
              f"{statistics.median(start):.2f} s "
              f"({min(start):.2f}–{max(start):.2f})")


if __name__ == "__main__":
    main()
