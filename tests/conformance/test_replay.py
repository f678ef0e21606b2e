"""The Java NFVO's messages, replayed against a real `gvnfm vnfm` process over RabbitMQ.

``transcripts/*.json`` hold, in order, what the Open Baton NFVO 6.0.1 sends a VNFM for each action,
written from its Java classes (field names and Gson shapes: ids and ``hbVersion`` everywhere, script
payloads as signed bytes, null fields left out). Each is sent as the NFVO's ``RabbitVnfmSender`` does:
to ``openbaton-exchange`` with the endpoint as routing key, ``text/plain``, on a channel consuming
RabbitMQ direct reply-to, with ``reply_to`` and **no** ``correlation_id``, one request at a time on
that channel. The NFVO's side of the VNFM's own requests (GRANT_OPERATION, ALLOCATE_RESOURCES, SCALING)
is ``tests.support.fakes.FakeNfvo`` (Java shapes too), and the hosts are real gvnfm EMS agents whose
scripts write down the environment they saw.

A transcript: ``send`` (``$...`` placeholders are filled from earlier answers), ``answer`` (its action
and exactly its keys, or ``{"body": null}``), ``scripts`` (runs per script during this step), ``env``
(what every such run saw), ``nfvo_requests`` (what the VNFM asked the NFVO meanwhile), ``save_as``
(the name the answer's VNFR is kept under), ``failed_step`` (what an ERROR's ``failedStep`` says).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from gvnfm.ems.agent import EmsAgent
from gvnfm.transport.amqp import AmqpTransport
from tests.support.fakes import FakeNfvo
from tests.support.hosts import ems_config_from_userdata
from tests.support.services import unique
from tests.support.vnfm_process import VnfmProcess

pytestmark = pytest.mark.rabbitmq

TRANSCRIPTS = [(p.name, json.loads(p.read_text()))
               for p in sorted((Path(__file__).parent / "transcripts").glob("*.json"))]


class JavaNfvoSender:
    """``RabbitVnfmSender.sendCommand``: convertSendAndReceive on openbaton-exchange, direct reply-to."""

    def __init__(self, url: str, endpoint: str) -> None:
        self.url, self.endpoint = url, endpoint
        self.answers: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()

    async def open(self) -> None:
        self.conn = await aio_pika.connect(self.url)
        self.channel = await self.conn.channel()
        self.exchange = await self.channel.get_exchange("openbaton-exchange")
        queue = await self.channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
        await queue.consume(self.answers.put, no_ack=True)

    async def send(self, body: bytes) -> aio_pika.abc.AbstractIncomingMessage:
        await self.exchange.publish(aio_pika.Message(body, content_type="text/plain", content_encoding="UTF-8",
                                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                                     reply_to="amq.rabbitmq.reply-to"), self.endpoint)
        return await asyncio.wait_for(self.answers.get(), 300)     # the NFVO waits forever; a hang guard

    async def close(self) -> None:
        await self.conn.close()


class Replay:
    def __init__(self, url: str, endpoint: str, outdir: Path, tmp: Path) -> None:
        self.url, self.endpoint, self.outdir, self.tmp = url, endpoint, outdir, tmp
        self.vnfrs: dict[str, dict[str, Any]] = {}
        self.packages: dict[str, Any] = {}
        self.ids: dict[str, str] = {"$project": str(uuid.uuid4()), "$nsr": str(uuid.uuid4())}
        self.agents: list[EmsAgent] = []

    async def add_host(self, hostname: str, userdata: str) -> None:
        assert f"export ENDPOINT={self.endpoint}" in userdata and "Hostname=" in userdata
        # configured as the VM's user-data configures it (its own broker user when the VNFM made one)
        agent = EmsAgent(ems_config_from_userdata(userdata, hostname, self.url,
                                                  root=str(self.tmp / "hosts" / hostname), script_timeout=60))
        await agent.start()
        self.agents.append(agent)

    def instances(self, name: str) -> list[dict[str, Any]]:
        return [i for vdu in self.vnfrs[name]["vdu"] for i in vdu.get("vnfc_instance") or []]

    def fill(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if not isinstance(value, str) or not value.startswith("$"):
            return value
        if value in self.ids:
            return self.ids[value]
        kind, _, rest = value[1:].partition(":")
        if kind == "uuid":
            return self.ids.setdefault(value, str(uuid.uuid5(uuid.NAMESPACE_URL, self.ids["$nsr"] + rest)))
        if kind == "endpoint":
            return self.endpoint
        if kind == "outdir":
            return str(self.outdir)
        if kind == "vnfr":
            return self.vnfrs[rest]
        if kind == "package":
            return self.packages[rest]
        name, _, index = rest.partition(":")
        inst = self.instances(name)[int(index)]
        return {"vnfc": inst, "vnfc_id": inst["id"], "hostname": inst["hostname"],
                "ip": inst["ips"][0]["ip"]}[kind]

    def runs(self, skip: set[str] = frozenset()) -> dict[str, list[dict[str, str]]]:  # type: ignore[assignment]
        """script name -> the environment of each run recorded (one file per run), except ``skip``."""
        found: dict[str, list[dict[str, str]]] = {}
        for path in sorted(self.outdir.iterdir()):
            if path.name in skip or ".sh." not in path.name:
                continue
            script = path.name.split(".sh.", 1)[0] + ".sh"
            env = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
            found.setdefault(script, []).append(env)
        return found


async def test_the_java_nfvo_transcripts(amqp_vhost: str, tmp_path: Path) -> None:
    assert len(TRANSCRIPTS) >= 18
    endpoint = unique("conformance")
    outdir = tmp_path / "out"
    outdir.mkdir()
    replay = Replay(amqp_vhost, endpoint, outdir, tmp_path)
    nfvo_t = AmqpTransport(amqp_vhost)
    await nfvo_t.connect()
    nfvo = FakeNfvo(nfvo_t, host_factory=replay.add_host)
    await nfvo.start()
    sender = JavaNfvoSender(amqp_vhost, endpoint)
    # the transcripts are about the NFVO's shapes: the EMSs share the reference's credentials (the broker
    # user per VM, a gvnfm extension, is tested in test_broker_users/test_vnfm_host_users and e2e)
    vnfm = VnfmProcess(broker=amqp_vhost, endpoint=endpoint, state_dir=tmp_path / "vnfm",
                       extra=["--ems-start-timeout", "60", "--script-timeout", "60"],
                       env={"GVNFM_EMS_HOST_USERS": "false"})
    try:
        await vnfm.start()
        await vnfm.wait_for_log("event=vnfm_started", timeout=60)
        await sender.open()
        for name, transcript in TRANSCRIPTS:
            await play(name, transcript, replay, sender, nfvo, vnfm)
    finally:
        code = await vnfm.terminate()
        await sender.close()
        for agent in replay.agents:
            await agent.stop()
        await nfvo_t.close()
    assert code == 0, vnfm.log()[-3000:]


async def play(name: str, t: dict[str, Any], replay: Replay, sender: JavaNfvoSender, nfvo: FakeNfvo,
               vnfm: VnfmProcess) -> None:
    where = f"{name} ({t['title']})"
    if "create_file" in t.get("before", {}):
        (replay.outdir / t["before"]["create_file"]).touch()
    before_runs = {p.name for p in replay.outdir.iterdir()}
    before_requests = len(nfvo.requests)
    send = t["send"]
    if "raw" in send:
        body = send["raw"].encode()
    else:
        message = replay.fill(send)
        if message.get("action") == "INSTANTIATE" and "vnfPackage" in message:
            replay.packages.setdefault(message["vnfd"]["name"], message["vnfPackage"])
        body = json.dumps(message).encode()
    answer = await sender.send(body)
    assert answer.correlation_id is None, where       # none came, none goes back
    expected = t["answer"]
    if "body" in expected:
        assert answer.body == b"null", (where, answer.body[:500])
    else:
        got = json.loads(answer.body)
        assert got["action"] == expected["action"], (where, got.get("exception"), vnfm.log()[-2000:])
        assert sorted(got) == sorted(expected["keys"]), (where, sorted(got))
        if t.get("save_as"):            # an ERROR answer carries the VNFR too (what RESUME is sent with)
            replay.vnfrs[t["save_as"]] = got["virtualNetworkFunctionRecord"]
        checks = t.get("vnfr_checks") or {}
        vnfr = got.get("virtualNetworkFunctionRecord") or {}
        if "requires" in checks:
            assert vnfr["requires"] == checks["requires"], where
        if "virtual_link_extId" in checks:
            assert [v.get("extId") for v in vnfr["virtual_link"]] == [checks["virtual_link_extId"]], where
            assert all("exId" not in v for v in vnfr["virtual_link"]), where
        if "script_results" in t:           # what an ad-hoc script printed on each VNFC
            results = got["scriptResults"]
            spec = t["script_results"]
            assert len(results) == spec["count"] and all(r["status"] == 0 for r in results), (where, results)
            hosts = {i["hostname"] for i in replay.instances("server")}
            assert {r["hostname"] for r in results} == hosts, where
            for r in results:
                assert f"{spec['output_contains']}{r['hostname']} " in r["output"], (where, r)
                assert spec["output_has_utf8"] in r["output"], (where, r)    # the signed bytes decoded
        if "failed_step" in t:              # gvnfm's failedStep: the failed command, typed
            step = got["failedStep"]
            assert {k: step[k] for k in t["failed_step"]} == t["failed_step"], (where, step)
            assert step["hostname"] in {i["hostname"] for i in replay.instances(t["save_as"])}, (where, step)
            assert got["exception"]["detailMessage"].startswith(f"EMS ({step['hostname']}) had the following error: "
                                                                f"script '{step['script']}' of event "), where
        if "lifecycle_event_history" in checks:
            assert vnfr["lifecycle_event_history"] == checks["lifecycle_event_history"], where
    if "nfvo_requests" in t:
        assert [r["action"] for r in nfvo.requests[before_requests:]] == t["nfvo_requests"], where
    new = replay.runs(skip=before_runs)
    assert {k: len(v) for k, v in new.items()} == t["scripts"], (where, {k: len(v) for k, v in new.items()})
    for script, env in replay.fill(t["env"]).items():
        for seen in new[script]:
            assert {k: seen.get(k) for k in env} == env, (where, script, seen)
