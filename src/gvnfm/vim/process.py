"""The ``process`` VIM: a host is a folder, a loopback address per virtual link and an EMS agent.

No privileges needed. Host ``h`` gets ``<state>/hosts/h/`` as its filesystem root: the EMS keeps its
scripts in ``<root>/opt/openbaton/scripts``, its logs in ``<root>/var/log/openbaton`` and its
properties in ``<root>/etc/openbaton/openbaton-ems.properties``; the scripts run with
``HOME=<root>/root``, ``GVNFM_HOST_ROOT=<root>`` and the image's shims first on ``PATH``.

- With a ``transport_factory`` (the in-memory broker) the agents live inside this process and their
  scripts are child processes of it. The factory returns a connected transport per host, which the VIM
  closes when the host goes (if it returns the same object for several hosts, that shared transport
  is left to its owner).
- Otherwise each host's EMS is a process of its own, ``python -m gvnfm.ems --config <properties>``,
  configured from the user-data exactly as the user-data script would (``broker_url`` overrides the
  broker address and credentials). It dies with this process (parent-death signal).
- The user-data itself is not run (a process host is no VM with cloud-init, and the script would write
  to this machine's ``/etc``): the VIM starts the EMS the user-data would start, from its values. A
  user-data that starts no EMS (no ``BROKER_IP``: python-vnfm-sdk's ``none``, a script of the VNF's
  own) gives a host without an EMS: created, addressed and removed like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gvnfm.ems import EmsAgent, EmsConfig
from gvnfm.transport.base import Transport
from gvnfm.vim.addresses import LoopbackPlan
from gvnfm.vim.base import Host, HostSpec, Vim, VimError
from gvnfm.vim.ems_launch import BROKER_CA_PATH, PROPERTIES_PATH, EmsLaunch
from gvnfm.vim.hostdirs import check_hostname, fresh_dir, remove_tree, write_private
from gvnfm.vim.images import Image, get_image, image_exists
from gvnfm.vim.reaper import reap

log = logging.getLogger(__name__)

TransportFactory = Callable[[], Transport | Awaitable[Transport]]

SCRIPTS = "opt/openbaton/scripts"
LOGS = "var/log/openbaton"
EMS_STATE = "var/lib/gvnfm-ems"
STOP_GRACE = 5.0

# Run argv[2:] with a parent-death signal: the EMS must not outlive the VIM that started it.
_PDEATHSIG = ("import ctypes,os,signal,sys\n"
              "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
              "if os.getppid() != int(sys.argv[1]): sys.exit(0)\n"
              "os.execv(sys.argv[2], sys.argv[2:])\n")


def host_env(root: Path, path: str, hostname: str | None = None) -> dict[str, str]:
    """What a host's scripts see on top of the EMS's environment: ``HOSTNAME`` is the host's own name
    (the default image's ``hostname`` shim prints it), not the machine's."""
    return {"HOME": str(root / "root"), "GVNFM_HOST_ROOT": str(root), "PATH": path,
            "HOSTNAME": hostname or root.name}


@dataclass
class _Running:
    host: Host
    root: Path
    env: dict[str, str]
    agent: Any = None
    transport: Transport | None = None
    proc: asyncio.subprocess.Process | None = None
    spec: HostSpec | None = None


class ProcessVim(Vim):
    name = "process"

    def __init__(self, state_dir: Path | str, capacity: int = 64, *,
                 transport_factory: TransportFactory | None = None, broker_url: str | None = None,
                 start_ems: bool = True) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.state_dir = Path(state_dir).resolve()
        self.capacity = capacity
        self.transport_factory = transport_factory
        self.broker_url = broker_url
        self.start_ems = start_ems
        self._hosts: dict[str, Host] = {}
        self._running: dict[str, _Running] = {}
        self._pending: set[str] = set()
        self._rebuilding: set[str] = set()
        self._addresses = LoopbackPlan()
        self._shared_transports: set[int] = set()
        self._lock = asyncio.Lock()

    @property
    def hosts(self) -> dict[str, Host]:
        return dict(self._hosts)

    @staticmethod
    def image_exists(name: str) -> bool:
        return image_exists(name)

    def host_root(self, hostname: str) -> Path:
        return self.state_dir / "hosts" / hostname

    def free(self) -> int:
        return self.capacity - len(self._hosts) - len(self._pending)

    async def create_host(self, spec: HostSpec) -> Host:
        hostname = check_hostname(spec.hostname)
        image = get_image(spec.image)
        async with self._lock:
            if hostname in self._hosts or hostname in self._pending:
                raise VimError(f"host {hostname} already exists on the {self.name} VIM")
            if self.free() <= 0:
                raise VimError(f"the {self.name} VIM is full: {self.capacity} hosts, cannot create {hostname}")
            self._pending.add(hostname)
        try:
            running = await self._build(spec, hostname, image)
        except BaseException as exc:
            self._addresses.release(hostname)
            await asyncio.shield(asyncio.to_thread(remove_tree, self.host_root(hostname)))
            if isinstance(exc, Exception) and not isinstance(exc, VimError):
                raise VimError(f"host {hostname} could not be created: {exc!r}") from exc
            raise
        finally:
            self._pending.discard(hostname)
        self._running[hostname] = running
        self._hosts[hostname] = running.host
        log.info("event=host_created vim=%s host=%s ips=%s image=%s root=%s", self.name, hostname,
                 running.host.ips, image.name, running.root)
        return running.host

    async def _build(self, spec: HostSpec, hostname: str, image: Image,
                     ips: dict[str, str] | None = None) -> _Running:
        ips = ips if ips is not None else self._addresses.allocate(hostname, list(spec.networks))
        floating = {net: ips[net] for net in spec.floating_networks if net in ips}
        root = self.host_root(hostname)
        await asyncio.to_thread(self._make_tree, root)
        shim_dir = await asyncio.to_thread(image.install_shims, self.state_dir / "images")
        env = host_env(root, image.path(shim_dir), hostname)
        host = Host(hostname=hostname, ips=ips, floating_ips=floating, root=root,
                    scripts_path=str(root / SCRIPTS), image=image.name)
        running = _Running(host=host, root=root, env=env, spec=spec)
        if self.start_ems and not EmsLaunch.starts_ems(spec.userdata):
            log.info("event=host_without_ems host=%s reason=%r", hostname, "the user-data starts no EMS")
        elif self.start_ems:
            launch = EmsLaunch.from_userdata(spec.userdata, hostname)
            if self.broker_url:
                launch = launch.with_broker_url(self.broker_url)
            pem = launch.ca_to_write()
            if pem is not None:
                ca = root / BROKER_CA_PATH.lstrip("/")
                await asyncio.to_thread(write_private, ca, pem)
                launch = launch.replace(broker_cafile=str(ca))
            props = launch.properties({"root": str(root), "scripts_path": str(root / SCRIPTS),
                                       "log_dir": str(root / LOGS), "state_dir": str(root / EMS_STATE)})
            await asyncio.to_thread(write_private, root / PROPERTIES_PATH.lstrip("/"), props)
            if self.transport_factory is not None:
                await self._start_agent(running, launch)
            else:
                await self._start_subprocess(running)
        return running

    @staticmethod
    def _make_tree(root: Path) -> None:
        fresh_dir(root)
        for sub in (SCRIPTS, LOGS, EMS_STATE, "etc/openbaton", "root", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "root").chmod(0o700)

    async def _start_agent(self, running: _Running, launch: EmsLaunch) -> None:
        assert self.transport_factory is not None
        transport = self.transport_factory()
        if inspect.isawaitable(transport):
            transport = await transport
        try:
            await transport.connect()        # idempotent: a factory may hand out unconnected transports
        except Exception as exc:
            raise VimError(f"host {launch.hostname}: the EMS transport does not connect: {exc}") from exc
        if any(r.transport is transport for r in self._running.values()):
            self._shared_transports.add(id(transport))   # the factory hands out one shared connection
        root = running.root
        values: dict[str, Any] = {
            "broker_ip": launch.broker_ip, "broker_port": launch.broker_port, "username": launch.username,
            "password": launch.password, "hostname": launch.hostname, "type": launch.type,
            "autodelete": launch.autodelete, "exchange": launch.exchange, "heartbeat": launch.heartbeat,
            "virtual_host": launch.virtual_host, "scripts_path": str(root / SCRIPTS),
            "log_dir": str(root / LOGS), "state_dir": str(root / EMS_STATE), "extra_env": dict(running.env),
            "root": str(root),
        }
        known = getattr(EmsConfig, "model_fields", None)
        if known is not None:
            values = {k: v for k, v in values.items() if k in known}
        try:
            agent = EmsAgent(EmsConfig(**values), transport=transport)
            await agent.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await transport.close()
            raise VimError(f"host {launch.hostname}: the EMS agent did not start: {exc}") from exc
        running.agent, running.transport = agent, transport

    async def _start_subprocess(self, running: _Running) -> None:
        root = running.root
        env = {**os.environ, **running.env, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-c", _PDEATHSIG, str(os.getpid()),
                sys.executable, "-m", "gvnfm.ems", "--config", str(root / PROPERTIES_PATH.lstrip("/"))]
        out = await asyncio.to_thread(open, root / LOGS / "ems.out", "ab")
        try:
            running.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                cwd=str(root), env=env, start_new_session=True)
        except OSError as exc:
            raise VimError(f"host {running.host.hostname}: cannot start the EMS: {exc}") from exc
        finally:
            out.close()

    async def rebuild_host(self, hostname: str, image: str | None = None) -> Host:
        running = self._running.get(hostname)
        if running is None or running.spec is None or hostname in self._rebuilding:
            raise VimError(f"host {hostname} does not exist on the {self.name} VIM (or is being rebuilt)")
        spec = dataclasses.replace(running.spec, image=image or running.spec.image)
        new_image = get_image(spec.image)       # UnknownImage before anything is touched
        self._rebuilding.add(hostname)
        try:
            await self._stop(running)
            reaped = await asyncio.to_thread(reap, running.root)
            if reaped:
                log.info("event=host_processes_reaped host=%s pids=%s", hostname, reaped)
            rebuilt = await self._build(spec, hostname, new_image, ips=dict(running.host.ips))
        except BaseException as exc:
            # the old host is gone and the new one did not come up: no host at all
            self._running.pop(hostname, None)
            self._hosts.pop(hostname, None)
            self._addresses.release(hostname)
            await asyncio.shield(asyncio.to_thread(remove_tree, running.root))
            if isinstance(exc, Exception) and not isinstance(exc, VimError):
                raise VimError(f"host {hostname} could not be rebuilt: {exc!r}") from exc
            raise
        finally:
            self._rebuilding.discard(hostname)
        self._running[hostname] = rebuilt
        self._hosts[hostname] = rebuilt.host
        log.info("event=host_rebuilt vim=%s host=%s ips=%s image=%s", self.name, hostname, rebuilt.host.ips,
                 new_image.name)
        return rebuilt.host

    async def remove_host(self, hostname: str) -> None:
        running = self._running.pop(hostname, None)
        if running is None:
            raise VimError(f"host {hostname} does not exist on the {self.name} VIM")
        self._hosts.pop(hostname, None)
        try:
            await self._stop(running)
            # daemons the host's scripts left behind (screen -d -m, nohup ... &) are not in any
            # process group we know: find them by the host's marker variable
            reaped = await asyncio.to_thread(reap, running.root)
            if reaped:
                log.info("event=host_processes_reaped host=%s pids=%s", hostname, reaped)
        finally:
            self._addresses.release(hostname)
            await asyncio.to_thread(remove_tree, running.root)
        log.info("event=host_removed vim=%s host=%s", self.name, hostname)

    async def _stop(self, running: _Running) -> None:
        if running.agent is not None:
            try:
                await asyncio.wait_for(running.agent.stop(), STOP_GRACE)
            except Exception as exc:  # a stuck agent must not keep the host
                log.warning("event=ems_stop_failed host=%s error=%r", running.host.hostname, exc)
        transport = running.transport
        if transport is not None and not any(r.transport is transport for r in self._running.values()):
            if id(transport) not in self._shared_transports:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(transport.close(), STOP_GRACE)
        if running.proc is not None:
            await stop_process_group(running.proc, STOP_GRACE)

    async def close(self) -> None:
        names = list(self._running)
        results = await asyncio.gather(*(self.remove_host(n) for n in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("event=host_remove_failed vim=%s host=%s error=%r", self.name, name, result)

    async def run(self, hostname: str, argv: list[str], *, timeout: float = 30.0,
                  stdin: bytes | None = None) -> tuple[int, str, str]:
        """Run a command on a host the way its scripts run (cwd = host root, host environment):
        ``(exit status, stdout, stderr)``."""
        running = self._running.get(hostname)
        if running is None:
            raise VimError(f"host {hostname} does not exist on the {self.name} VIM")
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=str(running.root), env={**os.environ, **running.env},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            await stop_process_group(proc, 1.0)
            raise VimError(f"host {hostname}: {argv[0]} did not finish within {timeout} s") from None
        return proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace"), \
            err.decode(errors="replace")

    def ems_process(self, hostname: str) -> asyncio.subprocess.Process | None:
        running = self._running.get(hostname)
        return running.proc if running else None




async def stop_process_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group led by ``proc``, SIGKILL it after ``grace`` seconds."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            pass
    # whatever is left of the group (scripts the EMS started) goes too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
