"""The ``netns`` VIM: every host is a real isolated host (root only).

A host gets its own network namespace (one veth per virtual link, on a Linux bridge per link, with
an address of that link's /24 in 198.18.0.0/15; the bridge holds .1 and is the default gateway),
its own UTS hostname, PID namespace, IPC namespace and mount namespace whose root is a copy-on-write
overlay of the machine's root filesystem (see ``gvnfm.vim.netns_host``, the host's init). So a
script that edits /etc/hosts, writes under /root, or runs ``pkill screen`` touches its own host only.

The EMS inside (``python -m gvnfm.ems`` from this Python installation) reaches the broker at the
bridge address .1 of the host's first link: when the user-data's BROKER_IP is loopback (or that
address) the VIM writes .1 into the EMS's properties and, if the broker does not listen there, relays
``.1:<port>`` to ``127.0.0.1:<port>`` (``gvnfm.vim.relay``). Through the relay RabbitMQ sees loopback
connections and ``guest`` works; a broker that listens on the bridge itself sees the hosts' addresses
and refuses ``guest`` (``loopback_users``): then the VIM needs dedicated EMS credentials
(``ems_username``/``ems_password``; the tests create such a user with ``rabbitmqctl add_user`` /
``set_permissions``). ``broker_url``, when
given, overrides the broker address, credentials and virtual host of the user-data (which has no
virtual host); ``ems_username``/``ems_password`` override the credentials again.

Kernel objects are named ``gv<id>...`` (at most 11 characters, IFNAMSIZ is 15): bridges
``gv<vim id>b<n>``, host-side veths ``gv<host id>v<n>``. Every VIM and host is recorded in
``/run/gvnfm/netns`` with its owner's pid before its objects exist; ``NetnsVim.cleanup_stale()`` (run
at start and by ``gvnfm vim cleanup``) removes what dead owners left. A host's init also stops by
itself when its VIM's process dies (end of its control pipe), which removes its namespaces, mounts,
processes and veths; bridges, records and folders are what ``cleanup_stale`` is for.

``ip``, ``unshare``, ``nsenter``, ``mount`` run through ``asyncio.create_subprocess_exec`` with
argument lists; no shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gvnfm
from gvnfm.vim.addresses import SubnetHosts, gateway, subnet
from gvnfm.vim.base import Host, HostSpec, Vim, VimError
from gvnfm.vim.ems_launch import BROKER_CA_PATH, PROPERTIES_PATH, EmsLaunch
from gvnfm.vim.hostdirs import check_hostname, remove_tree, write_private
from gvnfm.vim.images import STANDARD_PATH, Image, get_image, image_exists
from gvnfm.vim.netns_kernel import (
    delete_link,
    init_pid_of,
    ip,
    kernel_subnets_in_use,
    link_exists,
    mkdirs_like_lower,
    needed_binds,
    probe,
)
from gvnfm.vim.netns_state import HostRecord, ProcessId, Registry, VimRecord
from gvnfm.vim.relay import BrokerRelay

log = logging.getLogger(__name__)

HOSTNAME_MAX = 64                      # UTS namespace limit
CREATE_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_UNSAFE_IN_MOUNT_OPTIONS = set(",:\\ \t\n=")


@dataclass
class _Bridge:
    network: str
    name: str
    index: int
    addresses: SubnetHosts
    created: bool = False

    @property
    def gateway(self) -> str:
        return gateway(self.addresses.net)


@dataclass
class _NetnsHost:
    host: Host
    record: HostRecord
    dir: Path
    addresses: dict[str, str] = field(default_factory=dict)    # network -> address
    proc: asyncio.subprocess.Process | None = None
    init_pid: int | None = None
    env: dict[str, str] = field(default_factory=dict)


class NetnsVim(Vim):
    name = "netns"
    _availability: ClassVar[tuple[bool, str] | None] = None

    def __init__(self, state_dir: Path | str, capacity: int = 32, *, ems_username: str | None = None,
                 ems_password: str | None = None, broker_url: str | None = None, start_ems: bool = True,
                 relay: bool = True, run_dir: Path | str | None = None,
                 create_timeout: float = CREATE_TIMEOUT) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.state_dir = Path(state_dir).resolve()
        self.capacity = capacity
        self.ems_username = ems_username
        self.ems_password = ems_password
        self.broker_url = broker_url
        self.start_ems = start_ems
        self.relay = relay
        self.create_timeout = create_timeout
        self.registry = Registry(Path(run_dir) if run_dir is not None else None)
        self._record: VimRecord | None = None
        self._bridges: dict[str, _Bridge] = {}
        self._bridge_locks: dict[str, asyncio.Lock] = {}
        self._relays: dict[tuple[str, int], BrokerRelay | None] = {}
        self._hosts: dict[str, Host] = {}
        self._running: dict[str, _NetnsHost] = {}
        self._pending: set[str] = set()
        self._started = False
        self._closed = False

    # -- interface -----------------------------------------------------------------------------

    @property
    def hosts(self) -> dict[str, Host]:
        return dict(self._hosts)

    def free(self) -> int:
        return self.capacity - len(self._hosts) - len(self._pending)

    @property
    def id(self) -> str:
        return self._ensure_record().id

    async def start(self) -> None:
        """Clean what crashed runs left, then register this VIM (also done by the first create_host)."""
        if self._started:
            return
        self._started = True
        removed = await self.cleanup_stale(self.registry.run_dir)
        for item in removed:
            log.info("event=netns_stale_removed what=%r", item)
        self._ensure_record()

    def broker_address(self, network: str) -> str:
        """The address hosts on ``network`` reach the machine (and the broker) at: its bridge's .1.
        Allocates the link's subnet if needed (the bridge itself is created with the first host)."""
        return self._bridge_plan(network).gateway

    async def create_host(self, spec: HostSpec) -> Host:
        if self._closed:
            raise VimError("the netns VIM is closed")
        hostname = check_hostname(spec.hostname, HOSTNAME_MAX)
        image = get_image(spec.image)
        if hostname in self._hosts or hostname in self._pending:
            raise VimError(f"host {hostname} already exists on the {self.name} VIM")
        if self.free() <= 0:
            raise VimError(f"the {self.name} VIM is full: {self.capacity} hosts, cannot create {hostname}")
        self._pending.add(hostname)
        try:
            await self.start()
            host = await self._create(spec, hostname, image)
        finally:
            self._pending.discard(hostname)
        if self._closed:                     # closed while this host was being made: it goes too
            await self.remove_host(hostname)
            raise VimError(f"the netns VIM was closed while {hostname} was being created")
        return host

    async def remove_host(self, hostname: str) -> None:
        running = self._running.pop(hostname, None)
        if running is None:
            raise VimError(f"host {hostname} does not exist on the {self.name} VIM")
        self._hosts.pop(hostname, None)
        await self._destroy(running)
        log.info("event=host_removed vim=%s host=%s", self.name, hostname)

    async def close(self) -> None:
        self._closed = True
        names = list(self._running)
        results = await asyncio.gather(*(self.remove_host(n) for n in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("event=host_remove_failed vim=%s host=%s error=%r", self.name, name, result)
        for relay in self._relays.values():
            if relay is not None:
                await relay.close()
        self._relays.clear()
        for bridge in list(self._bridges.values()):
            try:
                await delete_link(bridge.name)
            except VimError as exc:
                log.warning("event=bridge_remove_failed bridge=%s error=%s", bridge.name, exc)
        left = False
        for bridge in list(self._bridges.values()):
            left = left or await link_exists(bridge.name)
        self._bridges.clear()
        if self._record is not None and not left:   # else the record stays for cleanup_stale
            with self.registry.locked():
                self.registry.delete(self._record)
            self._record = None
        with contextlib.suppress(OSError):
            (self.state_dir / "hosts").rmdir()

    # -- extras --------------------------------------------------------------------------------

    @staticmethod
    def image_exists(name: str) -> bool:
        return image_exists(name)

    def host_dir(self, hostname: str) -> Path:
        return self.state_dir / "hosts" / hostname

    def host_id(self, hostname: str) -> str | None:
        """The short id in the host's kernel object names (its veths are ``gv<id>v<n>``)."""
        running = self._running.get(hostname)
        return running.record.id if running else None

    def unshare_pid(self, hostname: str) -> int | None:
        running = self._running.get(hostname)
        return running.proc.pid if running and running.proc else None

    def init_pid(self, hostname: str) -> int | None:
        running = self._running.get(hostname)
        return running.init_pid if running else None

    def bridge_name(self, network: str) -> str | None:
        bridge = self._bridges.get(network)
        return bridge.name if bridge else None

    async def run(self, hostname: str, argv: list[str], *, timeout: float = 30.0,
                  stdin: bytes | None = None) -> tuple[int, str, str]:
        """Run a command inside a host (all its namespaces, its root, the scripts' environment):
        ``(exit status, stdout, stderr)``."""
        running = self._running.get(hostname)
        if running is None or running.init_pid is None:
            raise VimError(f"host {hostname} does not exist on the {self.name} VIM")
        nsenter = ["nsenter", "-t", str(running.init_pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--"]
        proc = await asyncio.create_subprocess_exec(
            *nsenter, *argv, env=running.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise VimError(f"host {hostname}: {argv[0]} did not finish within {timeout} s") from None
        return proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace"), \
            err.decode(errors="replace")

    # -- availability --------------------------------------------------------------------------

    @classmethod
    def available(cls, probe_dir: Path | str | None = None) -> tuple[bool, str]:
        """Whether this machine lets the netns VIM work, with the reason when not: root, the tools,
        a bridge, and namespaces with an overlay of / and a fresh /proc (tried for real, once)."""
        if cls._availability is None:
            cls._availability = probe(probe_dir)
        return cls._availability

    # -- clean-up of crashed runs ----------------------------------------------------------------

    @classmethod
    async def cleanup_stale(cls, run_dir: Path | str | None = None) -> list[str]:
        """Remove every host and VIM whose owner process is dead: its processes, veths, bridges,
        folders and records. Returns what was removed."""
        registry = Registry(Path(run_dir) if run_dir is not None else None)
        if not registry.run_dir.is_dir():
            return []
        removed: list[str] = []
        # The lock is never held across an await: another VIM of this very process may need it.
        with registry.locked():
            stale = [rec for rec in registry.records() if not rec.owner.alive()]
        for rec in stale:
            if isinstance(rec, HostRecord):
                await _remove_host_objects(rec)
                with registry.locked():
                    registry.delete(rec)
                removed.append(f"host {rec.hostname} (gv{rec.id}, owner pid {rec.owner.pid})")
        for rec in stale:
            if isinstance(rec, VimRecord):
                for bridge in rec.bridges.values():
                    with contextlib.suppress(VimError):
                        await delete_link(bridge["name"])
                with registry.locked():
                    registry.delete(rec)
                removed.append(f"vim gv{rec.id} (owner pid {rec.owner.pid}, bridges "
                               f"{', '.join(b['name'] for b in rec.bridges.values()) or 'none'})")
        return removed

    # -- internals -----------------------------------------------------------------------------

    def _ensure_record(self) -> VimRecord:
        if self._record is None:
            with self.registry.locked():
                record = VimRecord(id=self.registry.new_id(6), owner=ProcessId.of(os.getpid()),
                                   state_dir=str(self.state_dir))
                self.registry.save(record)
            self._record = record
        return self._record

    def _bridge_plan(self, network: str) -> _Bridge:
        bridge = self._bridges.get(network)
        if bridge is not None:
            return bridge
        record = self._ensure_record()
        with self.registry.locked():
            index = self.registry.free_subnet(kernel_subnets_in_use())
            if index is None:
                raise VimError("no free /24 left in 198.18.0.0/15 for a new virtual link")
            name = f"gv{record.id}b{len(record.bridges)}"
            record.bridges[network] = {"name": name, "index": index}
            self.registry.save(record)
        bridge = _Bridge(network=network, name=name, index=index, addresses=SubnetHosts(subnet(index)))
        self._bridges[network] = bridge
        return bridge

    async def _ensure_bridge(self, network: str) -> _Bridge:
        bridge = self._bridge_plan(network)
        lock = self._bridge_locks.setdefault(network, asyncio.Lock())
        async with lock:
            if not bridge.created:
                await delete_link(bridge.name)   # a leftover of this very record, never someone else's
                await ip("link", "add", bridge.name, "type", "bridge")
                await ip("addr", "add", f"{bridge.gateway}/24", "dev", bridge.name)
                await ip("link", "set", bridge.name, "up")
                bridge.created = True
                log.info("event=bridge_created network=%s bridge=%s subnet=%s", network, bridge.name,
                         bridge.addresses.net)
        return bridge

    async def _ensure_relay(self, bridge: _Bridge, port: int, upstream: tuple[str, int]) -> None:
        key = (bridge.gateway, port)
        if key in self._relays:
            return
        relay = BrokerRelay((bridge.gateway, port), upstream)
        self._relays[key] = relay if await relay.start() else None

    def _given_launch(self, spec: HostSpec, hostname: str) -> EmsLaunch:
        """The EMS settings as the user-data (and ``broker_url``: address, credentials, vhost) say."""
        launch = EmsLaunch.from_userdata(spec.userdata, hostname)
        return launch.with_broker_url(self.broker_url) if self.broker_url else launch

    def _ems_launch(self, spec: HostSpec, hostname: str, first: _Bridge) -> EmsLaunch:
        launch = self._given_launch(spec, hostname)
        if self.ems_username is not None and not launch.host_user:   # a host user is the VM's own
            launch = launch.replace(username=self.ems_username)
        if self.ems_password is not None and not launch.host_user:
            launch = launch.replace(password=self.ems_password)
        gateways = {b.gateway for b in self._bridges.values()}
        if launch.broker_is_loopback or launch.broker_ip in gateways:
            launch = launch.replace(broker_ip=first.gateway)
        return launch

    async def _create(self, spec: HostSpec, hostname: str, image: Image) -> Host:
        networks = list(dict.fromkeys(spec.networks))
        start_ems = self.start_ems and EmsLaunch.starts_ems(spec.userdata)
        if self.start_ems and not start_ems:
            log.info("event=host_without_ems host=%s reason=%r", hostname, "the user-data starts no EMS")
        if start_ems and not networks:
            raise VimError(f"host {hostname}: a netns host needs a virtual link to reach the broker")
        bridges = [await self._ensure_bridge(net) for net in networks]
        launch: EmsLaunch | None = None
        if start_ems:
            given = self._given_launch(spec, hostname)
            launch = self._ems_launch(spec, hostname, bridges[0])
            if self.relay and launch.broker_ip == bridges[0].gateway:
                upstream = given.broker_ip if given.broker_ip.startswith("127.") else "127.0.0.1"
                await self._ensure_relay(bridges[0], launch.broker_port, (upstream, given.broker_port))
        vim = self._ensure_record()
        with self.registry.locked():
            hid = self.registry.new_id(6)
            hdir = self.host_dir(hostname)
            record = HostRecord(id=hid, vim=vim.id, hostname=hostname, owner=ProcessId.of(os.getpid()),
                                dir=str(hdir), veths=[f"gv{hid}v{k}" for k in range(len(networks))])
            self.registry.save(record)
        addresses: dict[str, str] = {}
        running = _NetnsHost(host=Host(hostname=hostname, ips={}), record=record, dir=hdir)
        try:
            for bridge in bridges:
                addresses[bridge.network] = bridge.addresses.take()
            running.addresses = addresses
            shim_dir = await asyncio.to_thread(image.install_shims, self.state_dir / "images")
            running.env = {"PATH": image.path(shim_dir, STANDARD_PATH), "HOME": "/root", "GVNFM_HOST_ROOT": "/",
                           "HOSTNAME": hostname, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
                           "PYTHONDONTWRITEBYTECODE": "1"}
            init_spec = await asyncio.to_thread(self._prepare_dir, hostname, hdir, bridges, addresses, launch,
                                                shim_dir, running.env)
            await asyncio.wait_for(self._boot(running, init_spec, bridges), self.create_timeout)
        except BaseException as exc:
            await asyncio.shield(self._destroy(running))
            if isinstance(exc, VimError):
                raise
            if isinstance(exc, TimeoutError):
                raise VimError(f"host {hostname} did not come up within {self.create_timeout} s"
                               f"{_tail(hdir / 'init.log')}") from None
            if isinstance(exc, Exception):
                raise VimError(f"host {hostname} could not be created: {exc!r}") from exc
            raise
        floating = {net: addresses[net] for net in spec.floating_networks if net in addresses}
        running.host = Host(hostname=hostname, ips=dict(addresses), floating_ips=floating, root=hdir / "upper",
                            scripts_path="/opt/openbaton/scripts", image=image.name)
        self._running[hostname] = running
        self._hosts[hostname] = running.host
        log.info("event=host_created vim=%s host=%s id=gv%s ips=%s image=%s", self.name, hostname, record.id,
                 running.host.ips, image.name)
        return running.host

    def _prepare_dir(self, hostname: str, hdir: Path, bridges: list[_Bridge], addresses: dict[str, str],
                     launch: EmsLaunch | None, shim_dir: Path | None, env: dict[str, str]) -> dict[str, Any]:
        if set(str(hdir)) & _UNSAFE_IN_MOUNT_OPTIONS:
            raise VimError(f"the state folder {hdir} contains a character overlayfs options cannot carry "
                           "(',', ':', '\\', '=' or white space)")
        remove_tree(hdir)
        for sub in ("upper", "work", "merged"):
            (hdir / sub).mkdir(parents=True, mode=0o700)
        os.chmod(hdir, 0o700)
        upper = hdir / "upper"
        first_ip = addresses[bridges[0].network] if bridges else "127.0.1.1"
        etc = mkdirs_like_lower(upper, "etc")
        (etc / "hostname").write_text(hostname + "\n")
        try:
            machine_hosts = Path("/etc/hosts").read_text()
        except OSError:
            machine_hosts = "127.0.0.1 localhost\n"
        kept = [line for line in machine_hosts.splitlines()
                if not (line.split() and line.split()[0].startswith("127.") and len(line.split()) > 1
                        and line.split()[1] != "localhost")]
        (etc / "hosts").write_text("\n".join([*kept, f"{first_ip}\t{hostname}"]) + "\n")
        mkdirs_like_lower(upper, "opt/openbaton/scripts")
        mkdirs_like_lower(upper, "var/log/openbaton")
        ems_argv = None
        if launch is not None:
            openbaton = mkdirs_like_lower(upper, "etc/openbaton")
            pem = launch.ca_to_write()
            if pem is not None:
                write_private(openbaton / Path(BROKER_CA_PATH).name, pem)
                launch = launch.replace(broker_cafile=BROKER_CA_PATH)
            write_private(openbaton / Path(PROPERTIES_PATH).name, launch.properties())
            ems_argv = [sys.executable, "-m", "gvnfm.ems", "--config", PROPERTIES_PATH]
        package_root = Path(gvnfm.__file__).resolve().parent.parent
        wanted = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent, package_root]
        if shim_dir is not None:
            wanted.append(shim_dir)
        spec = {
            "hostname": hostname,
            "upper": str(upper), "work": str(hdir / "work"), "merged": str(hdir / "merged"),
            "binds": needed_binds(wanted),
            "hide": [str(self.state_dir / "hosts")],
            "interfaces": [{"name": f"eth{k}", "address": f"{addresses[b.network]}/24"}
                           for k, b in enumerate(bridges)],
            "gateway": bridges[0].gateway if bridges else None,
            "ems": ems_argv,
            "env": env,
            "net_timeout": self.create_timeout,
        }
        spec_path = hdir / "init.json"
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(spec, fh)
        spec["path"] = str(spec_path)
        return spec

    async def _boot(self, running: _NetnsHost, init_spec: dict[str, Any], bridges: list[_Bridge]) -> None:
        hdir = running.dir
        argv = ["unshare", "--net", "--uts", "--ipc", "--pid", "--mount", "--fork", "--propagation", "private",
                "--kill-child", "--", sys.executable, "-m", "gvnfm.vim.netns_host", init_spec["path"]]
        errlog = await asyncio.to_thread(open, hdir / "init.log", "ab")
        try:
            running.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errlog,
                start_new_session=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        finally:
            errlog.close()
        proc = running.proc
        running.record.proc = ProcessId.of(proc.pid)
        with self.registry.locked():
            self.registry.save(running.record)
        await self._expect(running, "ready")
        running.init_pid = init_pid_of(proc.pid)
        batch = []
        for k, bridge in enumerate(bridges):
            veth = running.record.veths[k]
            batch += [f"link add {veth} type veth peer name eth{k} netns {proc.pid}",
                      f"link set {veth} master {bridge.name}", f"link set {veth} up"]
        if batch:
            await ip("-batch", "-", input_text="\n".join(batch) + "\n")
        assert proc.stdin is not None
        proc.stdin.write(b"net\n")
        await proc.stdin.drain()
        await self._expect(running, "up")

    async def _expect(self, running: _NetnsHost, word: str) -> None:
        proc = running.proc
        assert proc is not None and proc.stdout is not None
        line = (await proc.stdout.readline()).decode(errors="replace").strip()
        if line == word:
            return
        if line.startswith("error "):
            raise VimError(f"host {running.record.hostname}: {line[6:]}")
        raise VimError(f"host {running.record.hostname}: its init stopped before '{word}' (said {line!r})"
                       f"{_tail(running.dir / 'init.log')}")

    async def _destroy(self, running: _NetnsHost) -> None:
        proc = running.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write(b"stop\n")
                await proc.stdin.drain()
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("event=host_stop_timeout host=%s action=kill", running.record.hostname)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()             # unshare --kill-child: its init gets SIGKILL, the PID namespace goes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        await _remove_host_objects(running.record, proc_already_stopped=True)
        for network, address in running.addresses.items():
            bridge = self._bridges.get(network)
            if bridge is not None:
                bridge.addresses.give_back(address)
        with self.registry.locked():
            self.registry.delete(running.record)


async def _remove_host_objects(rec: HostRecord, proc_already_stopped: bool = False) -> None:
    """Kill a host's processes (if its recorded unshare still runs), delete its veths and folder."""
    if rec.proc is not None and not proc_already_stopped and rec.proc.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(rec.proc.pid, signal.SIGKILL)   # --kill-child takes the init, and the PID namespace, along
        for _ in range(int(STOP_TIMEOUT / 0.05)):
            if not rec.proc.alive():
                break
            await asyncio.sleep(0.05)
    # the veths vanish with the network namespace, which can take a moment after the processes died
    for veth in rec.veths:
        for _ in range(40):
            if not await link_exists(veth):
                break
            await asyncio.sleep(0.05)
        else:
            with contextlib.suppress(VimError):
                await delete_link(veth)
    await asyncio.to_thread(remove_tree, Path(rec.dir))


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (": " + " | ".join(text)) if text else ""
