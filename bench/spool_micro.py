"""The EMS spool micro-benchmark: what one keyed EXECUTE costs the agent, with its spool
(``ems.journal``) and without one (``plain``: no state folder, so no ``results.jsonl`` either), through
the agent's own path (result cache, command handler, runner, spool removal), without a broker, in a
temporary folder (as the bench's agents); and, for scale, what the floor's consumer pays for a spawn
(``true``: ``/bin/true``, ``bash``: ``/bin/bash <empty file>``, both through asyncio's subprocess, as
``bench.floor_server`` spawns them; ``floor-spool``: that bash with the spool floor's record, files and
wrapper, ``bench.floor_server._spooled``, the same work as ``spool`` without gvnfm's code around it).

``python -m bench.spool_micro [--count 300] [--mode spool|plain|true|bash|floor-spool] [--script sh|bash]``: prints
one line, per EXECUTE, the wall time, the agent's CPU time and its children's (the wrapper and the
script). ``--script``: the script has a ``#!/bin/sh`` line (run directly) or none (run with bash, as the
bench's scripts). To compare two versions, run it alternately with ``PYTHONPATH=<their src>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.floor_server import _spooled
from gvnfm.ems.agent import EmsAgent
from gvnfm.ems.config import EmsConfig


def _per_call(count: int, t0: float, c0: os.times_result) -> tuple[float, float, float]:
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    children = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
    return (t1 - t0) / count, cpu / count, children / count


async def floor_spawns(count: int, argv: list[str]) -> tuple[float, float, float]:
    """``argv`` spawned ``count`` times as the floor's consumer spawns a script."""
    async def one() -> None:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        await proc.communicate()

    for _ in range(10):
        await one()
    t0, c0 = time.perf_counter(), os.times()
    for _ in range(count):
        await one()
    return _per_call(count, t0, c0)


async def run(count: int, spooled: bool, shebang: bool = True) -> tuple[float, float, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    try:
        agent = EmsAgent(EmsConfig(hostname="bench-1", root=str(folder)))
        assert agent.config.scripts_path is not None and agent.config.state_dir is not None
        for path in (agent.config.scripts_path, agent.config.state_dir):
            os.makedirs(path, exist_ok=True)
        script = Path(agent.config.scripts_path) / "s.sh"
        script.write_text("#!/bin/sh\necho ok\n" if shebang else "")
        script.chmod(0o755)
        body = json.dumps({"action": "EXECUTE", "payload": "s.sh"}).encode()
        if not spooled:
            agent.cache.state_file = None        # no state folder: the agent runs scripts without a spool

        async def one(i: int) -> None:
            key = f"op:{i}"
            reply, _ = await agent.cache.run(key, lambda: agent._execute(body, key))
            assert reply.status == 0, reply

        for i in range(10):                      # warm-up (imports, first fork, the remover thread)
            await one(-1 - i)
        t0, c0 = time.perf_counter(), os.times()
        for i in range(count):
            await one(i)
        return _per_call(count, t0, c0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def floor_spooled(count: int) -> tuple[float, float, float]:
    """``/bin/bash <empty file>`` ``count`` times as the spool floor's consumer runs it (body ``w``)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    try:
        empty = folder / "empty.sh"
        empty.write_text("")
        for i in range(10):
            await _spooled(("/bin/bash", str(empty)), folder / f"warm-{i}")
        t0, c0 = time.perf_counter(), os.times()
        for i in range(count):
            assert await _spooled(("/bin/bash", str(empty)), folder / f"spool-{i}") == 0
        return _per_call(count, t0, c0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.spool_micro")
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--mode", choices=("spool", "plain", "true", "bash", "floor-spool"), default="spool")
    p.add_argument("--script", choices=("sh", "bash"), default="sh")
    args = p.parse_args(argv)
    count = max(1, args.count)
    if args.mode in ("true", "bash"):
        empty = Path(tempfile.mkdtemp(prefix="bench-spool-")) / "empty.sh"
        empty.write_text("")
        argv_ = ["/bin/true"] if args.mode == "true" else ["/bin/bash", str(empty)]
        try:
            wall, cpu, children = asyncio.run(floor_spawns(count, argv_))
        finally:
            shutil.rmtree(empty.parent, ignore_errors=True)
    elif args.mode == "floor-spool":
        wall, cpu, children = asyncio.run(floor_spooled(count))
    else:
        wall, cpu, children = asyncio.run(run(count, args.mode == "spool", shebang=args.script == "sh"))
    print(f"{args.mode} wall_ms={wall * 1000:.3f} cpu_ms={cpu * 1000:.3f} children_cpu_ms={children * 1000:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
