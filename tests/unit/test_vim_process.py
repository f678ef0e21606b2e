"""The process VIM: unprivileged hosts (folder, loopback addresses, EMS agent in this process)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path

import pytest

from gvnfm.catalogue.userdata import EmsBootstrap, render, set_hostname
from gvnfm.transport import RpcTimeout
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.vim.base import HostSpec, VimError
from gvnfm.vim.images import UnknownImage
from gvnfm.vim.process import ProcessVim
from gvnfm.vim.reaper import processes_of
from tests.support.services import unique


def spec(hostname: str, networks: list[str] | None = None, image: str = "ubuntu-20.04",
         endpoint: str = "generic") -> HostSpec:
    userdata = set_hostname(render(EmsBootstrap("127.0.0.1", 5672, "admin", "openbaton", endpoint=endpoint)),
                            hostname)
    return HostSpec(hostname=hostname, vnfr_name=hostname.rsplit("-", 1)[0], image=image,
                    networks=networks if networks is not None else ["mgmt"], userdata=userdata)


async def test_hosts_get_unique_addresses_and_own_folders(tmp_path: Path) -> None:
    vim = ProcessVim(tmp_path, capacity=5, start_ems=False)
    a = await vim.create_host(spec("server-1", ["mgmt", "data"]))
    b = await vim.create_host(spec("client-2", ["mgmt", "data"]))
    c = await vim.create_host(spec("client-3", ["mgmt"]))
    addresses = [*a.ips.values(), *b.ips.values(), *c.ips.values()]
    assert len(set(addresses)) == 5 and all(ip.startswith("127.") for ip in addresses)
    assert set(a.ips) == {"mgmt", "data"} and set(c.ips) == {"mgmt"}
    for host in (a, b, c):
        assert host.root == tmp_path / "hosts" / host.hostname
        assert Path(host.scripts_path) == host.root / "opt/openbaton/scripts"
        assert (host.root / "opt/openbaton/scripts").is_dir()
        assert (host.root / "root").is_dir() and (host.root / "var/log/openbaton").is_dir()
        assert host.image == "default"
    assert set(vim.hosts) == {"server-1", "client-2", "client-3"}
    assert vim.free() == 2
    await vim.close()
    assert vim.hosts == {}


async def test_remove_host_cleans_up_and_frees_the_address(tmp_path: Path) -> None:
    vim = ProcessVim(tmp_path, capacity=2, start_ems=False)
    a = await vim.create_host(spec("server-1"))
    (a.root / "opt/openbaton/scripts/install.sh").write_text("echo hi\n")
    await vim.remove_host("server-1")
    assert not a.root.exists()
    assert "server-1" not in vim.hosts
    b = await vim.create_host(spec("server-2"))
    assert b.ips == a.ips
    with pytest.raises(VimError, match="does not exist"):
        await vim.remove_host("server-1")
    await vim.close()


async def test_capacity_is_respected(tmp_path: Path) -> None:
    vim = ProcessVim(tmp_path, capacity=2, start_ems=False)
    results = await asyncio.gather(*(vim.create_host(spec(f"h-{i}")) for i in range(4)), return_exceptions=True)
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 2 and len(refused) == 2
    assert all(isinstance(r, VimError) and "full" in str(r) for r in refused)
    assert vim.free() == 0
    await vim.remove_host(created[0].hostname)
    assert (await vim.create_host(spec("h-9"))).hostname == "h-9"
    await vim.close()


async def test_bad_requests_are_refused_before_anything_is_created(tmp_path: Path) -> None:
    vim = ProcessVim(tmp_path, capacity=3, start_ems=False)
    with pytest.raises(UnknownImage):
        await vim.create_host(spec("h-1", image="windows"))
    for bad in ("../etc", "a/b", "", "-x", "a b"):
        with pytest.raises(VimError, match="not usable"):
            await vim.create_host(spec(bad))
    assert not (tmp_path / "hosts" / "h-1").exists()
    await vim.create_host(spec("h-1"))
    with pytest.raises(VimError, match="already exists"):
        await vim.create_host(spec("h-1"))
    assert vim.free() == 2
    assert vim.image_exists("centos-7") and not vim.image_exists("windows")
    await vim.close()


@pytest.mark.parametrize("userdata", ["none", "", "#!/bin/bash\necho no broker > /tmp/should-not-run\n"])
async def test_userdata_that_starts_no_ems_still_gives_a_host(tmp_path: Path, userdata: str) -> None:
    """python-vnfm-sdk sends ``none`` when it has no user-data; the Java NFVO hands any user-data to the
    VIM. Such a host has no EMS but is a host: created, addressed, removed; its user-data is not run."""
    broker = InMemoryBroker()
    vim = ProcessVim(tmp_path, capacity=3, transport_factory=lambda: InMemoryTransport(broker))
    host = await vim.create_host(HostSpec("h-1", "h", "ubuntu", ["mgmt"], userdata))
    assert host.ips["mgmt"].startswith("127.") and "h-1" in vim.hosts and vim.free() == 2
    assert host.root is not None and (host.root / "opt/openbaton/scripts").is_dir()
    assert not (host.root / "etc/openbaton/openbaton-ems.properties").exists()     # no EMS configured
    assert broker.queues == {}                                                     # and none registered
    rc, out, _ = await vim.run("h-1", ["sh", "-c", "echo up"])
    assert (rc, out) == (0, "up\n")
    await vim.remove_host("h-1")
    assert not host.root.exists() and vim.hosts == {} and vim.free() == 3
    await vim.close()


async def test_run_gives_the_host_environment(tmp_path: Path) -> None:
    vim = ProcessVim(tmp_path, capacity=1, start_ems=False)
    host = await vim.create_host(spec("h-1"))
    rc, out, err = await vim.run("h-1", ["sh", "-c", 'echo "$HOME|$GVNFM_HOST_ROOT|$PATH"; pwd; command -v sudo'])
    assert rc == 0, err
    home, root, path = out.splitlines()[0].split("|")
    assert home == str(host.root / "root") and root == str(host.root)
    assert path.split(":")[0] == str(tmp_path / "images" / "default" / "bin")
    assert out.splitlines()[1] == str(host.root)
    assert out.splitlines()[2] == str(tmp_path / "images" / "default" / "bin" / "sudo")
    other = ProcessVim(tmp_path / "b", capacity=1, start_ems=False)
    bare = await other.create_host(spec("h-2", image="bare"))
    assert bare.image == "bare"
    rc, out, _ = await other.run("h-2", ["sh", "-c", 'echo "$PATH"'])
    assert rc == 0 and "images" not in out                  # no shim folder for the bare image
    await other.close()
    await vim.close()


async def test_hostname_is_the_hosts_own(tmp_path: Path) -> None:
    vim = ProcessVim(tmp_path, capacity=1, start_ems=False)
    await vim.create_host(spec("web-7"))
    try:
        rc, out, err = await vim.run("web-7", ["sh", "-c", 'hostname; hostname -s; hostname --fqdn; echo "$HOSTNAME"'])
        assert rc == 0, err
        assert out.splitlines() == ["web-7"] * 4
        rc, out, err = await vim.run("web-7", ["hostname", "other"])  # would rename the machine: refused
        assert rc == 1 and "cannot change its name" in err
        assert socket.gethostname() != "other"
        rc, _, err = await vim.run("web-7", ["hostname", "-I"])         # other options: the real program
        assert rc == 0, err
    finally:
        await vim.close()


async def _rpc(transport: InMemoryTransport, hostname: str, command: dict[str, object]) -> dict[str, object]:
    body = await transport.rpc(f"vnfm.{hostname}.actions", json.dumps(command).encode(), timeout=15)
    return json.loads(body)


async def test_in_process_agents_register_and_run_scripts_in_their_host(tmp_path: Path) -> None:
    broker = InMemoryBroker.named(unique("procvim"))
    endpoint = unique("ep")
    vnfm = InMemoryTransport(broker)
    await vnfm.connect()
    register_queue = f"ems.{endpoint}.register"
    await vnfm.declare_queue(register_queue)
    registered: asyncio.Queue[str] = asyncio.Queue()

    async def on_register(delivery):  # type: ignore[no-untyped-def]
        await registered.put(json.loads(delivery.message.body)["hostname"])
        await delivery.ack()

    await vnfm.consume(register_queue, on_register)
    made: list[InMemoryTransport] = []

    def factory() -> InMemoryTransport:          # unconnected, as `gvnfm up` hands them out: the VIM connects
        transport = InMemoryTransport(broker)
        made.append(transport)
        return transport

    vim = ProcessVim(tmp_path, capacity=2, transport_factory=factory)
    a = await vim.create_host(spec("server-1", endpoint=endpoint))
    b = await vim.create_host(spec("client-2", endpoint=endpoint))
    got = {await asyncio.wait_for(registered.get(), 10), await asyncio.wait_for(registered.get(), 10)}
    assert got == {"server-1", "client-2"}
    props = (a.root / "etc/openbaton/openbaton-ems.properties").read_text()
    assert "hostname=server-1" in props and f"type={endpoint}" in props
    assert (a.root / "etc/openbaton/openbaton-ems.properties").stat().st_mode & 0o077 == 0

    script = ('echo "$HOME|$GVNFM_HOST_ROOT|$(command -v sudo)|$(hostname)|$HOSTNAME"; echo mine > "$HOME/marker"; '
              'sudo -E true')
    reply = await _rpc(vnfm, "server-1", {"action": "SAVE_SCRIPTS", "name": "probe.sh",
                                          "payload": base64.b64encode(script.encode()).decode(),
                                          "script-path": "/opt/openbaton/scripts"})
    assert reply["status"] == 0, reply
    assert (a.root / "opt/openbaton/scripts/probe.sh").is_file()
    reply = await _rpc(vnfm, "server-1", {"action": "EXECUTE", "payload": "probe.sh", "env": {"k": "v"}})
    assert reply["status"] == 0, reply
    home, root, sudo, name, env_name = str(reply["output"]).strip().split("|")
    assert home == str(a.root / "root") and root == str(a.root)
    assert name == env_name == "server-1"                       # the host's name, not the machine's
    assert sudo == str(tmp_path / "images/default/bin/sudo")
    assert (a.root / "root/marker").read_text() == "mine\n"
    assert not (b.root / "root/marker").exists()

    await vim.remove_host("server-1")
    assert not a.root.exists()
    # the removed host's agent is gone: nobody answers on its queue any more
    with pytest.raises(RpcTimeout):
        await vnfm.rpc("vnfm.server-1.actions", b'{"action":"EXECUTE","payload":"probe.sh"}', timeout=0.5)
    reply = await _rpc(vnfm, "client-2", {"action": "EXECUTE", "payload": "nothing.sh"})
    assert reply["status"] != 0                                 # the other host still answers
    await vim.close()
    assert len(made) == 2
    await vnfm.close()


OWNER = """
import asyncio, sys
from gvnfm.vim.base import HostSpec
from gvnfm.vim.process import ProcessVim
from gvnfm.catalogue.userdata import EmsBootstrap, render, set_hostname

async def main():
    vim = ProcessVim(sys.argv[1], capacity=1)
    # a broker port nobody listens on: the EMS keeps retrying, i.e. keeps running
    ud = set_hostname(render(EmsBootstrap("127.0.0.1", int(sys.argv[2]), "u", "p")), "orphan-1")
    await vim.create_host(HostSpec("orphan-1", "orphan", "ubuntu", ["mgmt"], ud))
    print(vim.ems_process("orphan-1").pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_subprocess_ems_dies_with_its_vim(tmp_path: Path) -> None:
    import socket
    import sys

    from gvnfm.vim.netns_state import ProcessId

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    owner = await asyncio.create_subprocess_exec(sys.executable, "-c", OWNER, str(tmp_path), str(port),
                                                 stdout=asyncio.subprocess.PIPE)
    assert owner.stdout is not None
    ems = ProcessId.of(int(await asyncio.wait_for(owner.stdout.readline(), 30)))
    await asyncio.sleep(0.3)
    assert ems.alive()
    owner.kill()
    await owner.wait()
    for _ in range(100):
        if not ems.alive():
            break
        await asyncio.sleep(0.05)
    assert not ems.alive()


async def test_rebuild_keeps_name_and_addresses_gives_a_fresh_disk_and_a_new_ems(tmp_path: Path) -> None:
    """A rebuild (the NFVO's VNFR restart): same hostname and addresses, a fresh folder of the new image,
    the host's processes killed, its EMS started again from the same user-data and registered again."""
    broker = InMemoryBroker.named(unique("rebuild"))
    endpoint = unique("ep")
    vnfm = InMemoryTransport(broker)
    await vnfm.connect()
    await vnfm.declare_queue(f"ems.{endpoint}.register")
    registered: asyncio.Queue[str] = asyncio.Queue()

    async def on_register(delivery):  # type: ignore[no-untyped-def]
        await registered.put(json.loads(delivery.message.body)["hostname"])
        await delivery.ack()

    await vnfm.consume(f"ems.{endpoint}.register", on_register)
    vim = ProcessVim(tmp_path, capacity=2, transport_factory=lambda: InMemoryTransport(broker))
    try:
        before = await vim.create_host(spec("app-1234567", ["mgmt", "data"], endpoint=endpoint))
        assert await asyncio.wait_for(registered.get(), 10) == "app-1234567"
        assert before.root is not None
        (before.root / "opt/openbaton/scripts/old.sh").write_text("echo old\n")
        rc, _, err = await vim.run("app-1234567", ["sh", "-c", "nohup sleep 600 >/dev/null 2>&1 &"])
        assert rc == 0, err
        assert processes_of(before.root)
        after = await vim.rebuild_host("app-1234567", "bare")
        assert (after.hostname, after.ips, after.root) == (before.hostname, before.ips, before.root)
        assert after.image == "bare" and set(vim.hosts) == {"app-1234567"} and vim.free() == 1
        assert not (before.root / "opt/openbaton/scripts/old.sh").exists()        # a fresh disk
        assert processes_of(before.root) == []                                     # its daemon is gone
        assert await asyncio.wait_for(registered.get(), 10) == "app-1234567"        # a new EMS registered
        reply = await _rpc(vnfm, "app-1234567", {"action": "EXECUTE", "payload": "nothing.sh"})
        assert reply["status"] != 0 and "nothing.sh" in str(reply)                 # and answers commands
        with pytest.raises(VimError, match="does not exist"):
            await vim.rebuild_host("nobody-1")
        with pytest.raises(UnknownImage):
            await vim.rebuild_host("app-1234567", "windows")
        assert set(vim.hosts) == {"app-1234567"}                                   # refused: host kept
    finally:
        await vim.close()
        await vnfm.close()
