"""Local hosts whose EMS is a real ``python -m gvnfm.ems`` process talking to the shared RabbitMQ.

- process VIM: the EMS runs as a subprocess configured from the user-data's values (guest, loopback);
- netns VIM: the EMS runs inside an isolated host and reaches the broker over the bridge (the VIM
  relays the bridge's .1 to the loopback-only broker) with a dedicated RabbitMQ user, created here with
  ``rabbitmqctl add_user`` / ``set_permissions`` and deleted at the end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gvnfm.catalogue.userdata import EmsBootstrap, render, set_hostname
from gvnfm.transport import Delivery, Transport, open_transport
from gvnfm.vim.base import HostSpec
from gvnfm.vim.netns import NetnsVim
from gvnfm.vim.process import ProcessVim
from tests.support.services import unique


class Vnfm:
    """The VNFM's side: the registration queue of an endpoint, and commands to the EMSs."""

    def __init__(self, transport: Transport, endpoint: str) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.registered: asyncio.Queue[str] = asyncio.Queue()

    async def start(self) -> None:
        queue = f"ems.{self.endpoint}.register"
        await self.transport.declare_queue(queue, auto_delete=True)
        await self.transport.consume(queue, self._on_register)

    async def _on_register(self, delivery: Delivery) -> None:
        await self.registered.put(json.loads(delivery.message.body)["hostname"])
        await delivery.ack()

    async def wait_registered(self, count: int, timeout: float = 30.0) -> set[str]:
        return {await asyncio.wait_for(self.registered.get(), timeout) for _ in range(count)}

    async def command(self, hostname: str, command: dict[str, object], timeout: float = 30.0) -> dict[str, object]:
        body = await self.transport.rpc(f"vnfm.{hostname}.actions", json.dumps(command).encode(), timeout=timeout)
        return json.loads(body)

    async def run_script(self, hostname: str, name: str, text: str) -> dict[str, object]:
        saved = await self.command(hostname, {"action": "SAVE_SCRIPTS", "name": name,
                                              "payload": base64.b64encode(text.encode()).decode(),
                                              "script-path": "/opt/openbaton/scripts"})
        assert saved["status"] == 0, saved
        return await self.command(hostname, {"action": "EXECUTE", "payload": name, "env": {"gv": "1"}})


@pytest.fixture
async def vnfm(amqp_url: str) -> AsyncIterator[Vnfm]:
    transport = open_transport(amqp_url)
    await transport.connect()
    side = Vnfm(transport, unique("vimep"))
    await side.start()
    try:
        yield side
    finally:
        await transport.close()


def read(path: Path) -> str:
    return path.read_text()


def userdata(hostname: str, endpoint: str, *, user: str = "guest", password: str = "guest") -> str:
    boot = EmsBootstrap(broker_ip="127.0.0.1", broker_port=5672, username=user, password=password,
                        endpoint=endpoint)
    return set_hostname(render(boot), hostname)


@pytest.mark.rabbitmq
async def test_process_vim_subprocess_ems_registers_and_runs_scripts(tmp_path: Path, vnfm: Vnfm) -> None:
    vim = ProcessVim(tmp_path, capacity=2)
    names = [unique("srv"), unique("cli")]
    try:
        hosts = [await vim.create_host(HostSpec(n, n, "ubuntu", ["mgmt"], userdata(n, vnfm.endpoint)))
                 for n in names]
        assert await vnfm.wait_registered(2) == set(names)
        procs = [vim.ems_process(n) for n in names]
        assert all(p is not None and p.returncode is None for p in procs)
        props = (hosts[0].root / "etc/openbaton/openbaton-ems.properties").read_text()   # type: ignore[operator]
        assert f"hostname={names[0]}" in props and "broker_ip=127.0.0.1" in props
        reply = await vnfm.run_script(names[0], "where.sh", 'echo "$HOME|$GVNFM_HOST_ROOT"; touch "$HOME/mine"')
        assert reply["status"] == 0, reply
        assert str(reply["output"]).strip() == f"{hosts[0].root}/root|{hosts[0].root}"
        assert (hosts[0].root / "opt/openbaton/scripts/where.sh").is_file()  # type: ignore[operator]
        assert (hosts[0].root / "root/mine").exists()                         # type: ignore[operator]
        await vim.remove_host(names[0])
        assert procs[0] is not None and procs[0].returncode is not None    # the EMS process is gone
        assert not hosts[0].root.exists()                                   # type: ignore[union-attr]
    finally:
        await vim.close()
    assert all(p is not None and p.returncode is not None for p in procs)


AVAILABLE, REASON = NetnsVim.available()


@pytest.fixture
def ems_user() -> Iterator[tuple[str, str, str]]:
    """A dedicated RabbitMQ user (guest may only log in from loopback) and virtual host on the shared
    broker: ``(user, password, vhost)``; guest may use the vhost too (the VNFM side of the test)."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.fail("rabbitmqctl is not installed: cannot create the EMS user")
    user, password, vhost = unique("gvnfm-ems"), secrets.token_hex(12), unique("gvnfm-vim")

    def rabbitmqctl(*args: str) -> None:
        done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"rabbitmqctl {args[0]}: {done.stderr or done.stdout}"

    rabbitmqctl("add_user", user, password)
    try:
        rabbitmqctl("add_vhost", vhost)
        try:
            rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
            rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            yield user, password, vhost
        finally:
            rabbitmqctl("delete_vhost", vhost)
    finally:
        rabbitmqctl("delete_user", user)


@pytest.mark.rabbitmq
@pytest.mark.netns
@pytest.mark.skipif(not AVAILABLE, reason=f"netns VIM unavailable: {REASON}")
async def test_netns_host_ems_registers_over_the_bridge(tmp_path: Path, amqp_url: str,
                                                        ems_user: tuple[str, str, str]) -> None:
    user, password, vhost = ems_user
    transport = open_transport(f"{amqp_url.rstrip('/')}/{vhost}")     # the VNFM side, as guest, in the vhost
    await transport.connect()
    vnfm = Vnfm(transport, unique("vimep"))
    await vnfm.start()
    # what `gvnfm up --vim netns --broker URL --ems-user U --ems-password P` gives the VIM
    vim = NetnsVim(tmp_path / "state", capacity=2, broker_url=f"{amqp_url.rstrip('/')}/{vhost}",
                   ems_username=user, ems_password=password)
    name = unique("iso")
    try:
        # the orchestrator's user-data says 127.0.0.1 and guest: the VIM points the EMS at the bridge
        host = await vim.create_host(HostSpec(name, "iso", "ubuntu", ["private"], userdata(name, vnfm.endpoint)))
        gateway = vim.broker_address("private")
        props = (host.root / "etc/openbaton/openbaton-ems.properties").read_text()   # type: ignore[operator]
        assert f"broker_ip={gateway}" in props and f"username={user}" in props and f"virtual_host={vhost}" in props
        assert await vnfm.wait_registered(1, timeout=60) == {name}
        reply = await vnfm.run_script(name, "whoami.sh",
                                      "hostname; ip -4 -o addr show dev eth0; command -v sudo; "
                                      "echo '10.1.1.1 from-script' >> /etc/hosts; id -u; "
                                      "grep SigIgn /proc/$$/status")
        assert reply["status"] == 0, reply
        out = str(reply["output"]).splitlines()
        assert out[0] == name
        assert host.ips["private"] in out[1]
        assert out[2].endswith("/images/default/bin/sudo")
        assert out[3] == "0"
        ignored = int(out[4].split()[1], 16)                 # scripts get default handling of these:
        assert not ignored & sum(1 << (sig - 1) for sig in (1, 2, 10, 12, 15))   # HUP INT USR1 USR2 TERM
        assert "from-script" not in read(Path("/etc/hosts"))
        assert "from-script" in read(host.root / "etc/hosts")                 # type: ignore[operator]
        # the EMS really is inside: its broker connection comes from the host's address
        rc, conns, _ = await vim.run(name, ["sh", "-c", "cat /proc/net/tcp"])
        assert rc == 0
        port_hex = f"{5672:04X}"
        gw_hex = "".join(f"{int(o):02X}" for o in reversed(gateway.split(".")))
        assert f"{gw_hex}:{port_hex}" in conns
    finally:
        await vim.close()
        await transport.close()
