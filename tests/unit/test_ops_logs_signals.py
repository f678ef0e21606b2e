"""Log lines read back by a logfmt parser (and by the strict one of gvnfm), carry the operation, hide
secrets; JSON lines; a second signal ends a daemon at once with exit 0."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import subprocess
import sys
import textwrap

import logfmt
import pytest

from gvnfm.logs import bind_operation, parse_logfmt, setup_logging, unbind_operation


@pytest.fixture
def captured() -> io.StringIO:
    buf = io.StringIO()
    yield buf
    setup_logging("WARNING")


def _lines(fmt: str, buf: io.StringIO) -> list[str]:
    setup_logging("INFO", stream=buf, fmt=fmt)
    log = logging.getLogger("gvnfm.test")
    log.info("event=host_ready ips=%s name=%r count=%d", {"private": "127.1.0.2"}, 'a "quoted" name', 3)
    log.info("event=ems_credentials_refused url=%s error=%r", "amqp://u:hunter2@h:5672/", "refused = no\nway")
    log.info("event=login password=%s user=%s", "hunter2", "bob")
    log.info("plain words with = and \"quotes\"")
    token = bind_operation("op-1", "web", "INSTANTIATE")
    try:
        log.info("event=step hostname=%s", "web-1")
    finally:
        unbind_operation(token)
    try:
        raise ValueError("boom password=hunter2")
    except ValueError:
        log.exception("event=crash")
    return buf.getvalue().splitlines()


def test_text_lines_read_back_with_logfmt_parsers(captured: io.StringIO) -> None:
    lines = _lines("text", captured)
    assert len(lines) == 6                                  # a traceback stays on its line
    parsed = [dict(parse_logfmt(line)) for line in lines]   # strict: raises on a malformed line
    lib = [next(logfmt.parse([line])) for line in lines]    # the logfmt library from PyPI
    assert parsed[0]["ips"] == "{'private': '127.1.0.2'}" and parsed[0]["name"] == "'a \"quoted\" name'"
    assert lib[0]["ips"] == "{'private': '127.1.0.2'}" and lib[0]["count"] == "3"
    assert parsed[1]["error"] == "'refused = no\\nway'"
    assert parsed[3]["msg"] == 'plain words with = and "quotes"'
    assert {k: parsed[4][k] for k in ("op", "vnfr", "action")} == {"op": "op-1", "vnfr": "web",
                                                                   "action": "INSTANTIATE"}
    assert "op" not in parsed[0]
    assert "Traceback" in parsed[5]["exc"]
    text = "\n".join(lines)
    assert "hunter2" not in text and parsed[2]["password"] == "***" and "u:***@h" in parsed[1]["url"]


def test_json_lines(captured: io.StringIO) -> None:
    lines = [json.loads(line) for line in _lines("json", captured)]
    assert lines[0]["event"] == "host_ready" and lines[0]["ips"] == "{'private': '127.1.0.2'}"
    assert lines[4]["op"] == "op-1" and lines[4]["action"] == "INSTANTIATE"
    assert "hunter2" not in json.dumps(lines)


CHILD = textwrap.dedent("""
    import asyncio, sys
    from gvnfm.logs import setup_logging
    from gvnfm.ops.signals import run_until_signalled

    async def main(stop):
        print("ready", flush=True)
        await stop.wait()
        print("asked to stop", flush=True)
        await asyncio.shield(asyncio.sleep(3600))   # a stop that does not finish

    setup_logging("INFO", stream=sys.stdout)
    run_until_signalled(main, grace=3600, hard=3600)
""")


async def test_second_signal_exits_at_once_with_0() -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    proc.send_signal(signal.SIGTERM)
    seen = b""
    while b"asked to stop" not in seen:
        seen += await asyncio.wait_for(proc.stdout.readline(), 60)
    proc.send_signal(signal.SIGINT)
    rest = await asyncio.wait_for(proc.stdout.read(), 60)
    assert await proc.wait() == 0
    out = (seen + rest).decode()
    assert out.index("event=stopping signal=SIGTERM") < out.index("reason=second_signal_SIGINT")


async def test_healthz_names_what_failed() -> None:
    from types import SimpleNamespace

    from gvnfm.cli.vnfm_cmd import add_health_checks
    from gvnfm.ops.health import Health

    class Store:
        ok = True

        async def latest_operation(self, _prefix: str) -> None:
            if not self.ok:
                raise OSError("database is locked")

    transport, store = SimpleNamespace(connected=True), Store()
    service = SimpleNamespace(transport=transport, settings=SimpleNamespace(register_with_nfvo=True))
    health = Health()
    add_health_checks(health, lambda: service, transport, store)
    code, body = await health.healthz()
    assert code == 503 and "nfvo_registration: not registered with the NFVO yet" in body
    assert (await health.readyz())[0] == 503
    health.set_ready(True)
    assert (await health.healthz())[0] == 200 and (await health.readyz())[0] == 200
    transport.connected = False
    store.ok = False
    code, body = await health.healthz()
    assert code == 503 and body.startswith("failed: broker, store")
    assert "broker: not connected" in body and "database is locked" in body


async def test_up_api_serves_the_same_metrics() -> None:
    from types import SimpleNamespace

    import httpx

    from gvnfm.api.server import build_app
    from gvnfm.ops import metrics

    metrics.REPLIES.labels("INSTANTIATE").inc(0)
    app = build_app(SimpleNamespace(nfvo=SimpleNamespace(nsrs={})), "t0ken")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        refused = await client.get("/metrics")
        res = await client.get("/metrics", headers={"Authorization": "Bearer t0ken"})
    assert refused.status_code == 401   # the run's token, as every route of this API but /healthz
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    assert "gvnfm_replies_sent_total" in res.text and "gvnfm_operations_total" in res.text
