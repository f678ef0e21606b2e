"""The VNFM under test, as its own process: ``python -m gvnfm.cli.main vnfm`` with a properties
file of the bench (its own exchange, endpoint, SQLite store), optionally under cProfile."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiormq
from aio_pika.exceptions import ChannelClosed

from bench.amqp import connect
from bench.procs import Child, python_argv


class VnfmProcess:
    def __init__(self, *, url: str, exchange: str, endpoint: str, workdir: Path, db: str, concurrency: int,
                 ems_start_timeout: float, log_level: str = "INFO", profile: Path | None = None,
                 tag: str = "vnfm", probe_url: str | None = None) -> None:
        self.url = url
        self.probe_url = probe_url or url   # AMQP: the readiness probe (the VNFM itself may be on STOMP)
        self.endpoint = endpoint
        self.workdir = workdir
        self.profile = profile
        self.config = workdir / f"{tag}.properties"
        self.config.write_text("\n".join([
            f"broker={url}",
            f"exchange={exchange}",
            f"endpoint={endpoint}",
            f"db={db}",
            f"state_dir={workdir / 'vnfm-state'}",
            f"concurrency={concurrency}",
            f"ems_start_timeout={ems_start_timeout}",
            f"log_level={log_level}",
            "endpoint_queue_durable=false",
            "ems_host_users=false",   # the EMS fleet is many agents on one shared broker user
            "endpoint_queue_auto_delete=true",
        ]) + "\n")
        argv = python_argv("-m", "cProfile", "-o", str(profile)) if profile else python_argv()
        argv += ["-m", "gvnfm.cli.main", "vnfm", "--config", str(self.config), "--no-register"]
        self.log = workdir / f"{tag}.log"
        self.child = Child(tag, argv, log=self.log)

    async def start(self, timeout: float = 60.0) -> None:
        """Start and wait until the VNFM consumes its endpoint queue (probed on one connection)."""
        conn = await connect(self.probe_url)

        async def consuming() -> bool:
            await asyncio.sleep(0.1)
            channel = await conn.channel()   # a failed passive declare closes the channel, not the connection
            try:
                queue = await channel.declare_queue(self.endpoint, passive=True)
                return bool(queue.declaration_result.consumer_count)
            except (ChannelClosed, aiormq.exceptions.ChannelNotFoundEntity):
                return False
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()

        try:
            await self.child.start(ready=consuming, timeout=timeout)
        finally:
            await conn.close()

    async def stop(self) -> int | None:
        return await self.child.stop(grace=30)

    def memory(self) -> dict[str, int]:
        return self.child.memory()

    def log_offset(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def operation_events(self, since: int) -> list[tuple[str, str]]:
        """``(timestamp, "start"|"end")`` of every ``operation_start``/``operation_end`` line logged after
        byte ``since`` (the ISO timestamps of the text log sort in time order)."""
        events: list[tuple[str, str]] = []
        with self.log.open("rb") as f:
            f.seek(since)
            for raw in f:
                line = raw.decode(errors="replace")
                for kind in ("start", "end"):
                    if f"event=operation_{kind} " in line and line.startswith("ts="):
                        events.append((line[3:].split(" ", 1)[0], kind))
        return events

    def steps_logged(self, since: int) -> dict[str, int]:
        """EMS commands the VNFM logged (``event=step``) after byte ``since`` of its log: {status: n}."""
        counts: dict[str, int] = {}
        with self.log.open("rb") as f:
            f.seek(since)
            for raw in f:
                line = raw.decode(errors="replace")
                if "event=step " in line:
                    status = line.split(" status=", 1)[1].split()[0] if " status=" in line else "?"
                    counts[status] = counts.get(status, 0) + 1
        return counts
