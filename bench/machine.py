"""What the figures were taken on: cores, CPU model, memory, RabbitMQ and Python versions, load."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from bench.amqp import server_version


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


async def describe(url: str) -> dict[str, Any]:
    try:
        rabbit = await server_version(url)
    except Exception as exc:  # the table says so rather than failing the whole run
        rabbit = f"unknown ({exc.__class__.__name__})"
    return {"nproc": os.cpu_count(), "cpu": _cpu_model(), "mem_mib": _mem_total_mib(), "rabbitmq": rabbit,
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_at_start": list(os.getloadavg())}
