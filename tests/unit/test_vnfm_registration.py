"""Registration with the NFVO as the reference VNFM does it: a null answer is retried, a refused
connection with the NFVO's fresh credentials is retried (40/80/160 s by default), a stop request ends
the retries at once, and a worker that never registered does not unregister."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gvnfm.cli.vnfm_cmd import run_vnfm
from gvnfm.store.sql import SqlStore
from gvnfm.transport import Transport, TransportError
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.vnfm import nfvo_client
from gvnfm.vnfm.service import VnfmService
from gvnfm.vnfm.settings import VnfmSettings, load_settings
from tests.support.fakes import FakeNfvo


async def test_a_null_answer_is_retried_then_the_credentials_are_used(tmp_path: Path) -> None:
    broker = InMemoryBroker()
    nfvo = FakeNfvo(InMemoryTransport(broker), null_answers=2, credentials=("generic", "s3cret"))
    await nfvo.transport.connect()
    await nfvo.start()
    vnfm_t = InMemoryTransport(broker)
    await vnfm_t.connect()
    answer = await nfvo_client.register(vnfm_t, endpoint="generic", type_="generic", description="d", tries=5,
                                        pause=0.01)
    assert answer == {"rabbitUsername": "generic", "rabbitPassword": "s3cret"}
    assert [m["action"] for m in nfvo.registered] == ["register"] * 3
    # only null answers: not registered after all the tries, a clear error
    nfvo.null_answers = 10
    with pytest.raises(nfvo_client.NfvoError, match=r"after 3 attempts: the NFVO answered b'null'"):
        await nfvo_client.register(vnfm_t, endpoint="generic", type_="generic", description="d", tries=3, pause=0.01)
    await vnfm_t.close()
    await nfvo.transport.close()


async def test_a_refused_connection_with_the_nfvo_credentials_is_retried(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    broker = InMemoryBroker()
    nfvo = FakeNfvo(InMemoryTransport(broker), credentials=("generic", "fresh"))
    await nfvo.transport.connect()
    await nfvo.start()
    attempts: list[tuple[str, str]] = []
    spare = InMemoryTransport(broker)

    async def reconnect(user: str, password: str) -> Transport | None:
        attempts.append((user, password))
        if len(attempts) < 3:       # the NFVO has not created its broker user yet
            raise TransportError("the broker refused the connection: ACCESS_REFUSED")
        await spare.connect()
        return spare

    settings = VnfmSettings(broker="memory://", state_dir=tmp_path, nfvo_auth_retry_delays=[0.01, 0.01, 0.01])
    store = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'vnfm.db'}")
    vnfm_t = InMemoryTransport(broker)
    await vnfm_t.connect()
    service = VnfmService(settings, transport=vnfm_t, store=store, reconnect=reconnect)
    await service.start()
    assert attempts == [("generic", "fresh")] * 3 and service.transport is spare
    assert caplog.text.count("event=nfvo_credentials_refused") == 2
    await service.stop(grace=1)
    await store.close()
    for t in (vnfm_t, spare, nfvo.transport):
        await t.close()


def test_the_retry_pauses_are_configurable_as_the_reference_keys(tmp_path: Path) -> None:
    assert VnfmSettings().nfvo_auth_retry_delays == [40.0, 80.0, 160.0]
    props = tmp_path / "application.properties"
    props.write_text("vnfm.connect.auth.retry.delays=5, 10\nvnfm.connect.tries=7\n")
    s = load_settings(props, environ={})
    assert s.nfvo_auth_retry_delays == [5.0, 10.0] and s.register_tries == 7


async def test_a_stop_request_ends_the_registration_retries_at_once(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    broker_name = f"reg-{tmp_path.name}"
    nfvo = FakeNfvo(InMemoryTransport(InMemoryBroker.named(broker_name)), null_answers=1000)   # never accepts
    await nfvo.transport.connect()
    await nfvo.start()
    settings = VnfmSettings(broker=f"memory://{broker_name}", state_dir=tmp_path, register_tries=1000,
                            register_pause=3600)      # would wait an hour before the second try
    stop = asyncio.Event()
    run = asyncio.create_task(run_vnfm(settings, stop))
    while "event=nfvo_registration_retry" not in caplog.text:
        assert not run.done(), run
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(run, 60)                # hang guard only: it ends on the stop request
    assert "event=vnfm_stopped_while_starting" in caplog.text
    assert [m["action"] for m in nfvo.registered] == ["register"]   # one try, and no unregister
    await nfvo.transport.close()
    InMemoryBroker.reset(broker_name)
