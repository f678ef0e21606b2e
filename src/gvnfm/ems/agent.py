"""The EMS agent: registration, the command queue, replies, dedupe; and a fleet of agents.

Per agent (hostname ``h``, type ``t``):
- declares ``vnfm.h.actions`` (``auto_delete`` = config.autodelete, not durable) bound to the exchange
  with routing key = its name, consumes it with manual acknowledgement and ``prefetch`` (16: a long
  script never keeps other commands waiting);
- publishes ``{"hostname": "h"}`` (JSON-escaped, ``text/plain``) to the default exchange, routing key
  ``ems.t.register``, after connecting and after every reconnection of the transport -- once that queue
  exists: the VNFM declares it, and the default exchange silently drops a message for a missing queue.
  The reference EMS checks with ``queue_bind`` first (retrying on 404); this agent publishes the
  registration as ``mandatory`` instead: the broker returns it while the queue is missing, and the
  agent tries again with capped back-off (0.25 s doubling to 5 s), in the background (commands are
  consumed meanwhile). Unlike a failing bind, a returned message closes no channel (a broker-closed
  channel on a busy shared connection can cost the whole connection, docs/compatibility.md);
- answers every delivery on ``reply_to`` with its ``correlation_id`` and acknowledges only after the
  reply was published; a delivery whose reply could not be published stays unacknowledged (the broker
  or the VNFM sends it again, and the stored result is returned without running anything again).

A transport passed in is shared (the process VIM's in-memory transport, the fleet's connection): the
agent connects it if needed but never closes it; without one the agent opens (with capped back-off) and
closes its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gvnfm.catalogue.ems import EmsReply, registration_body
from gvnfm.ems import journal
from gvnfm.ems.commands import EmsCommandHandler
from gvnfm.ems.config import EmsConfig
from gvnfm.ems.dedupe import ResultCache, command_key
from gvnfm.transport import BrokerRefused, Delivery, Message, Subscription, Transport, TransportError, open_transport
from gvnfm.transport.lifecycle import backoff_delays

log = logging.getLogger("gvnfm.ems")

STATE_FILE = "results.jsonl"
#: an EXECUTE command (a JSON string value cannot hold an unescaped quote: no false match inside one)
_EXECUTE = re.compile(rb'"action"\s*:\s*"EXECUTE"')
REGISTER_RETRY_FIRST = 0.25
REGISTER_RETRY_MAX = 5.0


async def with_backoff(call: Callable[[], Awaitable[None]], *, cap: float, stopping: Callable[[], bool],
                       what: str) -> None:
    """``call()`` until it works: waits 1, 2, 4, ... seconds, at most ``cap``; every failure is logged
    (the reference EMS, too, retries whatever fails, forever). Raised only once ``stopping()``."""
    delays = backoff_delays(1.0, cap)
    attempt = 0
    while True:
        attempt += 1
        try:
            await call()
            if attempt > 1:
                log.info("event=ems_%s_done attempts=%d", what, attempt)
            return
        except (TransportError, OSError, ConnectionError) as exc:
            if stopping():
                raise
            why = str(exc)
        except Exception as exc:  # aio-pika raises its own exception types for refused/closed connections
            if stopping():
                raise
            why = f"{type(exc).__name__}: {exc}"
        delay = next(delays)
        log.warning("event=ems_%s_failed attempt=%d retry_in=%.1f error=%r", what, attempt, delay, why)
        await asyncio.sleep(delay)


async def connect_with_backoff(transport: Transport, *, cap: float, stopping: Callable[[], bool]) -> None:
    """``transport.connect()`` until it works (:func:`with_backoff`)."""
    await with_backoff(transport.connect, cap=cap, stopping=stopping, what="connect")


def open_agent_transport(config: EmsConfig, *, shared: bool = False) -> Transport:
    """The agent's broker connection; ``shared`` for a fleet's connection, whose agents' consumers then
    share one AMQP channel (measured in docs/performance.md, tenth round)."""
    url = config.amqp_url()
    if url.startswith("memory://"):
        return open_transport(url, exchange=config.exchange)
    if shared and url.startswith(("amqp://", "amqps://")):
        return open_transport(url, exchange=config.exchange, reconnect_max=config.reconnect_max,
                              shared_consumer_channel=True)
    return open_transport(url, exchange=config.exchange, reconnect_max=config.reconnect_max)


def _prepare_dir(path: str, mode: int) -> bool:
    try:
        Path(path).mkdir(parents=True, exist_ok=True, mode=mode)
        return os.access(path, os.W_OK)
    except OSError as exc:
        log.warning("event=ems_dir_unusable path=%s error=%r", path, str(exc))
        return False


class EmsAgent:
    def __init__(self, config: EmsConfig, transport: Transport | None = None) -> None:
        self.config = config
        self.transport = transport
        self._own_transport = transport is None
        self.handler = EmsCommandHandler(config)
        assert config.state_dir is not None and config.scripts_path is not None   # (EmsConfig sets every folder)
        self.cache = ResultCache(max_entries=config.result_cache_entries, max_bytes=config.result_cache_bytes,
                                 state_file=Path(config.state_dir) / STATE_FILE, max_age=config.result_max_age)
        self.journal = journal.Journal(config.state_dir, max_output=config.max_output_bytes,
                                       kill_grace=config.kill_grace)
        self.cache.on_stored = self.journal.discard
        self._subscription: Subscription | None = None
        self._stopping = False
        self._started = False
        self._stopped = asyncio.Event()
        self._registering: asyncio.Task[None] | None = None
        #: register again from the transport's ``on_reconnect`` (a fleet does it for all its agents at once)
        self.registers_on_reconnect = True
        self.registrations = 0
        self.executions = 0

    @property
    def hostname(self) -> str:
        return self.config.hostname

    @property
    def queue(self) -> str:
        return self.config.actions_queue

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        cfg = self.config
        assert cfg.scripts_path is not None and cfg.state_dir is not None
        _prepare_dir(cfg.scripts_path, 0o755)
        if not _prepare_dir(cfg.state_dir, 0o700):
            log.warning("event=ems_state_memory_only hostname=%s state_dir=%s", cfg.hostname, cfg.state_dir)
            self.cache.state_file = None
        known = self.cache.load()
        self._adopt_running()
        log.info("event=ems_starting hostname=%s type=%s queue=%s scripts_path=%s state_dir=%s known_results=%d "
                 "prefetch=%d script_timeout=%s run_as=%s", cfg.hostname, cfg.type, self.queue, cfg.scripts_path,
                 cfg.state_dir, known, cfg.prefetch, cfg.script_timeout, cfg.run_as or "-")
        if self.transport is None:
            self.transport = open_agent_transport(cfg)
        # connect() is idempotent: a shared transport that is already connected is left as it is
        await connect_with_backoff(self.transport, cap=cfg.reconnect_max, stopping=lambda: self._stopping)
        if self.registers_on_reconnect:
            self.transport.on_reconnect(self._on_reconnect)
        # a broker too busy to declare within ``publish_timeout`` (seen with 10,000 queues being deleted),
        # or refusing for now: tried again, as a connection is
        await with_backoff(self._declare_and_consume, cap=cfg.reconnect_max, stopping=lambda: self._stopping,
                           what="consume")
        self._started = True
        await self._ensure_registration()

    async def _declare_and_consume(self) -> None:
        assert self.transport is not None
        await self._declare()
        self._subscription = await self.transport.consume(self.queue, self._on_delivery, prefetch=self.config.prefetch,
                                                          on_restored=self._on_consumer_restored)

    async def _declare(self) -> None:
        assert self.transport is not None
        await self.transport.declare_queue(self.queue, durable=False, auto_delete=self.config.autodelete,
                                           exclusive=False, bind=True)

    async def register(self) -> bool:
        """Publish the registration to the default exchange (as the reference does), mandatory: False
        (nothing delivered) while the register queue does not exist."""
        assert self.transport is not None
        queue = self.config.register_queue
        # a host user may not write to the default exchange: through the topic exchange (the VNFM's
        # register queue is bound there under its name), as itself (user_id, checked by the broker)
        host_user = self.config.broker_user if self.config.host_user else None
        if not await self.transport.publish_routed(queue, registration_body(self.hostname),
                                                   exchange=None if host_user else "", user_id=host_user):
            return False
        self.registrations += 1
        log.info("event=ems_registered hostname=%s queue=%s count=%d", self.hostname, queue, self.registrations)
        return True

    async def _ensure_registration(self) -> None:
        """Register now when possible, else keep trying in the background (one retry task at a time)."""
        if self._registering is not None and not self._registering.done():
            return   # the running retry loop registers
        try:
            if await self.register():
                return
            log.info("event=ems_register_waiting hostname=%s queue=%s reason=%r retry_in=%.2f", self.hostname,
                     self.config.register_queue, "register queue does not exist yet (VNFM not started?)",
                     REGISTER_RETRY_FIRST)
        except TransportError as exc:
            log.warning("event=ems_register_failed hostname=%s error=%r", self.hostname, str(exc))
        self._registering = asyncio.ensure_future(self._register_loop())

    async def _register_loop(self) -> None:
        delay = REGISTER_RETRY_FIRST
        started = time.monotonic()
        attempt = 1
        while not self._stopping:
            await asyncio.sleep(delay)
            if self._stopping:
                return
            attempt += 1
            try:
                if await self.register():
                    log.info("event=ems_register_queue_found hostname=%s queue=%s attempts=%d waited=%.1f",
                             self.hostname, self.config.register_queue, attempt, time.monotonic() - started)
                    return
                why = "register queue does not exist yet"
            except TransportError as exc:
                why = str(exc)
            delay = min(REGISTER_RETRY_MAX, delay * 2)
            log.debug("event=ems_register_retry hostname=%s attempt=%d retry_in=%.2f reason=%r", self.hostname,
                      attempt, delay, why)

    async def _on_reconnect(self) -> None:
        """The transport has declared the queue again, bound it and started the consumer (every broker
        transport restores what was declared before its ``on_reconnect`` callbacks run); what is left is to
        register again. (Declaring it here as well cost a fleet two more round trips per agent, in sequence,
        after a broker restart: docs/performance.md, twelfth round.)"""
        if self._stopping:
            return
        log.info("event=ems_reconnected hostname=%s", self.hostname)
        try:
            await self._ensure_registration()
        except Exception as exc:
            log.warning("event=ems_reregister_failed hostname=%s error=%r", self.hostname, str(exc))

    async def _on_consumer_restored(self) -> None:
        """The broker closed the consumer's channel and the transport made the queue again: whatever was
        queued went with the old one. Registering again makes the VNFM send again what it has not had
        answered (gvnfm's VNFM does; the result cache answers a command that ran, without running it)."""
        if self._stopping:
            return
        log.info("event=ems_consumer_restored hostname=%s queue=%s", self.hostname, self.queue)
        await self._ensure_registration()

    async def stop(self) -> None:
        """Stop consuming, kill running scripts, close the own transport."""
        if self._stopping:
            return
        self._stopping = True
        if self._registering is not None:
            self._registering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._registering
            self._registering = None
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.cancel()
            self._subscription = None
        await self.cache.cancel_all()
        if self._own_transport and self.transport is not None:
            with contextlib.suppress(Exception):
                await self.transport.close()
        self._stopped.set()
        log.info("event=ems_stopped hostname=%s", self.hostname)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Start, then run until ``stop`` is set (or ``stop()`` is called)."""
        await self.start()
        waiters = [asyncio.ensure_future(self._stopped.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await self.stop()

    def _adopt_running(self) -> None:
        """Scripts a previous run of this agent started and did not answer: answered from their spool
        (a resend of the command waits for them), never started again."""
        if self.cache.state_file is None:
            return
        for spool, record in self.journal.pending():
            if spool.key in self.cache:
                spool.remove()   # its result was stored just before the agent stopped
                continue
            self.cache.adopt(spool.key, functools.partial(self.journal.adopt, spool, record))

    # -- deliveries ----------------------------------------------------------------------------------
    async def _reply(self, msg: Message, reply: EmsReply) -> None:
        """Answer; a reply the broker refuses for good is replaced by one that fits (no message left
        unacknowledged to be redelivered and refused again)."""
        assert self.transport is not None
        body = reply.to_body()
        # a host user (the VM's own broker user) replies through the exchange with its user_id
        as_user = self.config.broker_user if self.config.host_user else None
        try:
            await self.transport.reply(msg, body, as_user=as_user)
        except BrokerRefused as exc:
            log.error("event=ems_reply_refused hostname=%s correlation_id=%s bytes=%d error=%r", self.hostname,
                      msg.correlation_id, len(body), str(exc))
            await self.transport.reply(msg, refused_reply(reply, len(body), exc).to_body(), as_user=as_user)

    async def _execute(self, body: bytes, key: str | None = None) -> EmsReply:
        self.executions += 1
        # a keyed EXECUTE's script runs with a spool (journal): a restarted agent answers it from the script
        # (other commands are short, or, as CLONE_SCRIPTS, finish with work of their own: they run again)
        spooled = key and self.cache.state_file is not None and _EXECUTE.search(body) is not None
        token = journal.CURRENT.set(self.journal.open(key) if key and spooled else None)
        try:
            return await self.handler.handle(body)
        finally:
            journal.CURRENT.reset(token)

    async def _on_delivery(self, delivery: Delivery) -> None:
        msg = delivery.message
        key = command_key(msg.correlation_id, msg.body)
        try:
            reply, outcome = await self.cache.run(key, lambda: self._execute(msg.body, key))
        except asyncio.CancelledError:
            # the agent (or the transport) is going away: leave the message to be delivered again
            with contextlib.suppress(Exception):
                await delivery.reject(requeue=True)
            raise
        except Exception as exc:  # the handler never raises; this is a last resort
            log.exception("event=ems_delivery_failed hostname=%s correlation_id=%s", self.hostname,
                          msg.correlation_id)
            reply, outcome = EmsReply(output="", err=f"[gvnfm-ems] internal error: {exc}", status=1), "new"
        if outcome in ("done", "inflight"):
            log.info("event=ems_duplicate hostname=%s correlation_id=%s outcome=%s redelivered=%s status=%s",
                     self.hostname, msg.correlation_id, outcome, msg.redelivered, reply.status)
        if self._stopping and self.transport is None:
            return
        assert self.transport is not None
        try:
            if msg.reply_to:
                await self._reply(msg, reply)
            else:
                log.warning("event=ems_no_reply_to hostname=%s correlation_id=%s", self.hostname,
                            msg.correlation_id)
        except Exception as exc:
            log.warning("event=ems_reply_failed hostname=%s correlation_id=%s error=%r (left unacknowledged)",
                        self.hostname, msg.correlation_id, str(exc))
            return
        try:
            await delivery.ack()
        except Exception as exc:
            log.warning("event=ems_ack_failed hostname=%s correlation_id=%s error=%r", self.hostname,
                        msg.correlation_id, str(exc))


def refused_reply(reply: EmsReply, size: int, exc: Exception) -> EmsReply:
    """What answers a command whose reply the broker refused for good (too large): its status (the script
    did what it did), and why its output is missing."""
    return EmsReply(output="", err=f"[gvnfm-ems] the reply ({size} bytes) was refused by the broker: {exc}",
                    status=reply.status)


def fleet_hostnames(base: str, count: int, prefix: str | None = None) -> list[str]:
    stem = prefix or base
    return [f"{stem}-{i}" for i in range(1, count + 1)]


#: Agents of a fleet per broker connection. Over AMQP their consumers share one channel of the connection
#: (a channel each would stop at RabbitMQ's ``channel_max``, 2047 by default, and cost the broker a process
#: each); a thousand agents per connection bounds what one channel error takes down and restores at once.
AGENTS_PER_CONNECTION = 1000
#: Agents of a fleet starting at once (declaring, consuming, registering): their frames pipelined on their
#: connection and, over STOMP, one check of the register queue for those registering together.
STARTS_AT_ONCE = 32


class EmsFleet:
    """``--hosts N``: N agents in one process, over ⌈N / AGENTS_PER_CONNECTION⌉ broker connections of
    their own (or all on the one ``transport`` given). On an AMQP connection of its own, the agents'
    consumers share one channel: a channel error then restores every agent of that connection, and each
    registers again (:meth:`EmsAgent._on_consumer_restored`)."""

    def __init__(self, config: EmsConfig, count: int, *, hostname_prefix: str | None = None,
                 transport: Transport | None = None) -> None:
        if count < 1:
            raise ValueError("a fleet needs at least one host")
        self.config = config
        self.transport = transport
        self.transports: list[Transport] = [] if transport is None else [transport]
        self._own_transport = transport is None
        self.agents = [EmsAgent(config.for_host(h), transport=None)
                       for h in fleet_hostnames(config.hostname, count, hostname_prefix)]
        self._stopping = False

    async def start(self) -> None:
        if self._own_transport and not self.transports:
            groups = -(-len(self.agents) // AGENTS_PER_CONNECTION)
            self.transports = [open_agent_transport(self.config, shared=True) for _ in range(groups)]
            self.transport = self.transports[0]
        if self._own_transport:
            for transport in self.transports:
                await connect_with_backoff(transport, cap=self.config.reconnect_max,
                                           stopping=lambda: self._stopping)
        for i, agent in enumerate(self.agents):
            agent.transport = self.transports[min(i // AGENTS_PER_CONNECTION, len(self.transports) - 1)]
            agent._own_transport = False
            agent.registers_on_reconnect = False
        gate = asyncio.Semaphore(STARTS_AT_ONCE)

        async def start(agent: EmsAgent) -> None:
            async with gate:
                await agent.start()

        try:   # one after the other, 1,000 agents took 16.5 s over STOMP (docs/performance.md, thirteenth round)
            async with asyncio.TaskGroup() as group:
                for agent in self.agents:
                    group.create_task(start(agent))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        for transport in self.transports:
            members = [a for a in self.agents if a.transport is transport]
            transport.on_reconnect(functools.partial(self._on_reconnect, members))
        log.info("event=ems_fleet_started hosts=%d connections=%d", len(self.agents), len(self.transports))

    @staticmethod
    async def _on_reconnect(members: list[EmsAgent]) -> None:
        """A connection's agents register again all at once, as one ``on_reconnect`` callback (the transport
        runs its callbacks one after the other: a thousand registrations then followed each other, 6 s at
        10,000 agents, docs/performance.md, twelfth round). Each agent logs its own failure."""
        await asyncio.gather(*(agent._on_reconnect() for agent in members))

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*(a.stop() for a in self.agents), return_exceptions=True)
        if self._own_transport:
            for transport in self.transports:
                with contextlib.suppress(Exception):
                    await transport.close()

    async def run_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
