"""`gvnfm vnfm` as its own process on a real RabbitMQ, driven by a test NFVO through
INSTANTIATE → MODIFY → START → STOP → RELEASE_RESOURCES, with real gvnfm EMS agents whose scripts
write down the environment they saw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gvnfm.ems.agent import EmsAgent
from gvnfm.ems.config import EmsConfig
from gvnfm.transport import Delivery
from gvnfm.transport.amqp import AmqpTransport
from tests.support.broker_admin import broker_admin
from tests.support.fakes import FakeNfvo
from tests.support.services import unique
from tests.support.vnfm_process import VnfmProcess

pytestmark = pytest.mark.rabbitmq

RECORD = b"""#!/bin/bash
out="$outdir/$(basename "$0").$hostname.$$"
env | grep -E '^(hostname|private|port|mode|server_|cause|removing_)' | sort > "$out"
if [ "$(basename "$0")" = client_plain.sh ]; then cp ob_parameters.sh "$outdir/ob.$hostname"; fi
echo "done $(basename "$0") on $hostname"
"""
FAIL = b"#!/bin/bash\necho 'port 5001 already in use' >&2\nexit 7\n"


def vnfd(name: str, type_: str, n: int, events: dict[str, list[str]], conf: dict[str, str]) -> dict[str, Any]:
    return {"id": unique("vnfd"), "name": name, "type": type_, "endpoint": "generic", "vendor": "t", "version": "1",
            "lifecycle_event": [{"event": e, "lifecycle_events": s} for e, s in events.items()],
            "configurations": {"name": f"{name}-conf",
                               "configurationParameters": [{"confKey": k, "value": v} for k, v in conf.items()]},
            "virtual_link": [{"name": "private"}],
            "vdu": [{"id": unique("vdud"), "vm_image": ["ubuntu"], "scale_in_out": 3,
                     "vnfc": [{"id": unique("c"), "connection_point": [{"virtual_link_reference": "private"}]}
                              for _ in range(n)]}],
            "deployment_flavour": [{"flavour_key": "m1.small"}]}


def instantiate(vnfd_: dict[str, Any], scripts: dict[str, bytes]) -> dict[str, Any]:
    return {"action": "INSTANTIATE", "vnfd": vnfd_, "vnfdf": {"flavour_key": "m1.small"},
            "vnfInstanceName": vnfd_["name"], "vlrs": [{"id": "net-1", "name": "private"}],
            "extension": {"nsr-id": "nsr-it", "brokerIp": "127.0.0.1", "brokerPort": "5672"},
            "vimInstances": {}, "keys": [],
            "vnfPackage": {"scripts": [{"name": n, "payload": list(p)} for n, p in scripts.items()]}}


class World:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.endpoint = unique("gvnfm-it")
        self.outdir = tmp / "out"
        self.outdir.mkdir()
        self.agents: list[EmsAgent] = []
        self.wire: list[tuple[str, dict[str, Any]]] = []

    async def add_host(self, hostname: str, userdata: str) -> None:
        assert f"export ENDPOINT={self.endpoint}" in userdata
        agent = EmsAgent(EmsConfig(hostname=hostname, type=self.endpoint, broker_url=self.url,
                                   root=str(self.tmp / "hosts" / hostname), script_timeout=30))
        await agent.start()
        self.agents.append(agent)

    async def spy(self, delivery: Delivery) -> None:
        try:
            self.wire.append((delivery.message.routing_key, json.loads(delivery.message.body)))
        except ValueError:
            body = delivery.message.body.decode(errors="replace")
            self.wire.append((delivery.message.routing_key, {"unparsed": body}))
        await delivery.ack()

    def seen(self, script: str) -> list[dict[str, str]]:
        found = []
        for path in sorted(self.outdir.glob(f"{script}.*")):
            found.append(dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line))
        return found


def nfvo_user(vhost: str, endpoint: str) -> tuple[str, str]:
    """The broker user the Open Baton NFVO creates for a registering VNFM, with its permissions
    (``ComponentManager.enableManager``)."""
    user, password = endpoint, unique("pw")
    ep = endpoint
    configure = rf"^amq\.gen.*|amq\.default$|({ep})|(nfvo.{ep}.actions)"
    write = (rf"^amq\.gen.*|amq\.default$|({ep})|(vnfm.nfvo.actions)|(vnfm.nfvo.actions.reply)|"
             rf"(nfvo.{ep}.actions)|(openbaton-exchange)")
    read = rf"^amq\.gen.*|amq\.default$|(nfvo.{ep}.actions)|({ep})|(openbaton-exchange)"
    broker_admin().add_user(user, password)
    broker_admin().set_permissions(vhost, user, configure, write, read)
    return user, password


@pytest.fixture
async def world(amqp_vhost: str, tmp_path: Path) -> AsyncIterator[tuple[World, AmqpTransport, VnfmProcess]]:
    w = World(amqp_vhost, tmp_path)
    nfvo_t = AmqpTransport(amqp_vhost)
    await nfvo_t.connect()
    nfvo = FakeNfvo(nfvo_t, host_factory=w.add_host,
                    credentials=await asyncio.to_thread(nfvo_user, amqp_vhost.rsplit("/", 1)[1], w.endpoint))
    await nfvo.start()
    spy_q = unique("spy")
    await nfvo_t.declare_queue(spy_q, auto_delete=True, bind=False)
    await nfvo_t.bind(spy_q, "vnfm.#")
    await nfvo_t.bind(spy_q, w.endpoint)
    await nfvo_t.consume(spy_q, w.spy)
    vnfm = VnfmProcess(broker=amqp_vhost, endpoint=w.endpoint, state_dir=tmp_path / "vnfm",
                       extra=["--ems-start-timeout", "20", "--script-timeout", "20"])
    await vnfm.start()
    await vnfm.wait_for_log("event=vnfm_started")
    w.nfvo = nfvo  # type: ignore[attr-defined]
    try:
        yield w, nfvo_t, vnfm
    finally:
        await vnfm.terminate()      # already done by shut_down_and_check_unregister when the test got there
        for agent in w.agents:
            await agent.stop()
        await nfvo_t.close()
        await asyncio.to_thread(broker_admin().delete_user, w.endpoint)


async def shut_down_and_check_unregister(w: World, vnfm: VnfmProcess) -> None:
    """Every test ends with this: a clean shutdown (SIGTERM) exits 0 and unregisters from the NFVO, over
    RabbitMQ, with the user the NFVO gave the VNFM."""
    nfvo: FakeNfvo = w.nfvo  # type: ignore[attr-defined]
    code = await vnfm.terminate()
    assert code == 0, vnfm.log()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60       # hang guard: the message was published before the process exited
    while not any(m.get("action") == "unregister" for m in nfvo.registered) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    unregistered = [m for m in nfvo.registered if m.get("action") == "unregister"]
    assert len(unregistered) == 1 and unregistered[0]["type"] == w.endpoint, nfvo.registered
    assert unregistered[0]["username"] == w.endpoint and unregistered[0]["password"]


async def call(t: AmqpTransport, endpoint: str, msg: dict[str, Any] | bytes, timeout: float = 60) -> dict[str, Any]:
    body = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    return json.loads(await t.rpc(endpoint, body, timeout=timeout))


async def test_lifecycle_on_rabbitmq_with_real_ems(world: tuple[World, AmqpTransport, VnfmProcess]) -> None:
    w, t, vnfm = world
    nfvo: FakeNfvo = w.nfvo  # type: ignore[attr-defined]
    assert nfvo.registered and nfvo.registered[0]["vnfmManagerEndpoint"]["endpoint"] == w.endpoint
    # from here on the VNFM talks to the NFVO as the restricted user the NFVO created for it
    assert f"event=nfvo_credentials_in_use user={w.endpoint}" in vnfm.log()
    conf = {"port": "5001", "outdir": str(w.outdir)}
    server = vnfd("iperf-server", "server", 2, {"INSTANTIATE": ["install.sh"], "START": ["start.sh"],
                                                "STOP": ["stop.sh"], "TERMINATE": ["terminate.sh"]}, conf)
    client = vnfd("iperf-client", "client", 1, {"INSTANTIATE": ["install.sh"],
                                                "CONFIGURE": ["server_configure.sh", "client_plain.sh"]},
                  {"mode": "tcp", "outdir": str(w.outdir)})
    names = ["install.sh", "start.sh", "stop.sh", "terminate.sh", "server_configure.sh", "client_plain.sh"]
    scripts = {n: RECORD for n in names}
    srv, cli = await asyncio.gather(call(t, w.endpoint, instantiate(server, scripts)),
                                    call(t, w.endpoint, instantiate(client, scripts)))
    assert srv["action"] == "INSTANTIATE" and cli["action"] == "INSTANTIATE", (srv, cli, vnfm.log()[-3000:])
    srv_vnfr, cli_vnfr = srv["virtualNetworkFunctionRecord"], cli["virtualNetworkFunctionRecord"]
    srv_insts = srv_vnfr["vdu"][0]["vnfc_instance"]
    cli_host = cli_vnfr["vdu"][0]["vnfc_instance"][0]["hostname"]
    installs = w.seen("install.sh")
    assert sorted(e["hostname"] for e in installs) == sorted([i["hostname"] for i in srv_insts] + [cli_host])
    assert all(e["port"] == "5001" for e in installs if e["hostname"].startswith("iperf-server"))

    # what went over the wire to the EMSs, and to the NFVO
    ems_cmds = [(rk, m) for rk, m in w.wire if rk.startswith("vnfm.") and rk.endswith(".actions")]
    assert {m["action"] for _, m in ems_cmds} == {"SAVE_SCRIPTS", "EXECUTE"}
    saves = [m for _, m in ems_cmds if m["action"] == "SAVE_SCRIPTS"]
    assert len(saves) == 3 * len(names) and saves[0]["script-path"] == "/opt/openbaton/scripts"
    assert [m["action"] for rk, m in w.wire if rk == "vnfm.nfvo.actions.reply"].count("GRANT_OPERATION") == 2

    # MODIFY: the NFVO's dependency for the client, with both server instances
    dep = {"target": "iperf-client", "idType": {"iperf-server": "server"},
           "parameters": {"server": {"parameters": {"private": "", "hostname": "", "port": "5001"}}},
           "vnfcParameters": {"server": {"parameters": {
               i["id"]: {"parameters": {"private": i["ips"][0]["ip"], "hostname": i["hostname"]}}
               for i in srv_insts}}}}
    mod = await call(t, w.endpoint, {"action": "MODIFY", "vnfr": cli_vnfr, "vnfrd": dep})
    assert mod["action"] == "MODIFY", mod
    runs = w.seen("server_configure.sh")
    assert sorted((r["server_hostname"], r["server_private"]) for r in runs) == \
        sorted((i["hostname"], i["ips"][0]["ip"]) for i in srv_insts)
    assert all(r["server_port"] == "5001" and r["mode"] == "tcp" and r["hostname"] == cli_host for r in runs)
    plain = w.seen("client_plain.sh")
    assert len(plain) == 1 and not any(k.startswith("server_") for k in plain[0])
    ob = (w.outdir / f"ob.{cli_host}").read_text()
    assert "OB_server_VNF_port=5001" in ob and srv_insts[0]["hostname"] in ob

    for action, script in (("START", "start.sh"), ("STOP", "stop.sh")):
        reply = await call(t, w.endpoint, {"action": action, "virtualNetworkFunctionRecord": srv_vnfr})
        assert reply["action"] == action and len(w.seen(script)) == 2
    one = srv_insts[0]
    reply = await call(t, w.endpoint, {"action": "START", "virtualNetworkFunctionRecord": srv_vnfr,
                                       "vnfcInstance": one})
    assert reply["vnfcInstance"]["id"] == one["id"] and len(w.seen("start.sh")) == 3
    reply = await call(t, w.endpoint, {"action": "RELEASE_RESOURCES", "vnfr": srv_vnfr})
    assert reply["action"] == "RELEASE_RESOURCES" and len(w.seen("terminate.sh")) == 2
    await shut_down_and_check_unregister(w, vnfm)


async def test_bad_input_on_rabbitmq(world: tuple[World, AmqpTransport, VnfmProcess]) -> None:
    w, t, vnfm = world
    # nothing to put in an ERROR (the NFVO's ErrorTask fails on a null VNFR): answered null, as the Java VNFM
    for body, needle in [(b"{not json", "not valid JSON"), (b'{"action": "FLY"}', "unknown action")]:
        assert await t.rpc(w.endpoint, body, timeout=60) == b"null"
        assert needle in vnfm.log()
    reply = await call(t, w.endpoint, json.dumps({"action": "START", "virtualNetworkFunctionRecord":
                                                  {"name": "n", "vdu": []}}).encode())
    assert reply["action"] == "ERROR" and "no VNFC instances" in reply["exception"]["detailMessage"]
    assert reply["virtualNetworkFunctionRecord"]["name"] == "n"
    # a script missing from the package: the EMS's error reaches the NFVO, naming VNFC, event, script
    server = vnfd("web", "web", 1, {"INSTANTIATE": ["install.sh", "missing.sh"]}, {"outdir": str(w.outdir)})
    reply = await call(t, w.endpoint, instantiate(server, {"install.sh": RECORD}))
    assert reply["action"] == "ERROR"
    text = reply["exception"]["detailMessage"]
    host = reply["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc_instance"][0]["hostname"]
    assert "missing.sh" in text and "INSTANTIATE" in text and host in text
    # a failing script: its stderr is in the error
    server = vnfd("db", "db", 1, {"INSTANTIATE": ["fail.sh"]}, {"outdir": str(w.outdir)})
    reply = await call(t, w.endpoint, instantiate(server, {"fail.sh": FAIL}))
    assert reply["action"] == "ERROR" and "port 5001 already in use" in reply["exception"]["detailMessage"]
    assert "event=message_refused" in vnfm.log() and "event=operation_failed" in vnfm.log()
    # and the service still serves
    ok = vnfd("ok", "ok", 1, {"INSTANTIATE": ["install.sh"]}, {"outdir": str(w.outdir)})
    assert (await call(t, w.endpoint, instantiate(ok, {"install.sh": RECORD})))["action"] == "INSTANTIATE"
    await shut_down_and_check_unregister(w, vnfm)
