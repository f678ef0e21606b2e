"""A `gvnfm ems` process driven over a real RabbitMQ the way the reference (Spring) VNFM does it.

The shared broker (`amqp_url`) for the protocol; a private node (`private_rabbit`) for the restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage

from tests.support.broker_admin import BrokerAdmin
from tests.support.rabbit import PrivateRabbit, private_rabbit  # noqa: F401  (fixture)
from tests.support.services import unique

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class ReferenceVnfm:
    """Declares ``openbaton-exchange`` and ``ems.<type>.register``, consumes registrations and sends
    commands with ``RabbitTemplate.convertSendAndReceive`` semantics: text/plain JSON to routing key
    ``vnfm.<hostname>.actions`` on the topic exchange, answer expected through direct reply-to."""

    def __init__(self, url: str, type_: str, *, register_auto_delete: bool = True) -> None:
        self.url = url
        self.type = type_
        self.register_auto_delete = register_auto_delete
        self.registrations: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[AbstractIncomingMessage]] = {}
        self.conn: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.exchange: AbstractExchange | None = None

    async def connect(self) -> None:
        self.conn = await aio_pika.connect(self.url)
        self.channel = await self.conn.channel()
        self.exchange = await self.channel.declare_exchange("openbaton-exchange", aio_pika.ExchangeType.TOPIC,
                                                            durable=True)
        reg = await self.channel.declare_queue(f"ems.{self.type}.register", durable=True,
                                               auto_delete=self.register_auto_delete)
        await reg.consume(self._on_registration, no_ack=True)
        reply = await self.channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await reply.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
        self.conn = None

    async def _on_registration(self, message: AbstractIncomingMessage) -> None:
        await self.registrations.put(message)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self._pending.pop(message.correlation_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(message)

    async def registration(self, timeout: float = 30) -> dict[str, Any]:
        message = await asyncio.wait_for(self.registrations.get(), timeout)
        assert message.content_type == "text/plain"
        data: dict[str, Any] = json.loads(message.body)
        return data

    async def call_raw(self, hostname: str, body: bytes, *, cid: str, timeout: float = 30) -> AbstractIncomingMessage:
        assert self.exchange is not None
        fut: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        await self.exchange.publish(
            aio_pika.Message(body, content_type="text/plain", reply_to=DIRECT_REPLY_TO, correlation_id=cid),
            routing_key=f"vnfm.{hostname}.actions")
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(cid, None)

    async def call(self, hostname: str, command: dict[str, Any] | bytes, *, cid: str,
                   timeout: float = 30) -> dict[str, Any]:
        body = command if isinstance(command, bytes) else json.dumps(command).encode()
        message = await self.call_raw(hostname, body, cid=cid, timeout=timeout)
        assert message.correlation_id == cid
        assert message.content_type == "text/plain"
        data: dict[str, Any] = json.loads(message.body)
        assert set(data) == {"output", "err", "status"}
        return data


def write_properties(path: Path, *, url_host: str, port: int, user: str, password: str, hostname: str,
                     type_: str, extra: dict[str, str] | None = None) -> Path:
    """The file the reference user-data writes (plus gvnfm keys in ``extra``)."""
    lines = ["[ems]", f"broker_ip={url_host}", f"broker_port={port}", f"username={user}", f"password={password}",
             "exchange=openbaton-exchange", "heartbeat=60", "autodelete=true", f"type={type_}",
             f"hostname={hostname}"]
    lines += [f"{k}={v}" for k, v in (extra or {}).items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@contextlib.asynccontextmanager
async def ems_process(args: list[str], log_file: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m gvnfm.ems args...``; stopped with SIGTERM (then killed) at the end."""
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gvnfm.ems", *args,
                                                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                                                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
    finally:
        os.close(out)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def broker_parts(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {"url_host": parts.hostname or "127.0.0.1", "port": parts.port or 5672,
            "user": unquote(parts.username or "guest"), "password": unquote(parts.password or "guest")}


def ems_args(tmp_path: Path, config: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--root", str(tmp_path / "host"), "--log-dir", str(tmp_path / "log"), *extra]


def make_repo(base: Path) -> Path:
    import subprocess

    repo = base / "repo"
    repo.mkdir()
    (repo / "hello.sh").write_text("echo hello-from-git\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(repo)]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "scripts"]):
        subprocess.run([*git, *cmd], check=True)
    return repo


@pytest.mark.rabbitmq
async def test_reference_vnfm_drives_the_ems(amqp_url: str, tmp_path: Path) -> None:
    type_, hostname = unique("emsit"), unique("iperf-server") + "-4711"
    config = write_properties(tmp_path / "ems.properties", hostname=hostname, type_=type_, **broker_parts(amqp_url))
    repo = make_repo(tmp_path)
    vnfm = ReferenceVnfm(amqp_url, type_)
    await vnfm.connect()
    log_file = tmp_path / "ems.out"
    try:
        async with ems_process(ems_args(tmp_path, config), log_file) as proc:
            assert await vnfm.registration() == {"hostname": hostname}
            scripts = tmp_path / "host" / "scripts"
            reply = await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64('echo "$1 $port $SECRET"\n'),
                                               "name": "install.sh", "script-path": "/opt/openbaton/scripts"},
                                    cid="c1")
            assert reply == {"output": "['install.sh']", "err": "", "status": 0}
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "install.sh arg1",
                                               "env": {"port": "5001", "SECRET": "tok-98765"}}, cid="c2")
            assert reply == {"output": "arg1 5001 tok-98765\n", "err": "", "status": 0}
            reply = await vnfm.call(hostname, {"action": "SCRIPTS_UPDATE", "payload": b64("echo updated"),
                                               "name": "install.sh", "script-path": "/opt/openbaton/scripts"},
                                    cid="c3")
            assert reply["status"] == 0 and (scripts / "install.sh").read_text() == "echo updated"
            dep = {"parameters": {"server": {"parameters": {"private": "10.0.0.1"}}}, "vnfcParameters": {}}
            reply = await vnfm.call(hostname, {"action": "SAVE_VNFR_DEPENDENCY", "payload": json.dumps(dep, indent=2),
                                               "script-path": "/opt/openbaton/scripts"}, cid="c4")
            assert reply["status"] == 0 and "ob_parameters.sh" in reply["output"]
            assert "export OB_server_VNF_private=10.0.0.1" in (scripts / "ob_parameters.sh").read_text()
            reply = await vnfm.call(hostname, {"action": "CLONE_SCRIPTS", "payload": f"file://{repo}",
                                               "script-path": "/opt/openbaton/scripts/git"}, cid="c5")
            assert reply["status"] == 0, reply["err"]
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "ob_runtime hello.sh",
                                               "script-path": "/opt/openbaton/scripts/git"}, cid="c6")
            assert reply["status"] == 127  # "ob_runtime" is not a script: the first word is the script
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "hello.sh",
                                               "script-path": "/opt/openbaton/scripts/git"}, cid="c7")
            assert reply == {"output": "hello-from-git\n", "err": "", "status": 0}
            reply = await vnfm.call(hostname, {"action": "REBOOT"}, cid="c8")
            assert reply["status"] != 0 and "unknown action" in reply["err"]
            reply = await vnfm.call(hostname, b"this is not json", cid="c9")
            assert reply["status"] != 0 and "not JSON" in reply["err"]
            reply = await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64("x"), "name": "../../x.sh",
                                               "script-path": "/opt/openbaton/scripts"}, cid="c10")
            assert reply["status"] != 0 and not (tmp_path / "x.sh").exists()
            # a re-sent command (same correlation id) is answered from the stored result
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "install.sh arg1",
                                               "env": {"port": "5001", "SECRET": "tok-98765"}}, cid="c2")
            assert reply["output"] == "arg1 5001 tok-98765\n"
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await vnfm.close()
    text = log_file.read_text() + (tmp_path / "log" / "ems-receiver.log").read_text()
    assert "event=ems_registered" in text and "env_keys=SECRET,port" in text
    assert "tok-98765" not in text
    assert "password='***'" in text   # the configuration is logged with the password masked


@pytest.mark.rabbitmq
async def test_long_script_does_not_hold_up_other_commands(amqp_url: str, tmp_path: Path) -> None:
    type_, hostname = unique("emsit"), unique("vnfc") + "-1"
    config = write_properties(tmp_path / "ems.properties", hostname=hostname, type_=type_, **broker_parts(amqp_url))
    vnfm = ReferenceVnfm(amqp_url, type_)
    await vnfm.connect()
    try:
        async with ems_process(ems_args(tmp_path, config), tmp_path / "ems.out"):
            await vnfm.registration()
            # the long script runs until the test releases it: the quick one is answered meanwhile
            started, release = tmp_path / "long-started", tmp_path / "release"
            long_sh = f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done; echo long"
            for name, text in (("long.sh", long_sh), ("quick.sh", "echo quick")):
                await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64(text), "name": name,
                                           "script-path": "/opt/openbaton/scripts"}, cid=unique("save"))
            long = asyncio.create_task(vnfm.call(hostname, {"action": "EXECUTE", "payload": "long.sh"}, cid="long",
                                                 timeout=120))
            await wait_for(started.exists, 60, "the long script to start")
            assert (await vnfm.call(hostname, {"action": "EXECUTE", "payload": "quick.sh"}, cid="quick"))["output"] \
                == "quick\n"
            assert not long.done()
            release.touch()
            assert (await long)["output"] == "long\n"
    finally:
        await vnfm.close()


@pytest.mark.rabbitmq
async def test_fleet_of_hosts_in_one_process(amqp_url: str, tmp_path: Path) -> None:
    type_, prefix = unique("emsfleet"), unique("bench")
    config = write_properties(tmp_path / "ems.properties", hostname="unused", type_=type_, **broker_parts(amqp_url))
    vnfm = ReferenceVnfm(amqp_url, type_)
    await vnfm.connect()
    try:
        async with ems_process(ems_args(tmp_path, config, "--hosts", "3", "--hostname-prefix", prefix),
                               tmp_path / "ems.out"):
            names = sorted([(await vnfm.registration())["hostname"] for _ in range(3)])
            assert names == [f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"]
            for i, name in enumerate(names, 1):
                reply = await vnfm.call(name, {"action": "SAVE_SCRIPTS", "payload": b64(f"echo {i}"), "name": "id.sh",
                                               "script-path": "/opt/openbaton/scripts"}, cid=unique("s"))
                assert reply["status"] == 0
                assert (tmp_path / "host" / name / "scripts" / "id.sh").exists()
            for i, name in enumerate(names, 1):
                reply = await vnfm.call(name, {"action": "EXECUTE", "payload": "id.sh"}, cid=unique("e"))
                assert reply["output"] == f"{i}\n"
    finally:
        await vnfm.close()


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.rabbitmq
@pytest.mark.slow
async def test_broker_restart_in_the_middle_of_a_script(private_rabbit: PrivateRabbit,  # noqa: F811
                                                        tmp_path: Path) -> None:
    user, password = unique("ems"), unique("Pw-Secret")
    await asyncio.to_thread(private_rabbit.add_user, user, password)
    url = private_rabbit.url_for(user, password)
    type_, hostname = unique("emsrestart"), unique("vnfc") + "-2"
    config = write_properties(tmp_path / "ems.properties", url_host="127.0.0.1", port=private_rabbit.port,
                              user=user, password=password, hostname=hostname, type_=type_,
                              extra={"reconnect_max": "2"})
    counter, release = tmp_path / "runs.txt", tmp_path / "release"
    script = (f"echo run >> {counter}\n"
              f"for i in $(seq 600); do [ -e {release} ] && break; sleep 0.1; done\necho finished\n")
    # a durable, non-auto-delete register queue survives the restart (gvnfm's VNFM with
    # vnfm.rabbitmq.autodelete=false)
    vnfm = ReferenceVnfm(url, type_, register_auto_delete=False)
    await vnfm.connect()
    log_file = tmp_path / "ems.out"
    try:
        async with ems_process(ems_args(tmp_path, config), log_file) as proc:
            assert await vnfm.registration() == {"hostname": hostname}
            await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64(script), "name": "wait.sh",
                                       "script-path": "/opt/openbaton/scripts"}, cid="save")
            command = json.dumps({"action": "EXECUTE", "payload": "wait.sh", "env": {"x": "1"}}).encode()
            first = asyncio.create_task(vnfm.call_raw(hostname, command, cid="op/step-1", timeout=120))
            await wait_for(counter.exists, 60, "the script to start")

            await asyncio.to_thread(private_rabbit.restart)
            first.cancel()   # its reply address died with the connection
            await vnfm.close()
            vnfm = ReferenceVnfm(url, type_, register_auto_delete=False)
            await vnfm.connect()
            assert await vnfm.registration(timeout=60) == {"hostname": hostname}   # re-registered
            assert proc.returncode is None

            # the VNFM re-sends the command with the same correlation id; the script is still running
            # (its answer can only be the run's own: "finished" is printed after the release below)
            again = asyncio.create_task(vnfm.call_raw(hostname, command, cid="op/step-1", timeout=60))
            release.touch()
            reply = json.loads((await again).body)
            assert reply == {"output": "finished\n", "err": "", "status": 0}
            assert counter.read_text() == "run\n"     # ran exactly once
            # and the agent keeps working after the restart
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "wait.sh"}, cid="after")
            assert reply["status"] == 0 and counter.read_text() == "run\nrun\n"
    finally:
        await vnfm.close()
    text = log_file.read_text()
    assert "event=ems_reconnected" in text
    assert password not in text


@pytest.mark.rabbitmq
async def test_a_script_longer_than_the_brokers_consumer_timeout_leaves_the_ems_working(tmp_path: Path) -> None:
    """RabbitMQ closes a consumer's channel when a delivery stays unacknowledged beyond ``consumer_timeout``
    (30 min by default; the EMS acknowledges after the reply, and ``script_timeout`` is 30 min too). The
    EMS's auto-delete queue goes with that channel. Here a private node with a 1 s timeout (checked every
    0.5 s): the long script's reply still arrives, and the EMS takes the next command on its queue made
    again (before: the queue was gone and the agent deaf while its connection lived on)."""
    node = PrivateRabbit(config="consumer_timeout = 1000",
                         advanced="[{rabbit, [{channel_tick_interval, 500}]}].\n")
    await asyncio.to_thread(node.start)
    type_, hostname = unique("emsct"), unique("vnfc") + "-3"
    config = write_properties(tmp_path / "ems.properties", hostname=hostname, type_=type_, **broker_parts(node.url))
    vnfm = ReferenceVnfm(node.url, type_)
    log_file = tmp_path / "ems.out"
    try:
        await vnfm.connect()
        async with ems_process(ems_args(tmp_path, config), log_file):
            assert await vnfm.registration() == {"hostname": hostname}
            await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64("sleep 3; echo long\n"),
                                       "name": "long.sh", "script-path": "/opt/openbaton/scripts"}, cid="save")
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "long.sh"}, cid="long")
            assert reply == {"output": "long\n", "err": "", "status": 0}
            reply = await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64("echo next\n"),
                                               "name": "next.sh", "script-path": "/opt/openbaton/scripts"},
                                    cid="save-next", timeout=20)
            assert reply["status"] == 0
            reply = await vnfm.call(hostname, {"action": "EXECUTE", "payload": "next.sh"}, cid="next", timeout=20)
            assert reply == {"output": "next\n", "err": "", "status": 0}
    finally:
        await vnfm.close()
        await asyncio.to_thread(node.cleanup)
    text = log_file.read_text() + (tmp_path / "log" / "ems-receiver.log").read_text()
    assert "event=amqp_consumer_channel_closed" in text and "delivery acknowledgement" in text


@pytest.mark.rabbitmq
@pytest.mark.parametrize("register_auto_delete", [True, False], ids=["reference-flags", "autodelete-false"])
async def test_ems_started_before_the_vnfm_registers(amqp_url: str, tmp_path: Path,
                                                     register_auto_delete: bool) -> None:
    """The register queue does not exist yet when the EMS starts (the VNFM declares it): the EMS
    waits for it and registers as soon as it appears, without a reconnection."""
    type_, hostname = unique("emsearly"), unique("vnfc") + "-7"
    config = write_properties(tmp_path / "ems.properties", hostname=hostname, type_=type_, **broker_parts(amqp_url))
    log_file = tmp_path / "ems.out"
    vnfm = ReferenceVnfm(amqp_url, type_, register_auto_delete=register_auto_delete)
    try:
        async with ems_process(ems_args(tmp_path, config), log_file) as proc:
            await wait_for(lambda: "event=ems_register_waiting" in log_file.read_text(), 60, "the EMS to start")
            await asyncio.sleep(1.0)   # let it retry a few times (not an assertion)
            await vnfm.connect()
            started = time.monotonic()
            assert await vnfm.registration(timeout=60) == {"hostname": hostname}
            # by a retry (the back-off is capped at 5 s; the bound has a margin for a slow machine), not
            # after a reconnection (asserted on the log below)
            assert time.monotonic() - started < 30
            assert proc.returncode is None
            reply = await vnfm.call(hostname, {"action": "REBOOT"}, cid="after-registration")
            assert "unknown action" in reply["err"]
    finally:
        await vnfm.close()
        if not register_auto_delete:
            with contextlib.suppress(Exception):
                conn = await aio_pika.connect(amqp_url)
                async with conn:
                    ch = await conn.channel()
                    await ch.queue_delete(f"ems.{type_}.register")
    text = log_file.read_text()
    assert "event=ems_reconnected" not in text and text.count("event=ems_registered") == 1


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def read_int(path: Path) -> int:
    return int(path.read_text())


def vm_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.mark.rabbitmq
async def test_hung_script_times_out_its_group_is_killed_and_the_agent_keeps_answering(amqp_url: str,
                                                                                        tmp_path: Path) -> None:
    type_, hostname = unique("emshang"), unique("vnfc") + "-3"
    config = write_properties(tmp_path / "ems.properties", hostname=hostname, type_=type_, **broker_parts(amqp_url),
                              extra={"kill_grace": "0.5"})
    pids = tmp_path / "pids"
    hang = (f"echo $$ > {pids}.main\n"
            "(trap '' TERM; while :; do sleep 0.1; done) &\n"   # a child that ignores SIGTERM: needs SIGKILL
            f"echo $! > {pids}.child\n"
            "while :; do sleep 0.1; done\n")
    vnfm = ReferenceVnfm(amqp_url, type_)
    await vnfm.connect()
    try:
        async with ems_process(ems_args(tmp_path, config), tmp_path / "ems.out"):
            await vnfm.registration()
            for name, text in (("hang.sh", hang), ("quick.sh", "echo quick")):
                await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64(text), "name": name,
                                           "script-path": "/opt/openbaton/scripts"}, cid=unique("save"))
            started = time.monotonic()
            hung = asyncio.create_task(vnfm.call(hostname, {"action": "EXECUTE", "payload": "hang.sh",
                                                            "env": {}, "timeout": 1.5}, cid="hang", timeout=120))
            await wait_for(lambda: Path(f"{pids}.child").exists() and Path(f"{pids}.child").read_text().strip(),
                           60, "the hung script to start")
            main_pid, child_pid = (read_int(Path(f"{pids}.{n}")) for n in ("main", "child"))
            group = os.getpgid(main_pid)   # led by the exit-status wrapper the script runs under
            assert main_pid in group_members(group) and child_pid in group_members(group)
            # meanwhile the agent answers another command at once
            assert await vnfm.call(hostname, {"action": "EXECUTE", "payload": "quick.sh"}, cid="quick", timeout=60) \
                == {"output": "quick\n", "err": "", "status": 0}
            assert not hung.done()
            reply = await hung
            elapsed = time.monotonic() - started
            assert reply["status"] == 124 and "timed out after 1.5 s" in reply["err"], reply
            # the time-out is the behaviour: not before 1.5 s, and not never (the upper bound has a margin)
            assert 1.4 < elapsed < 60, elapsed
            await wait_for(lambda: not group_members(group), 60, "the script's process group to be gone")
    finally:
        await vnfm.close()


@pytest.mark.rabbitmq
async def test_script_printing_100_mb_gets_a_bounded_reply(amqp_url: str, tmp_path: Path) -> None:
    type_, hostname = unique("emsbig"), unique("vnfc") + "-5"
    config = write_properties(tmp_path / "ems.properties", hostname=hostname, type_=type_, **broker_parts(amqp_url))
    total = 100_000_000
    big = f"head -c {total} /dev/zero | tr '\\0' x\necho\necho the-end\necho some-error >&2\n"
    vnfm = ReferenceVnfm(amqp_url, type_)
    await vnfm.connect()
    try:
        async with ems_process(ems_args(tmp_path, config), tmp_path / "ems.out") as proc:
            await vnfm.registration()
            await vnfm.call(hostname, {"action": "SAVE_SCRIPTS", "payload": b64(big), "name": "big.sh",
                                       "script-path": "/opt/openbaton/scripts"}, cid="save")
            rss_before = vm_kib(proc.pid, "VmRSS")
            message = await vnfm.call_raw(hostname, json.dumps({"action": "EXECUTE", "payload": "big.sh"}).encode(),
                                          cid="big", timeout=60)
            peak = vm_kib(proc.pid, "VmHWM")
            reply = json.loads(message.body)
            assert reply["status"] == 0 and reply["err"] == "some-error\n"
            kept = 1024 * 1024   # max_output_bytes, the default
            cut = total + len("\nthe-end\n") - kept
            assert reply["output"].startswith(f"[... {cut} bytes cut ...]\n")
            assert reply["output"].endswith("x\nthe-end\n")
            assert len(message.body) < kept + 200   # the reply is bounded
            # the agent streamed the output: its peak memory grew by far less than the 100 MB printed
            assert (peak - rss_before) < 40 * 1024, (rss_before, peak)
            # and it still answers
            assert (await vnfm.call(hostname, {"action": "NOPE"}, cid="after"))["status"] == 1
    finally:
        await vnfm.close()


@pytest.mark.rabbitmq
async def test_an_ems_user_with_restricted_permissions_is_refused_clearly_then_registers(
        amqp_vhost: str, rabbit_admin: BrokerAdmin, tmp_path: Path) -> None:
    """A real broker user with restricted permissions. First it may not publish to the default exchange:
    RabbitMQ refuses the registration by closing the channel (ACCESS_REFUSED); the EMS says so in its
    log, keeps running and retries. Once the operator grants what the EMS needs (its own queue, the
    exchange, the default exchange, and nothing on ``ems.*``), it registers by itself and answers."""
    vhost = amqp_vhost.rsplit("/", 1)[1]
    type_, hostname = unique("emsperm"), unique("vnfc") + "-8"
    user, password = unique("ems-restricted"), unique("pw")
    actions = rf"vnfm\.{hostname}\.actions"
    configure, read = rf"^({actions}|amq\.gen.*)$", rf"^({actions}|openbaton-exchange|amq\.gen.*)$"
    rabbit_admin.add_user(user, password)
    try:
        rabbit_admin.set_permissions(vhost, user, configure=configure, write=rf"^({actions}|amq\.gen.*)$", read=read)
        parts = broker_parts(amqp_vhost)
        config = write_properties(tmp_path / "ems.properties", url_host=parts["url_host"], port=parts["port"],
                                  user=user, password=password, hostname=hostname, type_=type_,
                                  extra={"virtual_host": vhost})
        vnfm = ReferenceVnfm(amqp_vhost, type_)
        await vnfm.connect()
        log_file = tmp_path / "ems.out"
        try:
            async with ems_process(ems_args(tmp_path, config), log_file) as proc:
                await wait_for(lambda: "event=ems_register_failed" in log_file.read_text(), 60,
                               "the refused registration to be logged")
                refused = next(line for line in log_file.read_text().splitlines()
                               if "event=ems_register_failed" in line)
                assert "ACCESS_REFUSED" in refused and "amq.default" in refused and password not in refused
                assert proc.returncode is None and vnfm.registrations.empty()
                rabbit_admin.set_permissions(vhost, user, configure=configure,
                                             write=rf"^({actions}|amq\.default|amq\.gen.*)$", read=read)
                assert await vnfm.registration(timeout=60) == {"hostname": hostname}
                reply = await vnfm.call(hostname, {"action": "REBOOT"}, cid="restricted-1", timeout=60)
                assert reply["status"] != 0 and "unknown action" in reply["err"]
        finally:
            await vnfm.close()
        text = log_file.read_text()
        assert text.count("event=ems_registered") == 1 and password not in text, text[-3000:]
    finally:
        rabbit_admin.delete_user(user)
