"""Kernel-side helpers of the ``netns`` VIM: ``ip`` and friends through argument lists (never a
shell), what the machine's mounts mean for a host's root, and the availability probe."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gvnfm.vim.addresses import BENCHMARK_NET, subnet_index
from gvnfm.vim.base import VimError

TOOLS = ("ip", "unshare", "nsenter", "mount", "umount", "pivot_root")


class KernelError(VimError):
    pass


async def run_tool(argv: list[str], *, input_text: str | None = None, timeout: float = 30.0) -> tuple[int, str, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if input_text is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise KernelError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(input_text.encode() if input_text is not None else None),
                                          timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise KernelError(f"{' '.join(argv)} did not finish within {timeout} s") from None
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def ip(*args: str, input_text: str | None = None, check: bool = True) -> str:
    rc, out, err = await run_tool(["ip", *args], input_text=input_text)
    if check and rc != 0:
        raise KernelError(f"ip {' '.join(args)}: {err.strip() or out.strip()} (exit {rc})")
    return out


async def link_exists(name: str) -> bool:
    rc, _, _ = await run_tool(["ip", "link", "show", "dev", name])
    return rc == 0


async def delete_link(name: str) -> bool:
    """Delete an interface if it exists; True when it was there."""
    if not await link_exists(name):
        return False
    rc, _, err = await run_tool(["ip", "link", "del", "dev", name])
    if rc != 0 and await link_exists(name):
        raise KernelError(f"cannot delete interface {name}: {err.strip()}")
    return True


def kernel_subnets_in_use() -> set[int]:
    """/24 indexes of 198.18.0.0/15 that the machine's interfaces already have addresses in."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    used: set[int] = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            try:
                iface = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
            except (ValueError, IndexError):
                continue
            if iface.ip in BENCHMARK_NET:
                used.add(subnet_index(ipaddress.IPv4Network((int(iface.ip) & ~0xFF, 24))))
    return used


def mount_point(path: str) -> str:
    """The mount point ``path`` lives under (from /proc/self/mountinfo)."""
    best = "/"
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                point = line.split()[4].encode().decode("unicode_escape")
                if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                    best = point
    except OSError:
        pass
    return best


# Where a host gets fresh file systems of its own: the machine's files there are not visible inside.
FRESH_MOUNTS = ("/proc", "/sys", "/dev", "/run", "/tmp")


def needed_binds(paths: list[Path]) -> list[str]:
    """Folders the host needs that the overlay of the root filesystem does not show (they are on
    another mount, or under a folder the host mounts afresh): bound read-only at the same place."""
    binds: list[str] = []
    for p in paths:
        real = os.path.realpath(p)
        if not os.path.exists(real):
            continue
        fresh = any(real == f or real.startswith(f + "/") for f in FRESH_MOUNTS)
        if not fresh and mount_point(real) == "/":
            continue
        if any(real == b or real.startswith(b + "/") for b in binds):
            continue
        binds = [b for b in binds if not b.startswith(real + "/")] + [real]
    return binds


def init_pid_of(unshare_pid: int) -> int | None:
    """The root-namespace pid of the host's init: the child of ``unshare``."""
    try:
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
        if children:
            return int(children[0])
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
                if int(stat[stat.rindex(b")") + 2:].split()[1]) == unshare_pid:
                    return int(entry.name)
            except (OSError, ValueError):
                continue
    return None


def mkdirs_like_lower(upper: Path, rel: str) -> Path:
    """Create ``upper/rel`` giving each new folder the mode and owner of the same folder in the machine's
    root (the lower layer), so the merged view keeps them."""
    current = upper
    for part in Path(rel).parts:
        current = current / part
        if current.is_dir():
            continue
        current.mkdir()
        lower = Path("/") / current.relative_to(upper)
        try:
            st = lower.stat()
            os.chmod(current, st.st_mode & 0o7777)
            os.chown(current, st.st_uid, st.st_gid)
        except OSError:
            os.chmod(current, 0o755)
    return current


def probe(probe_dir: Path | str | None) -> tuple[bool, str]:
    """Whether this machine lets the netns VIM work (tried for real), with the reason."""
    if sys.platform != "linux":
        return False, f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return False, f"the netns VIM needs root (running as uid {os.geteuid()})"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return False, f"missing tools: {', '.join(missing)} (install iproute2 and util-linux)"
    probe = f"gvprobe{os.getpid() % 100000}"
    done = subprocess.run(["ip", "link", "add", probe, "type", "bridge"], capture_output=True, text=True,
                          timeout=15, check=False)
    if done.returncode != 0:
        return False, f"cannot create a Linux bridge: {done.stderr.strip()}"
    subprocess.run(["ip", "link", "del", probe], capture_output=True, timeout=15, check=False)
    base = Path(probe_dir) if probe_dir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gvnfm-netns-probe-", dir=base) as tmp:
        for sub in ("u", "w", "m"):
            (Path(tmp) / sub).mkdir()
        script = (
            "import subprocess,sys\n"
            "t=sys.argv[1]\n"
            "def m(*a):\n"
            "    r=subprocess.run(['mount',*a],capture_output=True,text=True)\n"
            "    if r.returncode: print(' '.join(a[:3]), r.stderr.strip()); sys.exit(1)\n"
            "m('-t','overlay','overlay','-o',f'lowerdir=/,upperdir={t}/u,workdir={t}/w',f'{t}/m')\n"
            "m('-t','proc','proc',f'{t}/m/proc')\n"
            "print('ok')\n")
        try:
            done = subprocess.run(
                ["unshare", "--net", "--uts", "--ipc", "--pid", "--mount", "--fork", "--propagation", "private",
                 "--", sys.executable, "-c", script, tmp], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return False, f"cannot run unshare: {exc}"
        if done.returncode != 0 or "ok" not in done.stdout:
            why = (done.stdout.strip() + " " + done.stderr.strip()).strip()
            return False, f"namespaces with an overlay root are refused here: {why}"
    return True, "root, iproute2, util-linux, bridges, namespaces and overlayfs are all available"
