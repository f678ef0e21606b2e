"""LocalNfvo + Deployment against a scripted fake VNFM (written here), over the in-memory transport and
over a real RabbitMQ. The fake VNFM consumes its endpoint queue, performs GRANT_OPERATION /
ALLOCATE_RESOURCES / SCALING RPCs to the orchestrator and answers its commands; the test asserts the
order of what the orchestrator sends, the records, and what happens to the hosts."""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gvnfm.api.server import ApiServer
from gvnfm.catalogue.descriptors import NetworkServiceDescriptor
from gvnfm.catalogue.messages import OrVnfmInstantiateMessage
from gvnfm.catalogue.scripts import Script
from gvnfm.cli import day2_cmd
from gvnfm.cli.main import app as cli_app
from gvnfm.orchestrator import (
    DeployFailed,
    Deployment,
    DescriptorError,
    LocalNfvo,
    NotEnoughResources,
    OrchestratorError,
    ServiceBundle,
    VnfmError,
    VnfPackageContent,
    load_service,
)
from gvnfm.orchestrator.errors import Conflict, VnfmRefused
from gvnfm.orchestrator.records import ACTIVE, ERROR, INITIALIZED, TERMINATED, NetworkServiceRecord
from gvnfm.transport import Delivery, RpcTimeout, Transport, open_transport
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.vim.base import Host, HostSpec, Vim, VimError
from gvnfm.vnfm.record_builder import build_vnfr
from tests.support.services import unique

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 10.0


async def eventually(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Wait until ``predicate()`` holds (the timeout is a hang guard: the caller asserts afterwards)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(0.01)


# -- a fake VIM -----------------------------------------------------------------------------------

class FakeVim(Vim):
    name = "fakevim"

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._hosts: dict[str, Host] = {}
        self.created: list[HostSpec] = []
        self.removed: list[str] = []
        self.rebuilt: list[tuple[str, str | None]] = []
        self.fail_images: set[str] = set()
        self._n = 0

    @property
    def hosts(self) -> dict[str, Host]:
        return dict(self._hosts)

    async def create_host(self, spec: HostSpec) -> Host:
        await asyncio.sleep(0.001)
        if spec.image in self.fail_images:
            raise VimError(f"host {spec.hostname}: image {spec.image} is broken")
        if len(self._hosts) >= self.capacity:
            raise VimError(f"the VIM is full, cannot create {spec.hostname}")
        self._n += 1
        host = Host(hostname=spec.hostname, ips={n: f"10.0.{i}.{self._n}" for i, n in enumerate(spec.networks)},
                    floating_ips={n: f"172.24.4.{self._n}" for n in spec.floating_networks})
        self._hosts[spec.hostname] = host
        self.created.append(spec)
        return host

    async def remove_host(self, hostname: str) -> None:
        self._hosts.pop(hostname, None)
        self.removed.append(hostname)

    async def rebuild_host(self, hostname: str, image: str | None = None) -> Host:
        if hostname not in self._hosts:
            raise VimError(f"host {hostname} does not exist")
        self.rebuilt.append((hostname, image))
        return self._hosts[hostname]

    async def close(self) -> None:
        self._hosts.clear()


# -- a scripted fake VNFM ------------------------------------------------------------------------------

#: an answer whose body is the four bytes `null` (the Java VNFM's answer to SCALE_IN and ERROR)
NULL = object()

def vnfr_name_of(msg: dict[str, Any]) -> str:
    for key in ("virtualNetworkFunctionRecord", "vnfr", "vnfd"):
        if isinstance(msg.get(key), dict):
            return str(msg[key].get("name"))
    return str(msg.get("vnfrName"))


@dataclass
class FakeVnfm:
    transport: Transport
    endpoint: str
    sync_queue: str
    #: (action, vnfr) -> stderr: answer ERROR as gvnfm's VNFM does for a failed script
    fail: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (action, vnfr) -> seconds to wait before answering
    delay: dict[tuple[str, str], float] = field(default_factory=dict)
    #: (action, vnfr) -> awaited when that command arrives, before it is handled
    hooks: dict[tuple[str, str], Callable[[], Awaitable[None]]] = field(default_factory=dict)
    #: (action, vnfr) -> detail: answer ERROR at once, nothing done (as a VNFM refusing a request)
    refuse: dict[tuple[str, str], str] = field(default_factory=dict)
    #: EXECUTE: answer with per-VNFC ``scriptResults`` (gvnfm's VNFM), also in an ERROR answer
    script_results: bool = False
    #: LOG_REQUEST: hostname -> the lines of its output log (default: one line)
    log_lines: dict[str, list[str]] = field(default_factory=dict)
    #: ("recv"|"reply", action, vnfr) in the order they happened
    log: list[tuple[str, str, str]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: (reply_to, correlation_id) of every command, in order
    envelopes: list[tuple[str | None, str | None]] = field(default_factory=list)
    nfvo_answers: list[dict[str, Any]] = field(default_factory=list)
    resume_as: str = "INSTANTIATE"
    #: what ALLOCATE_RESOURCES carries (python-vnfm-sdk: "none" when it has no user-data file)
    userdata: str = "#!/bin/bash\n#Hostname=\n"

    async def start(self) -> None:
        await self.transport.declare_queue(self.endpoint, auto_delete=True)
        await self.transport.consume(self.endpoint, self._on_message, prefetch=16)

    def received(self, action: str, vnfr: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["action"] == action and (vnfr is None or vnfr_name_of(m) == vnfr)]

    def index(self, kind: str, action: str, vnfr: str) -> int:
        return self.log.index((kind, action, vnfr))

    async def _on_message(self, delivery: Delivery) -> None:
        msg = json.loads(delivery.message.body)
        action, name = msg["action"], vnfr_name_of(msg)
        self.log.append(("recv", action, name))
        self.messages.append(msg)
        self.envelopes.append((delivery.message.reply_to, delivery.message.correlation_id))
        try:
            if (action, name) in self.hooks:
                await self.hooks[(action, name)]()
            await asyncio.sleep(self.delay.get((action, name), 0))
            reply = await self._handle(action, name, msg)
        except Exception as exc:   # the fake must answer whatever happens
            reply = {"action": "ERROR", "exception": {"detailMessage": f"fake VNFM failed: {exc!r}"}}
        if reply is NULL:       # the Java VNFM answers SCALE_IN and ERROR with the body `null`
            self.log.append(("reply", "null", name))
            await self.transport.reply(delivery.message, b"null")
        elif reply is not None:
            self.log.append(("reply", reply["action"], name))
            await self.transport.reply(delivery.message, json.dumps(reply).encode())
        await delivery.ack()

    async def _nfvo(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = json.loads(await self.transport.rpc(self.sync_queue, json.dumps(request).encode(), timeout=TIMEOUT))
        self.nfvo_answers.append(answer)
        return answer

    def _error(self, vnfr: dict[str, Any], action: str, text: str) -> dict[str, Any]:
        hosts = [i for vdu in vnfr.get("vdu") or [] for i in vdu.get("vnfc_instance") or []]
        if hosts:
            hosts[0]["state"] = "error"
            detail = (f"EMS ({hosts[0]['hostname']}) had the following error: script 'x.sh' of event {action} exited "
                      f"with status 1: {text}")
        else:
            detail = text
        return {"action": "ERROR", "nsrId": vnfr.get("parent_ns_id"), "virtualNetworkFunctionRecord": vnfr,
                "exception": {"detailMessage": detail, "cause": {"detailMessage": text}}}

    async def _handle(self, action: str, name: str, msg: dict[str, Any]) -> Any:
        fail = self.fail.get((action, name))
        if (action, name) in self.refuse:
            return {"action": "ERROR", "virtualNetworkFunctionRecord": msg.get("vnfr") or msg.get(
                "virtualNetworkFunctionRecord"), "exception": {"detailMessage": self.refuse[(action, name)]}}
        if action == "EXECUTE" and self.script_results:
            vnfr = msg["vnfr"]
            results = [{"hostname": i["hostname"], "action": "EXECUTE", "status": 2 if fail else 0,
                        "output": f"ran on {i['hostname']}", "err": fail or ""}
                       for vdu in vnfr["vdu"] for i in vdu["vnfc_instance"]]
            if fail:
                return {"action": "ERROR", "virtualNetworkFunctionRecord": vnfr, "scriptResults": results,
                        "exception": {"detailMessage": f"EXECUTE failed on {len(results)} VNFC(s)"}}
            return {"action": "EXECUTE", "virtualNetworkFunctionRecord": vnfr, "scriptResults": results}
        if action == "INSTANTIATE" and msg.get("vnfr"):
            # the NFVO's restart path (AbstractVnfm: `if (vnfr != null)`): no GRANT, no ALLOCATE
            if fail:
                return self._error(msg["vnfr"], action, fail)
            return {"action": "INSTANTIATE", "virtualNetworkFunctionRecord": msg["vnfr"]}
        if action == "INSTANTIATE":
            vnfr = build_vnfr(OrVnfmInstantiateMessage.model_validate(msg)).to_wire()
            grant = await self._nfvo({"action": "GRANT_OPERATION", "virtualNetworkFunctionRecord": vnfr})
            if grant["action"] == "ERROR":
                return self._error(grant.get("vnfr") or vnfr, action, grant["message"])
            vnfr = grant["virtualNetworkFunctionRecord"]
            alloc = await self._nfvo({"action": "ALLOCATE_RESOURCES", "virtualNetworkFunctionRecord": vnfr,
                                      "vimInstances": grant["vduVim"], "userdata": self.userdata,
                                      "keyPairs": []})
            if alloc["action"] == "ERROR":
                return self._error(alloc.get("vnfr") or vnfr, action, alloc["message"])
            vnfr = alloc["vnfr"]
            if fail:
                return self._error(vnfr, action, fail)
            return {"action": "INSTANTIATE", "virtualNetworkFunctionRecord": vnfr}
        vnfr = msg.get("vnfr") or msg.get("virtualNetworkFunctionRecord") or {}
        if fail:
            return self._error(vnfr, action, fail)
        if action in ("MODIFY", "RELEASE_RESOURCES", "UPDATE", "EXECUTE"):
            return {"action": action, "virtualNetworkFunctionRecord": vnfr}
        if action in ("START", "STOP"):
            return {"action": action, "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": msg.get("vnfcInstance")}
        if action == "HEAL":
            # VnfmOrHealedMessage: the Java VNFM leaves `cause` out
            return {"action": "HEAL", "virtualNetworkFunctionRecord": vnfr, "vnfcInstance": msg["vnfcInstance"]}
        if action == "LOG_REQUEST":
            lines = self.log_lines.get(msg["hostname"], [f"log of {msg['hostname']}"])
            return {"action": "LOG_REQUEST", "outputLog": list(lines), "errorLog": []}
        if action == "RESUME":
            return {"action": self.resume_as, "virtualNetworkFunctionRecord": vnfr}
        if action == "SCALE_OUT":
            before = {i["id"] for vdu in vnfr["vdu"] for i in vdu.get("vnfc_instance") or []}
            answer = await self._nfvo({"action": "SCALING", "virtualNetworkFunctionRecord": vnfr,
                                       "userData": "#Hostname=\n", "vimInstance": msg.get("vimInstance")})
            if answer["action"] == "ERROR":   # as gvnfm's VNFM: the NFVO refused, nothing happened
                return {"action": "ERROR", "virtualNetworkFunctionRecord": vnfr,
                        "exception": {"detailMessage": answer["message"]}}
            assert answer["action"] == "SCALED", answer     # ScalingTask: the VNFR under `vnfr`
            scaled = answer["vnfr"]
            new = [i for vdu in scaled["vdu"] for i in vdu["vnfc_instance"]
                   if i["id"] not in before and i["vnfComponent"]["id"] == msg["component"]["id"]]
            return {"action": "SCALED", "virtualNetworkFunctionRecord": scaled, "vnfcInstance": new[0]}
        if action in ("SCALE_IN", "ERROR"):
            return NULL
        return {"action": "ERROR", "exception": {"detailMessage": f"fake VNFM: unexpected {action}"}}


# -- fixtures -------------------------------------------------------------------------------------------

@dataclass
class Env:
    nfvo: LocalNfvo
    vnfm: FakeVnfm
    vim: FakeVim
    deployment: Deployment
    endpoint: str
    peer: Transport


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    if request.param == "memory":
        broker = InMemoryBroker()
        nfvo_t: Transport = InMemoryTransport(broker)
        vnfm_t: Transport = InMemoryTransport(broker)
    else:
        url = request.getfixturevalue("amqp_url")
        nfvo_t, vnfm_t = open_transport(url), open_transport(url)
    await nfvo_t.connect()
    await vnfm_t.connect()
    prefix = unique("t-orch") + "."
    endpoint = unique("t-orch-ep")
    vim = FakeVim(capacity=20)
    nfvo = LocalNfvo(nfvo_t, vim, broker_ip="127.0.0.1", broker_port=5672, reply_timeout=TIMEOUT,
                     queue_prefix=prefix)
    await nfvo.start()
    vnfm = FakeVnfm(vnfm_t, endpoint, nfvo.sync_queue)
    await vnfm.start()
    # registered as a VNFM of type = its endpoint (what the VNFDs below name); the wire form of the
    # registration has tests of its own
    nfvo.registry.handle({"action": "register", "type": endpoint, "vnfmManagerEndpoint": {"endpoint": endpoint}})
    try:
        yield Env(nfvo, vnfm, vim, Deployment(nfvo, image_exists=lambda image: image != "unknown-image"), endpoint,
                  vnfm_t)
    finally:
        await nfvo.stop()
        await vnfm_t.close()
        await nfvo_t.close()


def vnfd(name: str, type_: str, endpoint: str, *, vnfc: int = 1, requires: dict[str, list[str]] | None = None,
         conf: dict[str, str] | None = None, floating: bool = False, events: tuple[str, ...] = ()) -> dict[str, Any]:
    cp: dict[str, Any] = {"virtual_link_reference": "private", "interfaceId": 0}
    if floating:
        cp["floatingIp"] = "random"
    return {
        "name": name, "vendor": "acme", "version": "1.0", "type": type_, "endpoint": endpoint,
        "configurations": {"name": f"{name}-conf",
                           "configurationParameters": [{"confKey": k, "value": v} for k, v in (conf or {}).items()]},
        "requires": {k: {"parameters": v} for k, v in (requires or {}).items()},
        "vdu": [{"vm_image": ["ubuntu"], "scale_in_out": 3, "vnfc": [{"connection_point": [dict(cp)]}
                                                                     for _ in range(vnfc)]}],
        "virtual_link": [{"name": "private"}],
        "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]},
                            {"event": "START", "lifecycle_events": ["install.sh"]},
                            *({"event": e, "lifecycle_events": ["install.sh"]} for e in events)],
        "deployment_flavour": [{"flavour_key": "m1.small"}],
    }


def bundle(*vnfds: dict[str, Any], deps: list[dict[str, Any]] | None = None) -> ServiceBundle:
    nsd = NetworkServiceDescriptor.model_validate({"name": unique("svc"), "vendor": "acme", "version": "1",
                                                   "vld": [{"name": "private"}], "vnfd": list(vnfds),
                                                   "vnf_dependency": deps or []})
    packages = {v["name"]: VnfPackageContent(name=v["name"], scripts=[Script(name="install.sh", payload=b"echo\n")],
                                             script_names={"install.sh"}) for v in vnfds}
    return ServiceBundle(nsd=nsd, packages=packages)


def chain(endpoint: str) -> ServiceBundle:
    return bundle(vnfd("db", "db", endpoint, conf={"port": "5432"}),
                  vnfd("app", "app", endpoint, vnfc=2, requires={"db": ["private", "hostname", "port"]}),
                  vnfd("web", "web", endpoint, requires={"app": ["private", "hostname"]}))


# -- deployment order --------------------------------------------------------------------------------

async def test_chain_deploys_in_dependency_order(env: Env) -> None:
    async def db_is_slow() -> None:
        # db (a source) instantiates last: web, which depends only on app, must not wait for it
        await eventually(lambda: ("recv", "START", "web") in env.vnfm.log)

    env.vnfm.hooks[("INSTANTIATE", "db")] = db_is_slow
    nsr = await env.deployment.deploy(chain(env.endpoint))
    log = env.vnfm.log
    assert nsr.status == ACTIVE
    assert {n: v.status for n, v in nsr.vnfrs.items()} == {"db": ACTIVE, "app": ACTIVE, "web": ACTIVE}
    # every VNF got INSTANTIATE at once, without waiting for any other
    assert {m[2] for m in log[:3]} == {"db", "app", "web"} and all(m[:2] == ("recv", "INSTANTIATE") for m in log[:3])
    # non-targets go straight to START; db is no target: never MODIFY
    assert env.vnfm.received("MODIFY", "db") == []
    assert env.vnfm.index("recv", "START", "db") > env.vnfm.index("reply", "INSTANTIATE", "db")
    # app waits for db (slow) to be INITIALIZED, web only for app
    assert env.vnfm.index("recv", "MODIFY", "app") > env.vnfm.index("reply", "INSTANTIATE", "db")
    assert env.vnfm.index("recv", "MODIFY", "web") > env.vnfm.index("reply", "INSTANTIATE", "app")
    assert env.vnfm.index("recv", "MODIFY", "web") < env.vnfm.index("reply", "INSTANTIATE", "db")
    for target in ("app", "web"):
        assert env.vnfm.index("recv", "START", target) > env.vnfm.index("reply", "MODIFY", target)
    assert [m[1] for m in log if m[2] == "app" and m[0] == "recv"] == ["INSTANTIATE", "MODIFY", "START"]
    # one host per VNFC, named <vnfr>-<7 digits>, user-data with the hostname filled in
    assert sorted(s.vnfr_name for s in env.vim.created) == ["app", "app", "db", "web"]
    for spec in env.vim.created:
        prefix, digits = spec.hostname.rsplit("-", 1)
        assert prefix == spec.vnfr_name and len(digits) == 7 and digits.isdigit()
        assert f"Hostname={spec.hostname}" in spec.userdata and spec.networks == ["private"]


async def test_messages_carry_what_the_reference_nfvo_sends(env: Env) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    inst = env.vnfm.received("INSTANTIATE", "app")[0]
    assert inst["vnfInstanceName"] == "app" and inst["vnfdf"]["flavour_key"] == "m1.small"
    assert inst["extension"] == {"nsr-id": nsr.id, "brokerIp": "127.0.0.1", "brokerPort": "5672", "monitoringIp": "",
                                 "timezone": env.nfvo.timezone}
    vdu_id = inst["vnfd"]["vdu"][0]["id"]
    assert inst["vimInstances"] == {vdu_id: [{"id": "fakevim", "name": "fakevim", "type": "local",
                                              "authUrl": "local://fakevim"}]}
    assert [v["name"] for v in inst["vlrs"]] == ["private"]
    package = inst["vnfPackage"]
    assert package["scripts"] == [{"name": "install.sh", "payload": [101, 99, 104, 111, 10]}]
    assert inst["vnfd"]["vnfPackageLocation"] == package["id"] and inst["keys"] == []
    # GRANT answered with ids and a VIM per VDU
    grant = next(a for a in env.vnfm.nfvo_answers if a["action"] == "GRANT_OPERATION"
                 and a["virtualNetworkFunctionRecord"]["name"] == "app")
    granted = grant["virtualNetworkFunctionRecord"]
    assert grant["grantAllowed"] is True and granted["hbVersion"] == 1 and granted["id"]
    assert [h["event"] for h in granted["lifecycle_event_history"]] == ["GRANTED"]     # GrantoperationTask's
    assert set(grant["vduVim"]) == {granted["vdu"][0]["id"]}
    assert all(c["id"] for c in granted["vdu"][0]["vnfc"]) and all(le["id"] for le in granted["lifecycle_event"])
    # ALLOCATE answered with the VNFC instances
    alloc = next(a for a in env.vnfm.nfvo_answers if a["action"] == "ALLOCATE_RESOURCES"
                 and a["vnfr"]["name"] == "app")
    instances = alloc["vnfr"]["vdu"][0]["vnfc_instance"]
    assert len(instances) == 2
    for i, comp in zip(instances, granted["vdu"][0]["vnfc"], strict=True):
        assert i["state"] == "ACTIVE" and i["vim_id"] == "fakevim" and i["vnfComponent"] == {"id": comp["id"]}
        assert i["ips"][0]["netName"] == "private" and i["ips"][0]["ip"] == env.vim.hosts[i["hostname"]].ips["private"]
    assert alloc["vnfr"]["vnf_address"] == [i["ips"][0]["ip"] for i in instances]
    # MODIFY of web: the dependency on app's two VNFCs, keyed by type and VNFC instance id
    modify = env.vnfm.received("MODIFY", "web")[0]
    dep = modify["vnfrd"]
    assert dep["target"] == "web" and dep["idType"] == {"app": "app"}
    assert dep["parameters"] == {"app": {"parameters": {"private": "", "hostname": ""}}}
    assert dep["vnfcParameters"]["app"]["parameters"] == {
        i["id"]: {"parameters": {"private": i["ips"][0]["ip"], "hostname": i["hostname"]}} for i in instances}
    assert modify["vnfr"]["status"] == INITIALIZED
    db_dep = env.vnfm.received("MODIFY", "app")[0]["vnfrd"]
    assert db_dep["parameters"] == {"db": {"parameters": {"private": "", "hostname": "", "port": "5432"}}}
    # every command as the Java NFVO sends it: a reply address of its own, no correlation id
    assert env.vnfm.envelopes and all(r and c is None for r, c in env.vnfm.envelopes)
    assert len({r for r, _ in env.vnfm.envelopes}) == len(env.vnfm.envelopes)
    # START carries the whole VNFR and no VNFC
    start = env.vnfm.received("START", "web")[0]
    assert start["virtualNetworkFunctionRecord"]["name"] == "web" and "vnfcInstance" not in start
    # records kept and shown
    report = nsr.report()
    assert json.loads(json.dumps(report)) == report
    assert [v["name"] for v in report["vnfrs"]] == ["db", "app", "web"]
    app = report["vnfrs"][1]
    assert app["status"] == ACTIVE and len(app["vnfc"]) == 2 and app["record"]["name"] == "app"
    assert [h["action"] for h in app["history"] if h["result"] == "ok"] == [
        "GRANT_OPERATION", "ALLOCATE_RESOURCES", "INSTANTIATE", "MODIFY", "START"]


async def test_mutual_dependency_deploys(env: Env) -> None:
    service = bundle(vnfd("a", "ta", env.endpoint, requires={"b": ["private"]}),
                     vnfd("b", "tb", env.endpoint, requires={"a": ["hostname"]}))
    env.vnfm.delay[("INSTANTIATE", "b")] = 0.2
    nsr = await env.deployment.deploy(service)
    assert nsr.status == ACTIVE and nsr.cyclic == ["a", "b"]
    both_instantiated = max(env.vnfm.index("reply", "INSTANTIATE", "a"), env.vnfm.index("reply", "INSTANTIATE", "b"))
    for name in ("a", "b"):
        assert env.vnfm.index("recv", "MODIFY", name) > both_instantiated
        assert env.vnfm.index("recv", "START", name) > env.vnfm.index("reply", "MODIFY", name)
    assert env.vnfm.received("MODIFY", "a")[0]["vnfrd"]["idType"] == {"b": "tb"}
    assert env.vnfm.received("MODIFY", "b")[0]["vnfrd"]["idType"] == {"a": "ta"}


async def test_chain_example_from_disk(env: Env, tmp_path: Path) -> None:
    service = load_service(EXAMPLES / "chain", tmp_path)
    for vnfd_ in service.nsd.vnfd:
        vnfd_.endpoint = env.endpoint
    nsr = await env.deployment.deploy(service)
    assert nsr.status == ACTIVE
    dep = env.vnfm.received("MODIFY", "app")[0]["vnfrd"]
    assert dep["parameters"]["db"]["parameters"] == {"private": "", "hostname": "", "port": "5432",
                                                     "schema": "orders"}
    (db_vnfc,) = dep["vnfcParameters"]["db"]["parameters"].values()
    assert set(db_vnfc["parameters"]) == {"private", "hostname"}
    inst = env.vnfm.received("INSTANTIATE", "web")[0]
    assert sorted(s["name"] for s in inst["vnfPackage"]["scripts"]) == [
        "app_configure.sh", "chain-lib.sh", "install.sh", "scale_in.sh", "start.sh", "stop.sh", "terminate.sh"]
    await env.deployment.teardown(nsr)
    assert env.vim.hosts == {}


# -- resources ----------------------------------------------------------------------------------------

async def test_service_that_does_not_fit_is_refused_up_front(env: Env) -> None:
    env.vim.capacity = 3                                  # the chain needs 4 hosts
    with pytest.raises(NotEnoughResources) as err:
        await env.deployment.deploy(chain(env.endpoint))
    assert str(err.value).startswith("Not enough resources for deploying VNFR web (network service ")
    assert env.vnfm.messages == [] and env.vim.created == []
    nsr = next(iter(env.nfvo.nsrs.values()))
    assert nsr.status == ERROR and env.nfvo.resources.reserved == {}


async def test_any_userdata_is_handed_to_the_vim(env: Env) -> None:
    """As the Java NFVO: the user-data goes to the VIM as it came, python-vnfm-sdk's "none" included."""
    env.vnfm.userdata = "none"
    nsr = await env.deployment.deploy(chain(env.endpoint))
    assert nsr.status == ACTIVE
    assert sorted(s.vnfr_name for s in env.vim.created) == ["app", "app", "db", "web"]
    assert {s.userdata for s in env.vim.created} == {"none"}
    alloc = next(a for a in env.vnfm.nfvo_answers if a["action"] == "ALLOCATE_RESOURCES")
    assert [i["hostname"] for i in alloc["vnfr"]["vdu"][0]["vnfc_instance"]]


async def test_grant_refused_when_capacity_went_away(env: Env) -> None:
    service = bundle(vnfd("small", "ts", env.endpoint), vnfd("big", "tb", env.endpoint, vnfc=3))

    async def shrink() -> None:
        # once small is deployed, someone else takes most of the VIM, before big asks for its grant
        await eventually(lambda: ("recv", "START", "small") in env.vnfm.log)
        env.vim.capacity = 2

    env.vnfm.hooks[("INSTANTIATE", "big")] = shrink
    with pytest.raises(DeployFailed) as err:
        await env.deployment.deploy(service)
    assert "VNFR big: INSTANTIATE failed: Not enough resources for deploying VNFR big" in str(err.value)
    refusal = [a for a in env.vnfm.nfvo_answers if a["action"] == "ERROR"]
    assert len(refusal) == 1 and refusal[0]["message"] == "Not enough resources for deploying VNFR big"
    assert refusal[0]["vnfr"]["status"] == "ERROR" and refusal[0]["vnfr"]["name"] == "big"
    assert [s.vnfr_name for s in env.vim.created] == ["small"]     # nothing allocated for big
    nsr = err.value.nsr
    assert nsr.vnfrs["big"].status == ERROR and nsr.vnfrs["small"].status == ACTIVE and nsr.status == ERROR
    await env.deployment.teardown(nsr)
    assert env.vim.hosts == {} and nsr.status == TERMINATED
    assert env.vnfm.received("RELEASE_RESOURCES", "big") == []     # no hosts: nothing to release


async def test_allocation_failure_removes_the_hosts_created(env: Env) -> None:
    service = bundle(vnfd("x", "tx", env.endpoint, vnfc=3))
    service.nsd.vnfd[0].vdu[0].vm_image = ["broken"]  # type: ignore[index]
    env.vim.fail_images.add("broken")
    with pytest.raises(DeployFailed, match="Could not allocate resources for VNFR x: host x-"):
        await env.deployment.deploy(service)
    assert env.vim.hosts == {} and env.vim.created == []
    assert env.nfvo.resources.reserved == {}


async def test_repeated_request_gets_the_same_answer(env: Env) -> None:
    nsr = env.nfvo.onboard(bundle(vnfd("r", "tr", env.endpoint, vnfc=2)))
    vnfr = {"name": "r", "type": "tr", "parent_ns_id": nsr.id,
            "vdu": [{"vm_image": ["ubuntu"], "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}]}
    request = json.dumps({"action": "ALLOCATE_RESOURCES", "virtualNetworkFunctionRecord": vnfr,
                          "userdata": "#Hostname=", "vimInstances": {}}).encode()
    cid = uuid.uuid4().hex
    first = await env.peer.rpc(env.nfvo.sync_queue, request, timeout=TIMEOUT, correlation_id=cid)
    second = await env.peer.rpc(env.nfvo.sync_queue, request, timeout=TIMEOUT, correlation_id=cid)
    assert first == second and len(env.vim.created) == 1
    answer = json.loads(first)
    assert answer["vnfr"]["vdu"][0]["vnfc_instance"][0]["hostname"] == env.vim.created[0].hostname


# -- failures and teardown ---------------------------------------------------------------------------------

async def test_failed_vnf_then_teardown(env: Env) -> None:
    env.vnfm.fail[("MODIFY", "app")] = "db_configure.sh: $db_port is '', expected '5432'"
    with pytest.raises(DeployFailed) as err:
        await env.deployment.deploy(chain(env.endpoint))
    nsr = err.value.nsr
    assert "VNFR app: MODIFY failed: EMS (app-" in str(err.value)
    assert "$db_port is '', expected '5432'" in str(err.value)
    assert nsr.status == ERROR and nsr.vnfrs["app"].status == ERROR
    assert nsr.vnfrs["db"].status == ACTIVE and nsr.vnfrs["web"].status == ACTIVE
    (error,) = nsr.errors
    assert error.vnfr == "app" and error.action == "MODIFY" and error.event == "MODIFY" and error.script == "x.sh"
    assert error.hostname in nsr.vnfrs["app"].hosts
    assert error.stderr == "db_configure.sh: $db_port is '', expected '5432'"
    assert env.vnfm.received("START", "app") == []
    hosts = set(env.vim.hosts)
    app_hosts = set(nsr.vnfrs["app"].hosts)
    assert len(app_hosts) == 2 and app_hosts < hosts
    await env.deployment.teardown(nsr)
    assert {vnfr_name_of(m) for m in env.vnfm.received("RELEASE_RESOURCES")} == {"db", "app", "web"}
    released_app = env.vnfm.received("RELEASE_RESOURCES", "app")[0]["vnfr"]
    assert {i["hostname"] for vdu in released_app["vdu"] for i in vdu["vnfc_instance"]} == app_hosts
    assert env.vim.hosts == {} and set(env.vim.removed) == hosts
    assert nsr.status == TERMINATED and all(v.status == TERMINATED for v in nsr.vnfrs.values())
    # releasing is answered before the hosts go
    assert all(env.vnfm.index("reply", "RELEASE_RESOURCES", n) >= 0 for n in ("db", "app", "web"))


async def test_source_failure_blocks_targets_and_teardown_releases_what_has_hosts(env: Env) -> None:
    env.vnfm.fail[("INSTANTIATE", "db")] = "install.sh: exit 1"
    with pytest.raises(DeployFailed) as err:
        await env.deployment.deploy(chain(env.endpoint))
    text = str(err.value)
    assert text.index("VNFR db: INSTANTIATE failed") < text.index("VNFR app not configured: its source db did not "
                                                                  "instantiate")
    nsr = err.value.nsr
    assert nsr.vnfrs["db"].status == ERROR and nsr.vnfrs["app"].status == INITIALIZED
    assert nsr.vnfrs["web"].status == ACTIVE                      # web's source app did instantiate
    assert env.vnfm.received("MODIFY", "app") == [] and env.vnfm.received("START", "app") == []
    await env.deployment.teardown(nsr)
    assert {vnfr_name_of(m) for m in env.vnfm.received("RELEASE_RESOURCES")} == {"db", "app", "web"}
    assert env.vim.hosts == {}


async def test_release_failure_still_removes_hosts(env: Env) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    env.vnfm.fail[("RELEASE_RESOURCES", "web")] = "terminate.sh failed"
    await env.deployment.teardown(nsr)
    assert env.vim.hosts == {} and nsr.status == TERMINATED
    assert [e.action for e in nsr.errors] == ["RELEASE_RESOURCES"]


async def test_teardown_stops_waiting_when_told(env: Env) -> None:
    """A VNFM that never answers RELEASE_RESOURCES: ``stop_waiting`` (gvnfm up's second Ctrl-C) ends the
    wait at once, the hosts are removed, the unanswered releases are recorded."""
    nsr = await env.deployment.deploy(chain(env.endpoint))
    stuck = asyncio.Event()
    for name in ("db", "app", "web"):
        env.vnfm.hooks[("RELEASE_RESOURCES", name)] = stuck.wait
    teardown = asyncio.create_task(env.deployment.teardown(nsr, timeout=3600))
    for _ in range(500):
        if len(env.vnfm.received("RELEASE_RESOURCES")) == 3:
            break
        await asyncio.sleep(0.01)
    assert not teardown.done()
    env.nfvo.stop_waiting()
    await asyncio.wait_for(teardown, TIMEOUT)
    assert env.vim.hosts == {} and nsr.status == TERMINATED
    assert sorted(e.vnfr for e in nsr.errors if "not awaited" in e.message) == ["app", "db", "web"]
    stuck.set()


async def test_unanswered_action_times_out_as_an_error(env: Env) -> None:
    env.nfvo.reply_timeout = 0.5
    env.vnfm.delay[("START", "db")] = 3.0
    with pytest.raises(DeployFailed, match=r"VNFR db: START failed: the VNFM \(endpoint '.*'\) did not answer within "
                                           r"0.5 s"):
        await env.deployment.deploy(bundle(vnfd("db", "db", env.endpoint)))


async def test_resume_continues_the_deployment(env: Env) -> None:
    env.vnfm.fail[("INSTANTIATE", "db")] = "install.sh: exit 1"
    with pytest.raises(DeployFailed) as err:
        await env.deployment.deploy(chain(env.endpoint))
    nsr = err.value.nsr
    del env.vnfm.fail[("INSTANTIATE", "db")]
    await env.deployment.resume(nsr, "db")
    assert nsr.status == ACTIVE and all(v.status == ACTIVE for v in nsr.vnfrs.values())
    resume = env.vnfm.received("RESUME", "db")[0]
    assert resume["vnfr"]["status"] == "RESUMING"
    assert env.vnfm.index("recv", "MODIFY", "app") > env.vnfm.index("reply", "INSTANTIATE", "db")
    assert env.vnfm.received("INSTANTIATE", "db").__len__() == 1        # resumed, not re-instantiated
    assert nsr.vnfrs["db"].error is None


async def test_invalid_service_sends_nothing(env: Env) -> None:
    service = chain(env.endpoint)
    service.nsd.vnfd[2].vdu[0].vm_image = ["unknown-image"]  # type: ignore[index]
    with pytest.raises(DescriptorError, match=r'vnfd\[2\] "web": vdu\[0\]\.vm_image "unknown-image" is not an image'):
        await env.deployment.deploy(service)
    assert env.vnfm.messages == [] and env.nfvo.nsrs == {}


# -- registration and bad requests ------------------------------------------------------------------------

async def test_registration_and_unregistration(env: Env) -> None:
    type_ = env.endpoint + "-t"                  # a type of its own (the fixture's VNFM has type env.endpoint)
    reg = {"action": "register", "type": type_,
           "vnfmManagerEndpoint": {"type": type_, "endpoint": env.endpoint + "-q", "endpointType": "RABBIT"}}
    answer = json.loads(await env.peer.rpc(env.nfvo.registration_queue, json.dumps(reg).encode(), timeout=TIMEOUT))
    assert answer["rabbitUsername"] == type_ and len(answer["rabbitPassword"]) == 16
    assert env.nfvo.endpoint_for(type_) == env.endpoint + "-q"
    again = json.loads(await env.peer.rpc(env.nfvo.registration_queue, json.dumps(reg).encode(), timeout=TIMEOUT))
    assert again == answer
    with pytest.raises(RpcTimeout):                              # no action/type: no answer at all
        await env.peer.rpc(env.nfvo.registration_queue, json.dumps({"type": "x"}).encode(), timeout=0.5)
    wrong = {"action": "unregister", "type": type_, "password": "wrong"}
    await env.peer.publish(env.nfvo.registration_queue, json.dumps(wrong).encode())
    await env.peer.publish(env.nfvo.registration_queue, json.dumps(
        {**wrong, "password": answer["rabbitPassword"]}).encode())
    await eventually(lambda: type_ not in env.nfvo.vnfms)
    assert type_ not in env.nfvo.vnfms
    assert env.nfvo.endpoint_for(type_) == type_


async def test_the_first_vnfm_of_a_type_keeps_it_until_it_unregisters(env: Env) -> None:
    """As the Java NFVO's getVnfm(type): a VNFM registered before the NS is deployed is not displaced by
    a later VNFM of the same type on another endpoint; that one takes over when the first unregisters."""
    type_ = env.endpoint + "-t"

    async def register(endpoint: str) -> dict[str, str]:
        reg = {"action": "register", "type": type_, "vnfmManagerEndpoint": {"type": type_, "endpoint": endpoint}}
        answer: dict[str, str] = json.loads(await env.peer.rpc(env.nfvo.registration_queue, json.dumps(reg).encode(),
                                                               timeout=TIMEOUT))
        return answer

    first, second = await register(env.endpoint + "-1"), await register(env.endpoint + "-2")
    assert first["rabbitPassword"] and second["rabbitPassword"]
    assert env.nfvo.endpoint_for(type_) == env.endpoint + "-1"
    assert await register(env.endpoint + "-1") == first                   # registering again changes nothing
    assert env.nfvo.endpoint_for(type_) == env.endpoint + "-1"
    await env.peer.publish(env.nfvo.registration_queue, json.dumps(
        {"action": "unregister", "type": type_, "password": first["rabbitPassword"],
         "vnfmManagerEndpoint": {"type": type_, "endpoint": env.endpoint + "-1"}}).encode())
    await eventually(lambda: env.nfvo.endpoint_for(type_) == env.endpoint + "-2")
    await env.peer.publish(env.nfvo.registration_queue, json.dumps(
        {"action": "unregister", "type": type_, "password": second["rabbitPassword"]}).encode())
    await eventually(lambda: type_ not in env.nfvo.vnfms)


async def test_registered_endpoint_is_where_commands_go(env: Env) -> None:
    reg = {"action": "register", "type": "fancy-type", "vnfmManagerEndpoint": {"endpoint": env.endpoint}}
    await env.peer.rpc(env.nfvo.registration_queue, json.dumps(reg).encode(), timeout=TIMEOUT)
    assert await env.nfvo.wait_for_vnfm("fancy-type", 60)
    nsr = await env.deployment.deploy(bundle(vnfd("solo", "ts", "fancy-type")))
    assert nsr.status == ACTIVE and env.vnfm.received("START", "solo")


@pytest.mark.parametrize("body,expected", [
    (b"{oops", "gvnfm orchestrator cannot handle this request: message is not valid JSON"),
    (b'{"action": "INSTANTIATE", "virtualNetworkFunctionRecord": {"name": "x"}}',
     "INSTANTIATE is not a request the NFVO answers on vnfm.nfvo.actions.reply"),
    (b'{"action": "GRANT_OPERATION"}', "GRANT_OPERATION carries no virtualNetworkFunctionRecord"),
    (b'{"action": "GRANT_OPERATION", "virtualNetworkFunctionRecord": {"name": "x", "parent_ns_id": "nope"}}',
     "VNFR x belongs to no network service of this orchestrator (parent_ns_id 'nope')"),
])
async def test_bad_requests_get_an_error_answer(env: Env, body: bytes, expected: str) -> None:
    answer = json.loads(await env.peer.rpc(env.nfvo.sync_queue, body, timeout=TIMEOUT))
    assert answer["action"] == "ERROR" and answer["message"].startswith(expected)
    assert env.vim.created == []


async def test_error_notice_marks_the_vnfr(env: Env) -> None:
    nsr = await env.deployment.deploy(bundle(vnfd("n", "tn", env.endpoint)))
    record = nsr.vnfrs["n"].vnfr
    notice = {"action": "ERROR", "nsrId": nsr.id, "virtualNetworkFunctionRecord": record,
              "exception": {"detailMessage": "something broke", "cause": {"detailMessage": "stderr text"}}}
    await env.peer.publish(env.nfvo.async_queue, json.dumps(notice).encode())
    await env.peer.publish(env.nfvo.async_queue, b"not json at all")
    await eventually(lambda: nsr.vnfrs["n"].status == ERROR)
    assert nsr.vnfrs["n"].status == ERROR and nsr.status == ERROR
    assert nsr.errors[-1].message == "something broke" and nsr.errors[-1].stderr == "stderr text"


# -- day 2 -------------------------------------------------------------------------------------------------

async def test_scale_out_and_in(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    app_record = nsr.vnfrs["app"].record()
    assert app_record is not None
    component = (app_record.vdu or [])[0].vnfc[1]  # type: ignore[index]
    new = await env.nfvo.scale_out(nsr, "app", component.id)
    assert new.hostname in env.vim.hosts and new.hostname in nsr.vnfrs["app"].hosts
    scale = env.vnfm.received("SCALE_OUT", "app")[0]
    # as the Java NFVO: a new VNFComponent (the chosen one's connection points, new ids) in the VDU,
    # without an instance until SCALING; the new VNFC instance is of that component
    added = scale["component"]
    assert added["id"] not in {c.id for c in (app_record.vdu or [])[0].vnfc or []}
    assert [cp["virtual_link_reference"] for cp in added["connection_point"]] == ["private"]
    assert added in scale["virtualNetworkFunctionRecord"]["vdu"][0]["vnfc"] and scale["vnfPackage"]["scripts"]
    assert new.vnfComponent is not None and new.vnfComponent.id == added["id"]
    assert scale["dependency"]["idType"] == {"db": "db"}           # app is a target: its full dependency
    scaled = next(a for a in env.vnfm.nfvo_answers if a["action"] == "SCALED")
    assert scaled["vnfr"]["lifecycle_event_history"][-1]["event"] == "SCALE_OUT"      # ScalingTask's
    assert set(scaled) == {"action", "vnfr"} and new.hostname in [
        i["hostname"] for vdu in scaled["vnfr"]["vdu"] for i in vdu["vnfc_instance"]]
    # web (target of app) is reconfigured with only the new VNFC, unfiltered
    modify = env.vnfm.received("MODIFY", "web")[-1]["vnfrd"]
    assert list(modify["vnfcParameters"]["app"]["parameters"]) == [new.id]
    assert modify["vnfcParameters"]["app"]["parameters"][new.id]["parameters"]["hostname"] == new.hostname
    assert nsr.vnfrs["app"].status == ACTIVE
    assert len((nsr.vnfrs["app"].record().vdu or [])[0].vnfc_instance or []) == 3  # type: ignore[union-attr]
    # scale_in_out is 3: a fourth is refused before anything is sent
    with pytest.raises(Exception, match="already has 3 VNFC instances"):
        await env.nfvo.scale_out(nsr, "app", component.id)
    # scale in: SCALE_IN to the target (web), a command of its own (answered `null`), host removed.
    # As the Java NFVO (removeVnfcDependency is @Async) SCALE_IN is sent in the background: held here
    # until scale_in has returned, the latest it may go, so the test never depends on when it is sent
    gate = asyncio.Event()
    request = env.nfvo.transport.request

    async def late_scale_in(routing_key: str, body: bytes, **kw: Any) -> bytes:
        if json.loads(body)["action"] == "SCALE_IN":
            await gate.wait()
        return await request(routing_key, body, **kw)

    monkeypatch.setattr(env.nfvo.transport, "request", late_scale_in)
    before, log_before = len(env.vnfm.messages), len(env.vnfm.log)
    await env.nfvo.scale_in(nsr, "app", new.hostname or "")
    assert env.vnfm.messages[before:] == []         # returned without waiting for the SCALE_IN
    gate.set()
    await eventually(lambda: ("reply", "null", "web") in env.vnfm.log[log_before:])   # SCALE_IN answered
    await env.nfvo.logs(nsr, "web", nsr.vnfrs["web"].hosts[0])          # a command sent after it
    sent = [(m["action"], vnfr_name_of(m)) for m in env.vnfm.messages[before:]]
    assert sent == [("SCALE_IN", "web"), ("LOG_REQUEST", "web")], sent   # nothing for app or the removed VNFC
    scale_in = env.vnfm.received("SCALE_IN", "web")[0]
    assert scale_in["vnfcInstance"]["hostname"] == new.hostname
    assert new.hostname not in env.vim.hosts and new.hostname not in nsr.vnfrs["app"].hosts
    assert len((nsr.vnfrs["app"].record().vdu or [])[0].vnfc_instance or []) == 2  # type: ignore[union-attr]
    db_host = nsr.vnfrs["db"].hosts[0]
    with pytest.raises(Exception, match=r"is the last VNFC instance"):
        await env.nfvo.scale_in(nsr, "db", db_host)


async def test_scale_out_standby_is_not_given_to_targets(env: Env) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    modifies = len(env.vnfm.received("MODIFY", "web"))
    new = await env.nfvo.scale_out(nsr, "app", None, mode="standby")
    assert new.state == "STANDBY"
    assert len(env.vnfm.received("MODIFY", "web")) == modifies
    assert env.vnfm.received("SCALE_OUT", "app")[0]["mode"] == "standby"


async def test_restart_rebuilds_the_hosts_and_instantiates_with_the_vnfr(env: Env) -> None:
    """As the Java NFVO's restartVnfr: the VNFR's hosts rebuilt (same names and addresses, the new image),
    INSTANTIATE carrying the VNFR (the VNFM allocates nothing), then MODIFY (app is a target) and START."""
    nsr = await env.deployment.deploy(chain(env.endpoint))
    hosts = list(nsr.vnfrs["app"].hosts)
    before = nsr.vnfrs["app"].record()
    assert before is not None
    grants, allocations = (len([a for a in env.vnfm.nfvo_answers if a["action"] == x])
                           for x in ("GRANT_OPERATION", "ALLOCATE_RESOURCES"))
    env.vnfm.log.clear()
    await env.deployment.restart(nsr, "app", "centos")
    assert sorted(env.vim.rebuilt) == sorted((h, "centos") for h in hosts)
    assert sorted(env.vim.hosts) == sorted(h for v in nsr.vnfrs.values() for h in v.hosts)   # no new host
    (inst,) = env.vnfm.received("INSTANTIATE", "app")[1:]
    assert inst["vnfr"]["id"] == before.id and inst["vnfd"]["name"] == "app"
    assert [i["hostname"] for i in inst["vnfr"]["vdu"][0]["vnfc_instance"]] == hosts
    assert inst["vnfr"]["vdu"][0]["vm_image"] == ["centos"]
    assert [a for a in env.vnfm.nfvo_answers if a["action"] == "GRANT_OPERATION"][grants:] == []
    assert [a for a in env.vnfm.nfvo_answers if a["action"] == "ALLOCATE_RESOURCES"][allocations:] == []
    assert [m[:2] for m in env.vnfm.log if m[2] == "app"] == [
        ("recv", "INSTANTIATE"), ("reply", "INSTANTIATE"), ("recv", "MODIFY"), ("reply", "MODIFY"),
        ("recv", "START"), ("reply", "START")]
    assert nsr.vnfrs["app"].status == ACTIVE and nsr.status == ACTIVE
    # a host that cannot be rebuilt: the VNFR is in ERROR, nothing is sent
    env.vim._hosts.pop(nsr.vnfrs["web"].hosts[0])
    sent = len(env.vnfm.messages)
    with pytest.raises(OrchestratorError, match="rebuilding the hosts of VNFR web failed"):
        await env.deployment.restart(nsr, "web")
    assert len(env.vnfm.messages) == sent and nsr.vnfrs["web"].status == ERROR


async def test_day2_messages(env: Env) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    host = nsr.vnfrs["web"].hosts[0]
    await env.nfvo.stop_vnf(nsr, "web")
    assert nsr.vnfrs["web"].status == "INACTIVE"
    await env.nfvo.start_vnf(nsr, "web", host)
    start = env.vnfm.received("START", "web")[-1]
    assert start["vnfcInstance"]["hostname"] == host
    await env.nfvo.heal(nsr, "web", host, "restart")
    heal = env.vnfm.received("HEAL", "web")[0]
    assert heal["cause"] == "restart" and heal["vnfcInstance"]["hostname"] == host
    await env.nfvo.update_script(nsr, "web", "install.sh", "echo v2\n")
    update = env.vnfm.received("UPDATE", "web")[0]
    assert update["script"]["name"] == "install.sh"
    assert bytes(b & 0xFF for b in update["script"]["payload"]) == b"echo v2\n"
    assert [s.payload for s in nsr.bundle.packages["web"].scripts if s.name == "install.sh"] == [b"echo v2\n"]
    result = await env.nfvo.execute(nsr, "web", "uptime")
    execute = env.vnfm.received("EXECUTE", "web")[0]
    assert execute["script"]["name"] == "ob_runtime_script" and result["action"] == "EXECUTE" and result["ok"]
    logs = await env.nfvo.logs(nsr, "web", host)
    assert (logs["outputLog"], logs["errorLog"]) == ([f"log of {host}"], [])
    assert env.vnfm.received("LOG_REQUEST")[0] == {"action": "LOG_REQUEST", "vnfrName": "web", "hostname": host}
    with pytest.raises(Exception, match="has no VNFC instance"):
        await env.nfvo.logs(nsr, "web", "nobody-1234567")
    env.vnfm.fail[("HEAL", "web")] = "heal.sh failed"
    with pytest.raises(VnfmError, match="VNFR web: HEAL failed"):
        await env.nfvo.heal(nsr, "web", host, "restart")
    assert nsr.vnfrs["web"].status == ERROR


async def test_progress_events_and_hook(env: Env) -> None:
    events = env.nfvo.events.queue()
    nsr = await env.deployment.deploy(bundle(vnfd("p", "tp", env.endpoint)))
    seen = []
    while not events.empty():
        seen.append(events.get_nowait())
    actions = [(e.vnfr, e.action, e.state) for e in seen]
    assert ("p", "INSTANTIATE", INITIALIZED) in actions and ("p", "START", ACTIVE) in actions
    assert (None, "DEPLOY", ACTIVE) == actions[-1]
    host = nsr.vnfrs["p"].hosts[0]
    env.nfvo.on_vnfm_progress({"vnfr": "p", "hostname": host, "event": "START", "script": "install.sh",
                               "action": "EXECUTE", "status": "running"})
    assert nsr.vnfrs["p"].progress[host].script == "install.sh"
    latest = events.get_nowait()
    assert (latest.hostname, latest.script, latest.state) == (host, "install.sh", "running")
    assert nsr.report()["vnfrs"][0]["vnfc"][0]["progress"]["event"] == "START"


# -- one operation at a time per VNFR ---------------------------------------------------------------------

def instances(nsr: NetworkServiceRecord, name: str) -> list[str]:
    record = nsr.vnfrs[name].record()
    assert record is not None
    return sorted(i.hostname or "" for i in record.vnfc_instances())


def no_overlap(log: list[tuple[str, str, str]], action: str, vnfr: str, answer: str | None = None) -> bool:
    """Every ``action`` to ``vnfr`` was answered (with ``answer``) before the next one arrived."""
    open_ = 0
    for kind, a, name in log:
        if name == vnfr and (kind, a) in (("recv", action), ("reply", answer or action)):
            open_ += 1 if kind == "recv" else -1
            if open_ > 1:
                return False
    return True


async def test_concurrent_scale_outs_wait_their_turn(env: Env) -> None:
    nsr = await env.deployment.deploy(bundle(
        vnfd("app", "app", env.endpoint), vnfd("web", "web", env.endpoint, requires={"app": ["private"]})))
    env.vnfm.delay[("SCALE_OUT", "app")] = 0.2
    env.vnfm.delay[("MODIFY", "web")] = 0.1
    created = len(env.vim.created)
    # room for two (1 of scale_in_out 3): both run, one after the other
    first, second = await asyncio.gather(env.nfvo.scale_out(nsr, "app"), env.nfvo.scale_out(nsr, "app"))
    assert len(env.vim.created) == created + 2
    assert instances(nsr, "app") == sorted(nsr.vnfrs["app"].hosts) == sorted(
        h for h in env.vim.hosts if h.startswith("app-"))
    assert {first.hostname, second.hostname} <= set(nsr.vnfrs["app"].hosts)
    assert no_overlap(env.vnfm.log, "SCALE_OUT", "app", "SCALED") and no_overlap(env.vnfm.log, "MODIFY", "web")
    # full now: of two more at once, neither passes the scale_in_out check, nothing is sent
    results = await asyncio.gather(env.nfvo.scale_out(nsr, "app"), env.nfvo.scale_out(nsr, "app"),
                                   return_exceptions=True)
    assert all(isinstance(r, OrchestratorError) and "reached its scale_in_out" in str(r) for r in results), results
    assert len(env.vim.created) == created + 2 and len(env.vnfm.received("SCALE_OUT")) == 2
    assert [nsr.vnfrs[n].status for n in ("app", "web")] == [ACTIVE, ACTIVE] and nsr.status == ACTIVE


@dataclass
class Api:
    url: str
    state: Path
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def cli(self, *args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(CliRunner().invoke, cli_app, [*args, "--state-dir", str(self.state)])
        return result.exit_code, result.output


@pytest.fixture
async def api(env: Env, tmp_path: Path) -> AsyncIterator[Api]:
    runtime = SimpleNamespace(nfvo=env.nfvo, deployment=env.deployment, state_dir=tmp_path,
                              report=lambda nsr: asyncio.sleep(0, nsr.report()))
    server = ApiServer(runtime)
    await server.start()
    try:
        yield Api(server.url, tmp_path, server.token)
    finally:
        await server.stop()


async def test_api_refuses_a_request_on_a_busy_vnfr_with_409(env: Env, api: Api) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    release = asyncio.Event()           # the VNFM answers the SCALE_OUT when the test says so
    env.vnfm.hooks[("SCALE_OUT", "app")] = release.wait
    path = f"{api.url}/api/v1/ns-records/current/vnfrecords"
    async with httpx.AsyncClient(timeout=TIMEOUT, headers=api.headers) as client:
        first = asyncio.create_task(client.post(f"{path}/app/scale-out", json={}))
        while not env.vnfm.received("SCALE_OUT"):
            await asyncio.sleep(0.01)
        second = await client.post(f"{path}/app/scale-out", json={})
        web = await client.post(f"{path}/web/stop", json={})     # web is reconfigured by the scale-out
        assert not first.done()
        release.set()
        assert (await first).status_code == 200
    assert second.status_code == 409 and "VNFR app is busy with SCALE_OUT" in second.json()["detail"]
    assert web.status_code == 409 and "VNFR web is busy with SCALE_OUT of VNFR app" in web.json()["detail"]
    assert len(env.vnfm.received("SCALE_OUT")) == 1 and not env.vnfm.received("STOP")
    assert len(nsr.vnfrs["app"].hosts) == 3 and instances(nsr, "app") == sorted(nsr.vnfrs["app"].hosts)
    assert nsr.status == ACTIVE


# -- refused requests change nothing -----------------------------------------------------------------------

async def test_requests_that_cannot_succeed_are_refused_before_sending(env: Env, api: Api) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    host = nsr.vnfrs["web"].hosts[0]
    sent = len(env.vnfm.messages)
    with pytest.raises(Conflict, match="is ACTIVE, not STANDBY"):
        await env.nfvo.heal(nsr, "web", host, "switchToStandby")
    with pytest.raises(Conflict, match="is ACTIVE, not ERROR"):
        await env.nfvo.resume(nsr, "web")
    code, out = await api.cli("heal", "web", host, "--cause", "switchToStandby")
    # one line on stderr, exit 1 (the VNF is not in a state for it), no HTTP status code (the host's
    # name is left out of that check: its 7 random digits may hold "409")
    assert code == 1 and out.startswith("error: ") and "not STANDBY" in out, out
    assert "409" not in out.replace(host, ""), out
    code, out = await api.cli("heal", "nope", host, "--cause", "restart")
    assert code == 2 and "has no VNFR 'nope'" in out and "404" not in out.replace(host, ""), out
    assert len(env.vnfm.messages) == sent
    assert nsr.vnfrs["web"].status == ACTIVE and nsr.status == ACTIVE and not nsr.errors


async def test_a_request_the_vnfm_refuses_keeps_the_state(env: Env, api: Api) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    host = nsr.vnfrs["web"].hosts[0]
    env.vnfm.refuse[("HEAL", "web")] = "VNFC web-1 is not in STANDBY (state ACTIVE)"
    with pytest.raises(VnfmRefused, match="the VNFM refused HEAL: VNFC web-1 is not in STANDBY"):
        await env.nfvo.heal(nsr, "web", host, "restart")
    assert nsr.vnfrs["web"].status == ACTIVE and nsr.status == ACTIVE and not nsr.errors
    assert nsr.vnfrs["web"].history[-1].result == "refused" and nsr.vnfrs["web"].action is None
    code, out = await api.cli("heal", "web", host, "--cause", "restart")
    assert code == 1 and "nothing was changed" in out and "409" not in out.replace(host, ""), out
    # a SCALING the orchestrator refuses (the VIM filled up meanwhile): the VNFM gives up, app stays ACTIVE
    async def fill_the_vim() -> None:
        env.vim.capacity = len(env.vim.hosts)
    env.vnfm.hooks[("SCALE_OUT", "app")] = fill_the_vim
    with pytest.raises(VnfmRefused, match="refused SCALE_OUT: Not enough resources"):
        await env.nfvo.scale_out(nsr, "app")
    assert nsr.vnfrs["app"].status == ACTIVE and len(nsr.vnfrs["app"].hosts) == 2 and nsr.status == ACTIVE
    # a script that fails is a failure: ERROR, resumable
    env.vnfm.refuse.clear()
    env.vnfm.fail[("HEAL", "web")] = "heal.sh failed"
    with pytest.raises(VnfmError, match="VNFR web: HEAL failed"):
        await env.nfvo.heal(nsr, "web", host, "restart")
    assert nsr.vnfrs["web"].status == ERROR


@pytest.mark.parametrize("script_results", [False, True], ids=["error-only", "script-results"])
async def test_failing_execute_reports_per_vnfc_and_keeps_the_state(env: Env, api: Api, tmp_path: Path,
                                                                    script_results: bool) -> None:
    nsr = await env.deployment.deploy(chain(env.endpoint))
    env.vnfm.script_results = script_results
    hosts = nsr.vnfrs["app"].hosts
    script = tmp_path / "adhoc.sh"
    script.write_text("echo hi\n")
    code, out = await api.cli("execute", "app", str(script))
    assert code == 0, out
    env.vnfm.fail[("EXECUTE", "app")] = "cannot do it"
    result = await env.nfvo.execute(nsr, "app", "exit 2")
    assert not result["ok"] and "cannot do it" in (result["results"][0]["err"] or "")
    # gvnfm's VNFM names every VNFC; an ERROR answer without results names the first failed one
    assert result["failed"] == (hosts if script_results else hosts[:1])
    code, out = await api.cli("execute", "app", str(script))
    assert code == 1 and f"failed on {len(result['failed'])} VNFC(s): {', '.join(result['failed'])}" in out, out
    assert nsr.vnfrs["app"].status == ACTIVE and nsr.status == ACTIVE and not nsr.errors
    record = nsr.vnfrs["app"].record()
    assert record is not None and all(i.state == "ACTIVE" for i in record.vnfc_instances())


# -- update, logs --follow -----------------------------------------------------------------------------------

async def test_update_and_heal_without_scripts_behave_alike(env: Env, api: Api) -> None:
    """A VNF with no scripts for the event: the operation is sent, nothing runs, exit 0, both say so."""
    nsr = await env.deployment.deploy(chain(env.endpoint))
    host = nsr.vnfrs["web"].hosts[0]
    code, out = await api.cli("update", "web")
    assert code == 0 and "no UPDATE scripts: none ran" in out, out
    code, out = await api.cli("heal", "web", host, "--cause", "restart")
    assert code == 0 and "no HEAL scripts: none ran" in out, out
    assert env.vnfm.received("UPDATE", "web") and env.vnfm.received("HEAL", "web")
    assert nsr.vnfrs["web"].status == ACTIVE and nsr.status == ACTIVE


async def test_api_needs_the_runs_token_but_for_healthz_and_the_docs(env: Env, api: Api) -> None:
    info = json.loads((api.state / "api.json").read_text())
    assert info == {"url": api.url, "token": api.token} and len(api.token) >= 32
    assert (api.state / "api.json").stat().st_mode & 0o777 == 0o600
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        assert (await client.get(f"{api.url}/healthz")).json() == {"status": "ok"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": api.token}):
            r = await client.get(f"{api.url}/api/v1/ns-records", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
            r = await client.post(f"{api.url}/api/v1/ns-records/current/vnfrecords/web/execute",
                                  json={"script": "touch /tmp/owned"}, headers=headers)
            assert r.status_code == 401
        assert (await client.get(f"{api.url}/api/v1/ns-records", headers=api.headers)).status_code == 200
        # the OpenAPI page works offline: its assets come from this server, nothing from a CDN
        page = (await client.get(f"{api.url}/docs")).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
        for asset in assets:
            assert (await client.get(api.url + asset)).status_code == 200, asset
        assert "bearer" in json.dumps((await client.get(f"{api.url}/openapi.json")).json()["components"]).lower()
    assert not env.vnfm.received("EXECUTE")


async def test_update_runs_the_update_event(env: Env, api: Api) -> None:
    nsr = await env.deployment.deploy(bundle(vnfd("u", "u", env.endpoint, events=("UPDATE",))))
    code, out = await api.cli("update", "u")
    assert code == 0 and "u: UPDATE scripts executed" in out, out
    update = env.vnfm.received("UPDATE", "u")[-1]
    assert update.get("script") is None and update["vnfr"]["name"] == "u"
    assert nsr.vnfrs["u"].status == ACTIVE


async def test_restart_from_the_command_line(env: Env, api: Api) -> None:
    nsr = await env.deployment.deploy(bundle(vnfd("r", "r", env.endpoint, vnfc=2)))
    hosts = nsr.vnfrs["r"].hosts
    code, out = await api.cli("restart", "r", "--image", "bare")
    assert code == 0 and f"r: ACTIVE ({', '.join(hosts)} rebuilt)" in out, out
    assert env.vnfm.received("INSTANTIATE", "r")[-1]["vnfr"]["vdu"][0]["vm_image"] == ["bare"]
    sent = len(env.vnfm.messages)
    code, out = await api.cli("restart", "r", "--image", "unknown-image")
    assert code == 1 and "image 'unknown-image' does not exist" in out, out
    assert len(env.vnfm.messages) == sent
    assert nsr.vnfrs["r"].status == ACTIVE


async def test_logs_follow_asks_the_vnfm_only_when_the_log_may_have_changed(env: Env, api: Api,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    nsr = await env.deployment.deploy(bundle(vnfd("f", "f", env.endpoint)))
    env.nfvo.log_cache.settle = 0.05
    host = nsr.vnfrs["f"].hosts[0]
    env.vnfm.log_lines[host] = ["one"]
    # the follow's --timeout runs out when the test says so (its clock stands still until then), and the
    # test counts its polls: every step waits for polls, not for time
    over = threading.Event()
    monkeypatch.setattr(day2_cmd, "time", SimpleNamespace(monotonic=lambda: math.inf if over.is_set() else 0.0,
                                                          sleep=time.sleep))
    polls: list[int] = []
    real_logs = env.nfvo.logs

    async def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        result = await real_logs(*args, **kwargs)
        polls.append(result["version"])
        return result

    monkeypatch.setattr(env.nfvo, "logs", counted)

    async def polled(more: int) -> None:
        target = len(polls) + more
        async with asyncio.timeout(60):
            while len(polls) < target:
                await asyncio.sleep(0.01)

    follow = asyncio.create_task(api.cli("logs", "f", host, "--follow", "--interval", "0.02", "--timeout", "1"))
    await polled(15)
    env.vnfm.log_lines[host] = ["one", "two"]      # the VNFM has more, but nothing told the orchestrator
    await polled(8)
    asked = len(env.vnfm.received("LOG_REQUEST"))
    await env.nfvo.heal(nsr, "f", host, "restart")  # an answered action: the log may have changed
    await polled(15)
    over.set()
    code, out = await follow
    assert code == 0, out
    assert out.splitlines() == ["one", "two"]
    # ~50 polls: a few LOG_REQUESTs until the log settled, one after the HEAL (and its settling)
    assert asked <= 3 and len(env.vnfm.received("LOG_REQUEST")) <= asked + 2, len(env.vnfm.received("LOG_REQUEST"))
    assert not any(h.action == "LOG_REQUEST" for h in nsr.vnfrs["f"].history)   # a query, no operation
    env.nfvo.on_vnfm_progress({"hostname": host, "event": "HEAL", "script": "x", "status": "done"})
    version = env.nfvo.log_version(host)
    logs = await env.nfvo.logs(nsr, "f", host, since=version - 1)
    assert not logs["cached"] and logs["version"] == version
