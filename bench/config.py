"""What a bench run measures and how (the command line's options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CASES = ("ems-footprint", "per-script", "fan-out", "storm", "memory")
#: Not run by default: fan-out with scripts that sleep (latency-bound work, to show how wall time
#: follows ⌈N / concurrency⌉ when the machine is not the limit).
EXTRA_CASES = ("latency", "many-ns")
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@dataclass
class BenchConfig:
    broker: str = DEFAULT_BROKER
    sizes: list[int] = field(default_factory=lambda: [10, 100, 1000])
    scripts: int = 200                 # case 1: empty scripts in one event on one VNFC
    fanout_scripts: int = 3            # case 2: empty scripts per VNFC
    concurrency: int = 32              # the VNFM's per-operation bound (its default)
    sequential: bool = True            # also run fan-out with concurrency 1 (the reference's order)
    repeat: int = 5                    # alternating pairs per figure (median, min–max), capped so N × repeat ≤ 5000
    cases: tuple[str, ...] = CASES
    workdir: Path | None = None        # None: a temporary folder, removed afterwards
    profile: Path | None = None        # write a cProfile of the hottest case (VNFM and fleet) here
    vnfm_log_level: str = "INFO"
    op_timeout: float = 900.0          # one INSTANTIATE, seconds
    script_sleep: float = 0.05         # "latency" case: seconds every script sleeps
    stomp_broker: str | None = None    # also per-script and fan-out with the VNFM and EMSs on STOMP
    stomp_size: int = 100              # N of the fan-out STOMP row
    many_ops: int = 100                # "many-ns": INSTANTIATEs at once ...
    many_vnfcs: int = 10               # ... of this many VNFCs each
    pg_url: str | None = DEFAULT_PG    # "many-ns": the PostgreSQL server of the two-worker set-up (None: skip it)
    pg_workers: tuple[int, ...] = (2,)   # "many-ns": VNFM workers of each PostgreSQL set-up, one set-up each
    floor_channel_per_queue: bool = False   # the floor's consumers on a channel each (the fleet before the tenth round)
    floor_via_exchange: bool = False        # the floor's requests through a topic exchange, as gvnfm's

    def repeats_for(self, n: int) -> int:
        return max(1, min(self.repeat, 5000 // max(1, n)))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["workdir"] = str(self.workdir) if self.workdir else None
        out["profile"] = str(self.profile) if self.profile else None
        out["cases"] = list(self.cases)
        out["pg_workers"] = list(self.pg_workers)
        out["broker"] = _redact(self.broker)
        out["stomp_broker"] = _redact(self.stomp_broker) if self.stomp_broker else None
        out["pg_url"] = _redact(self.pg_url) if self.pg_url else None
        return out


def _redact(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
