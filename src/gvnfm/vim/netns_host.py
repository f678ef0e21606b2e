"""The init (PID 1) of a ``netns`` host: ``python -m gvnfm.vim.netns_host <spec.json>``.

Started by ``NetnsVim`` as ``unshare --net --uts --ipc --pid --mount --fork --propagation private
--kill-child -- python -m gvnfm.vim.netns_host spec.json``, so it runs in fresh namespaces. It:

1. sets the UTS hostname;
2. builds the host's root: an overlay with the machine's root filesystem as the read-only lower layer
   and the VIM's ``upper``/``work`` folders, a fresh ``/proc`` (new PID namespace), a fresh ``/sys``
   (new network namespace), ``/dev`` with its own ``/dev/pts`` and ``/dev/shm``, fresh tmpfs on
   ``/run`` and ``/tmp``, read-only binds of what the EMS needs that the root filesystem lacks (the
   Python installation, the project), and tmpfs over the other hosts' folders; then ``pivot_root``
   into it and detaches the machine's tree;
3. says ``ready`` on stdout and waits for ``net`` on stdin (the VIM has created the veths), brings up
   the interfaces, addresses and default route;
4. starts the EMS (restarting it with back-off if it dies), says ``up``;
5. supervises: reaps orphans, and on ``stop`` or end of stdin (the VIM's process is gone) terminates
   every process of the host and exits, which makes the kernel remove the namespaces, the mounts and
   the veths. Signals from the host's own processes cannot stop it.

Only the standard library: this runs before and after the root changes under it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STDIN = 0
OLD_ROOT = ".gvnfm-oldroot"
STOP_GRACE = 5.0


class InitError(Exception):
    pass


def say(line: str) -> None:
    os.write(1, (line.replace("\n", " ") + "\n").encode())


def note(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    sys.stderr.write(f"{stamp} netns-init: {message}\n")
    sys.stderr.flush()


def run(argv: list[str], *, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InitError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise InitError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


def mount(*args: str, check: bool = True) -> bool:
    return run(["mount", *args], check=check).returncode == 0


class Lines:
    """Line reader on stdin with deadlines (the VIM's control channel); SIGCHLD
    ends the wait early through the wake-up pipe, so orphans are reaped at once."""

    def __init__(self) -> None:
        self.buffer = b""
        self.eof = False
        self.pending: list[str] = []
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def poll(self, timeout: float) -> list[str]:
        watched = [self.wake_r] if self.eof else [STDIN, self.wake_r]
        try:
            ready, _, _ = select.select(watched, [], [], timeout)
        except InterruptedError:
            return []
        if self.wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.wake_r, 512):
                    pass
        if STDIN not in ready:
            return []
        chunk = os.read(STDIN, 4096)
        if not chunk:
            self.eof = True
            return []
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode(errors="replace").strip() for line in lines]

    def wait_for(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pending += self.poll(max(0.0, deadline - time.monotonic()))
            if self.pending:
                return self.pending.pop(0)
        return None


def build_root(spec: dict[str, Any]) -> None:
    merged = spec["merged"]
    m = Path(merged)
    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir=/,upperdir={spec['upper']},workdir={spec['work']}", merged)
    mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(m / "proc"))
    if not mount("-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", str(m / "sys"), check=False):
        mount("--rbind", "/sys", str(m / "sys"))
    mount("--rbind", "/dev", str(m / "dev"))
    (m / "dev/shm").mkdir(exist_ok=True)
    mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "tmpfs", str(m / "dev/shm"))
    if mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620", "devpts", str(m / "dev/pts"), check=False):
        mount("--bind", str(m / "dev/pts/ptmx"), str(m / "dev/ptmx"), check=False)
    mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=755", "tmpfs", str(m / "run"))
    (m / "run/lock").mkdir(mode=0o1777, exist_ok=True)
    os.chmod(m / "run/lock", 0o1777)
    mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "tmpfs", str(m / "tmp"))
    for path in spec.get("binds", []):
        target = m / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        mount("--rbind", path, str(target))
        mount("-o", "remount,bind,ro", str(target), check=False)
    for path in spec.get("hide", []):
        target = m / path.lstrip("/")
        if target.is_dir():
            mount("-t", "tmpfs", "-o", "ro,size=16k,mode=755", "tmpfs", str(target))
    os.chdir(merged)
    os.makedirs(OLD_ROOT, exist_ok=True)
    run(["pivot_root", ".", OLD_ROOT])
    os.chdir("/")
    run(["umount", "-l", f"/{OLD_ROOT}"])
    with contextlib.suppress(OSError):
        os.rmdir(f"/{OLD_ROOT}")


def configure_network(spec: dict[str, Any]) -> None:
    commands = ["link set lo up"]
    for iface in spec.get("interfaces", []):
        commands += [f"addr add {iface['address']} dev {iface['name']}", f"link set {iface['name']} up"]
    if spec.get("gateway"):
        commands.append(f"route add default via {spec['gateway']}")
    run(["ip", "-batch", "-"], input_text="\n".join(commands) + "\n")


class Ems:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.argv: list[str] | None = spec.get("ems")
        self.env: dict[str, str] = spec.get("env", {})
        self.log = spec.get("ems_log", "/var/log/openbaton/ems.out")
        self.pid: int | None = None
        self.failures = 0
        self.next_start = 0.0

    def start(self) -> None:
        if not self.argv:
            return
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env, cwd="/", start_new_session=True)
        self.pid = proc.pid
        note(f"EMS started pid={self.pid}")

    def exited(self, status: int) -> None:
        note(f"EMS pid={self.pid} exited status={status}")
        self.pid = None
        self.failures += 1
        self.next_start = time.monotonic() + min(30.0, 2.0 ** min(self.failures - 1, 5))

    def due(self) -> bool:
        return bool(self.argv) and self.pid is None and time.monotonic() >= self.next_start


def reap(ems: Ems) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == ems.pid:
            ems.exited(os.waitstatus_to_exitcode(status))


def shutdown() -> None:
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGTERM)  # every process of this PID namespace but init
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGKILL)


def _ignore(_signum: int, _frame: object) -> None:
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m gvnfm.vim.netns_host SPEC.json\n")
        return 2
    stopping = {"flag": False}
    # Signals from the host's processes (``kill -TERM 1``, ``pkill python``) must not take the host
    # down, as on a VM with a real init. The VIM stops a host through the control pipe ("stop", or its
    # end) or SIGKILL of ``unshare``.
    # No-op handlers rather than SIG_IGN: an ignored disposition would be inherited by the EMS and
    # every script (``pkill iperf`` would no longer work); a handler is reset to default by exec.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGCHLD):   # SIGCHLD also wakes the supervision loop (wake-up fd)
        signal.signal(sig, _ignore)
    lines = Lines()
    try:
        spec = json.loads(Path(argv[0]).read_text())
        socket.sethostname(spec["hostname"])
        build_root(spec)
        say("ready")
        answer = lines.wait_for(spec.get("net_timeout", 60))
        if answer != "net":
            note(f"no network from the VIM (got {answer!r}), stopping")
            return 1
        configure_network(spec)
        ems = Ems(spec)
        ems.start()
    except (InitError, OSError, KeyError, ValueError) as exc:
        note(f"set-up failed: {exc}")
        say(f"error {exc}")
        return 1
    say("up")
    note("host up")
    while not stopping["flag"]:
        lines.pending += lines.poll(0.5)
        while lines.pending:
            line = lines.pending.pop(0)
            if line == "stop":
                stopping["flag"] = True
        if lines.eof:
            note("the VIM is gone (end of control channel), stopping")
            stopping["flag"] = True
        reap(ems)
        if not stopping["flag"] and ems.due():
            try:
                ems.start()
            except OSError as exc:
                ems.exited(-1)
                note(f"cannot start the EMS: {exc}")
    note("stopping")
    shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
