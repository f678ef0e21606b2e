"""The netns VIM on the real kernel: isolation between hosts, networking, teardown, crash clean-up.

Needs root, iproute2, util-linux and overlayfs; skipped with the reason ``NetnsVim.available()`` gives
where the machine refuses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gvnfm.vim.base import HostSpec, VimError
from gvnfm.vim.images import UnknownImage
from gvnfm.vim.netns import NetnsVim
from gvnfm.vim.netns_state import ProcessId, Registry
from tests.support.netns import links, mounts

AVAILABLE, REASON = NetnsVim.available()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not AVAILABLE, reason=f"netns VIM unavailable: {REASON}")]

PY = sys.executable  # visible inside every host (bound read-only when the root filesystem lacks it)


def spec(hostname: str, networks: list[str], image: str = "ubuntu") -> HostSpec:
    return HostSpec(hostname=hostname, vnfr_name=hostname.rsplit("-", 1)[0], image=image, networks=networks,
                    userdata="")


def read(path: str | Path) -> str:
    return Path(path).read_text()


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def sh(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture(autouse=True)
def private_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and the processes it starts) records its VIMs and hosts in a registry of its own:
    ``cleanup_stale`` here never touches what other runs on this machine registered."""
    run_dir = tmp_path / "netns-run"
    monkeypatch.setenv("GVNFM_NETNS_RUN_DIR", str(run_dir))
    return run_dir


@pytest.fixture
async def vim(tmp_path: Path) -> AsyncIterator[NetnsVim]:
    v = NetnsVim(tmp_path / "state", capacity=4, start_ems=False)
    try:
        yield v
    finally:
        await v.close()


async def ok(vim: NetnsVim, hostname: str, script: str, timeout: float = 20.0) -> str:
    rc, out, err = await vim.run(hostname, ["sh", "-c", script], timeout=timeout)
    assert rc == 0, f"{hostname}: {script!r} -> {rc}: {err}"
    return out


async def test_hosts_on_a_link_reach_each_other(vim: NetnsVim) -> None:
    a = await vim.create_host(spec("server-1", ["private"]))
    b = await vim.create_host(spec("client-2", ["private", "mgmt"]))
    net = ipaddress.IPv4Network("198.18.0.0/15")
    for address in (a.ips["private"], b.ips["private"], b.ips["mgmt"]):
        assert ipaddress.IPv4Address(address) in net
    gw = vim.broker_address("private")
    assert ipaddress.IPv4Address(a.ips["private"]) in ipaddress.IPv4Network(f"{gw}/24", strict=False)
    assert ipaddress.IPv4Address(b.ips["private"]) in ipaddress.IPv4Network(f"{gw}/24", strict=False)
    assert b.ips["mgmt"].rsplit(".", 1)[0] != b.ips["private"].rsplit(".", 1)[0]   # a /24 per link
    assert await ok(vim, "server-1", "hostname") == "server-1\n"
    assert await ok(vim, "client-2", "hostname") == "client-2\n"
    assert f"default via {gw}" in await ok(vim, "server-1", "ip route")
    bridge = vim.bridge_name("private")
    assert bridge is not None and len(bridge) <= 15 and bridge.startswith("gv")
    assert f"{gw}/24" in sh(["ip", "-4", "-o", "addr", "show", "dev", bridge])

    # a server started by one host's script is reachable from the other host by its 198.18 address
    await ok(vim, "server-1", f"cd /tmp && echo served-by-a > index.html && "
                              f"nohup {PY} -m http.server 8080 --bind {a.ips['private']} "
                              ">/dev/null 2>&1 </dev/null &")
    fetch = textwrap.dedent(f"""
        import time, urllib.request
        for _ in range(100):
            try:
                print(urllib.request.urlopen("http://{a.ips['private']}:8080/index.html", timeout=2).read().decode())
                break
            except OSError:
                time.sleep(0.1)
    """)
    rc, out, err = await vim.run("client-2", [PY, "-c", fetch], timeout=30)
    assert rc == 0 and out.strip() == "served-by-a", err
    # ... and not from the machine's own network namespace through a loopback address
    assert "served-by-a" not in await ok(vim, "client-2", "cat /tmp/index.html 2>/dev/null || true")


async def test_filesystems_are_copy_on_write_and_private(vim: NetnsVim) -> None:
    machine_hosts = read("/etc/hosts")
    a = await vim.create_host(spec("alpha-1", ["lan"]))
    await vim.create_host(spec("beta-2", ["lan"]))
    await ok(vim, "alpha-1", "echo '10.9.9.9 only-in-alpha' >> /etc/hosts && mkdir -p /root/gv-test /home/gv-test "
                             "&& echo a > /root/gv-test/marker && echo a > /home/gv-test/marker && "
                             "echo a > /tmp/marker")
    assert "only-in-alpha" in await ok(vim, "alpha-1", "cat /etc/hosts")
    assert "only-in-alpha" not in await ok(vim, "beta-2", "cat /etc/hosts")
    for path in ("/root/gv-test", "/home/gv-test", "/tmp/marker"):
        assert (await vim.run("alpha-1", ["test", "-e", path]))[0] == 0
        assert (await vim.run("beta-2", ["test", "-e", path]))[0] == 1
    assert read("/etc/hosts") == machine_hosts
    assert not exists("/root/gv-test") and not exists("/home/gv-test")
    # the change lives in alpha's overlay upper folder, reported as the host's root
    assert a.root is not None and "only-in-alpha" in read(a.root / "etc/hosts")
    assert read(a.root / "root/gv-test/marker") == "a\n"
    # each host resolves its own name, and the other hosts' folders are hidden from it
    assert "beta-2" in await ok(vim, "beta-2", "cat /etc/hostname /etc/hosts")
    assert await ok(vim, "beta-2", f"ls {vim.state_dir / 'hosts'} 2>/dev/null | wc -l") == "0\n"


async def test_pkill_in_one_host_does_not_touch_another(vim: NetnsVim) -> None:
    await vim.create_host(spec("one-1", ["lan"]))
    await vim.create_host(spec("two-2", ["lan"]))
    await ok(vim, "one-1", "setsid sleep 1001 >/dev/null 2>&1 </dev/null &")
    await ok(vim, "two-2", "setsid sleep 1002 >/dev/null 2>&1 </dev/null &")
    assert "sleep 1002" not in await ok(vim, "one-1", "ps -eo args")      # own PID namespace
    await ok(vim, "two-2", "pkill -x sleep; sleep 0.2")
    assert await ok(vim, "one-1", "pgrep -x sleep | wc -l") == "1\n"
    rc, _, _ = await vim.run("two-2", ["pgrep", "-x", "sleep"])
    assert rc == 1
    init_pid = vim.init_pid("one-1")
    assert init_pid is not None
    assert (await ok(vim, "one-1", "cat /proc/1/cmdline | tr '\\0' ' '")).find("gvnfm.vim.netns_host") >= 0
    # a script cannot take its host down by signalling init (as on a VM)
    await vim.run("one-1", ["sh", "-c", "kill -TERM 1; kill -INT 1; kill -HUP 1; kill -KILL 1; pkill -f netns_host"])
    await asyncio.sleep(0.3)
    assert await ok(vim, "one-1", "hostname") == "one-1\n"
    assert ProcessId.of(init_pid).alive()


async def test_teardown_leaves_no_trace(tmp_path: Path) -> None:
    vim = NetnsVim(tmp_path / "state", capacity=3, start_ems=False)
    hosts = [await vim.create_host(spec(f"gone-{i}", ["l1", "l2"])) for i in range(2)]
    names = {vim.bridge_name("l1"), vim.bridge_name("l2")}
    names |= {f"gv{vim.host_id(h.hostname)}v{k}" for h in hosts for k in range(2)}
    pids = [vim.unshare_pid(h.hostname) for h in hosts] + [vim.init_pid(h.hostname) for h in hosts]
    procs = [ProcessId.of(p) for p in pids if p is not None]
    assert len(procs) == 4 and all(p.alive() for p in procs)
    assert names <= links()
    vim_id = vim.id
    await vim.remove_host("gone-0")
    assert not (tmp_path / "state/hosts/gone-0").exists()
    assert f"gv{vim.host_id('gone-1')}v0" in links()
    await vim.close()
    assert not names & links()
    assert not any(p.alive() for p in procs)
    assert "gv" not in sh(["ip", "netns", "list"])
    assert str(tmp_path) not in mounts()
    assert not (tmp_path / "state/hosts").exists()
    assert not any(r.id == vim_id for r in Registry().vims())
    assert not any(r.vim == vim_id for r in Registry().hosts())


async def test_capacity_and_bad_requests(tmp_path: Path) -> None:
    vim = NetnsVim(tmp_path / "state", capacity=1, start_ems=False)
    try:
        with pytest.raises(VimError, match="longer than 64"):
            await vim.create_host(spec("x" * 65, ["lan"]))
        await vim.create_host(spec("only-1", ["lan"]))
        with pytest.raises(VimError, match="full"):
            await vim.create_host(spec("more-2", ["lan"]))
    finally:
        await vim.close()
    odd = NetnsVim(tmp_path / "st,ate", capacity=1, start_ems=False)
    try:
        with pytest.raises(UnknownImage):
            await odd.create_host(spec("img-1", ["lan"], image="windows-2019"))
        with pytest.raises(VimError, match="overlayfs options"):
            await odd.create_host(spec("comma-1", ["lan"]))
        assert odd.hosts == {} and odd.free() == 1
        assert not any(r.hostname == "comma-1" for r in Registry().hosts())
        assert not exists(tmp_path / "st,ate/hosts/comma-1")
    finally:
        await odd.close()
    ems_vim = NetnsVim(tmp_path / "state2", capacity=1)
    try:
        # a user-data that starts no EMS (python-vnfm-sdk's "none", here empty) still gives a host, as a VM
        # booted with it would be: created, addressed, removed; no EMS process in it
        host = await ems_vim.create_host(spec("noud-1", ["lan"]))
        assert set(ems_vim.hosts) == {"noud-1"} and ems_vim.free() == 0 and host.ips
        code, procs, _ = await ems_vim.run("noud-1", ["ps", "-eo", "args"])
        assert code == 0 and "ems" not in procs, procs          # its own PID namespace: no agent in it
        await ems_vim.remove_host("noud-1")
        assert ems_vim.hosts == {} and ems_vim.free() == 1
    finally:
        await ems_vim.close()


CHILD = textwrap.dedent("""
    import asyncio, json, os, sys, time
    from gvnfm.vim.base import HostSpec
    from gvnfm.vim.netns import NetnsVim

    async def main():
        vim = NetnsVim(sys.argv[1], capacity=1, start_ems=False)
        host = await vim.create_host(HostSpec("crash-1", "crash", "ubuntu", ["lan"], ""))
        holder = 0
        if sys.argv[2] == "hold":
            holder = os.fork()
            if holder == 0:          # keeps a copy of the host's control pipe: the host stays up
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)  # but not the test's pipe (the test waits for its end)
                time.sleep(60)
                os._exit(0)
        print(json.dumps({"vim": vim.id, "host": vim.host_id("crash-1"), "bridge": vim.bridge_name("lan"),
                          "unshare": vim.unshare_pid("crash-1"), "init": vim.init_pid("crash-1"),
                          "holder": holder, "root": str(host.root)}), flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
""")


async def _crash(tmp_path: Path, mode: str) -> dict[str, object]:
    child = await asyncio.create_subprocess_exec(PY, "-c", CHILD, str(tmp_path / "state"), mode,
                                                 stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).parents[2]))
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 60)
    info = json.loads(line)
    child.kill()                        # SIGKILL: no clean-up code runs
    await child.wait()
    return info


def _no_trace(info: dict[str, object], tmp_path: Path) -> None:
    here = links()
    assert info["bridge"] not in here and f"gv{info['host']}v0" not in here
    assert not ProcessId.of(int(info["unshare"])).alive()            # type: ignore[call-overload]
    assert not ProcessId.of(int(info["init"])).alive()               # type: ignore[call-overload]
    assert str(tmp_path) not in mounts()
    assert not (tmp_path / "state/hosts/crash-1").exists()
    reg = Registry()
    assert not any(r.id == info["vim"] for r in reg.vims()) and not any(r.id == info["host"] for r in reg.hosts())


async def test_crashed_owner_host_stops_itself_and_cleanup_removes_the_rest(tmp_path: Path,
                                                                             private_registry: Path) -> None:
    info = await _crash(tmp_path, "free")
    unshare = ProcessId.of(int(info["unshare"]))  # type: ignore[call-overload]
    deadline = asyncio.get_running_loop().time() + 60   # hang guard: the host's init sees its control pipe
    while unshare.alive() and asyncio.get_running_loop().time() < deadline:   # close and stops
        await asyncio.sleep(0.1)
    assert not unshare.alive()
    assert info["bridge"] in links()              # what only clean-up removes
    removed = await NetnsVim.cleanup_stale(private_registry)
    assert any(f"vim gv{info['vim']} " in r for r in removed), removed
    _no_trace(info, tmp_path)


async def test_cleanup_stale_kills_a_host_whose_owner_died(tmp_path: Path, private_registry: Path) -> None:
    info = await _crash(tmp_path, "hold")
    holder = int(info["holder"])  # type: ignore[call-overload]
    try:
        await asyncio.sleep(0.5)
        assert ProcessId.of(int(info["init"])).alive()      # type: ignore[call-overload]
        assert f"gv{info['host']}v0" in links()
        removed = await NetnsVim.cleanup_stale(private_registry)
        assert any(f"(gv{info['host']}," in r for r in removed), removed
        _no_trace(info, tmp_path)
    finally:
        try:
            os.kill(holder, signal.SIGKILL)
        except ProcessLookupError:
            pass
