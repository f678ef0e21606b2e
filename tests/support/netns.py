"""What netns hosts leave on the machine, for the tests that check that nothing outlives them: network
links, mounts, processes, registry records."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def mounts() -> str:
    return Path("/proc/mounts").read_text()


def host_processes(hostnames: Iterable[str], state_dir: Path | None = None) -> list[int]:
    """Processes running on one of these netns hosts (their environment: ``GVNFM_HOST_ROOT=/`` and
    ``HOSTNAME=<host>``), or, with ``state_dir``, whose command line names it (the hosts' init)."""
    names = {f"HOSTNAME={h}".encode() for h in hostnames}
    state = str(state_dir).encode() if state_dir is not None else None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if (b"GVNFM_HOST_ROOT=/" in environ and environ & names) or (state is not None and state in cmdline):
            found.append(int(entry.name))
    return found


def leftovers_of_run(state_dir: Path, hostnames: list[str]) -> list[str]:
    """What a finished ``gvnfm up --vim netns`` on ``state_dir`` left behind: the kernel names of its
    hosts and bridges are in its log (``<state>/up.log``)."""
    from gvnfm.vim.netns_state import Registry

    log = (state_dir / "up.log").read_text()
    host_ids = re.findall(r"event=host_created vim=netns host=\S+ id=(gv\w+)", log)
    bridges = set(re.findall(r"event=bridge_created .*?bridge=(gv\w+)", log))
    problems = []
    if len(host_ids) < len(hostnames) or not bridges:
        problems.append(f"the log names {len(host_ids)} hosts and {len(bridges)} bridges for {hostnames}")
    left = sorted(name for name in links() if name in bridges or any(name.startswith(f"{h}v") for h in host_ids))
    if left:
        problems.append(f"links {left}")
    if str(state_dir) in mounts():
        problems.append(f"mounts under {state_dir}")
    pids = host_processes(hostnames, state_dir)
    if pids:
        problems.append(f"processes {pids}")
    records = [r.hostname for r in Registry().hosts() if r.hostname in hostnames]
    if records:
        problems.append(f"registry records of {records}")
    return problems
