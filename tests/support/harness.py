"""The VNFM service over the in-memory transport, with a scripted NFVO (``FakeNfvo``) and scripted EMSs
(``FakeEms``): ``Harness`` and the INSTANTIATE it is usually given (``instantiate_msg``), for the tests of
the VNFM service in tests/unit and tests/integration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gvnfm.store.sql import SqlStore
from gvnfm.transport.memory import InMemoryBroker, InMemoryTransport
from gvnfm.vnfm.service import VnfmService
from gvnfm.vnfm.settings import VnfmSettings
from tests.support.fakes import FakeEms, FakeNfvo

FIXTURES = Path(__file__).parent.parent / "fixtures"


def vnfd(n_vnfc: int = 2) -> dict[str, Any]:
    data = json.loads((FIXTURES / "vnfd_iperf_server.json").read_text())
    vdu = data["vdu"][0]
    vdu["vnfc"] = [{"id": f"vnfc-d{i}", "connection_point": [{"virtual_link_reference": "private"}]}
                   for i in range(n_vnfc)]
    data["lifecycle_event"] += [{"event": "START", "lifecycle_events": ["start.sh"]},
                                {"event": "CONFIGURE", "lifecycle_events": ["client_conf.sh", "plain.sh"]},
                                {"event": "TERMINATE", "lifecycle_events": ["stop.sh"]}]
    return data


def instantiate_msg(n_vnfc: int = 2) -> dict[str, Any]:
    return {"action": "INSTANTIATE", "vnfd": vnfd(n_vnfc), "vnfdf": {"flavour_key": "m1.small"},
            "vnfInstanceName": "iperf-server", "vlrs": [{"id": "net-1", "name": "private"}],
            "extension": {"nsr-id": "nsr-1", "brokerIp": "127.0.0.1", "brokerPort": "5672"},
            "vimInstances": {}, "keys": [],
            "vnfPackage": {"id": "pkg", "scripts": [
                {"name": n, "payload": list(f"echo {n}".encode())}
                for n in ("install.sh", "install-srv.sh", "start.sh", "client_conf.sh", "plain.sh", "stop.sh")]}}


class Harness:
    def __init__(self, tmp: Path, db_url: str | None = None, **settings: Any) -> None:
        self.db_url = db_url or f"sqlite+aiosqlite:///{tmp / 'vnfm.db'}"
        self.broker = InMemoryBroker()
        self.settings = VnfmSettings(**{"broker": "memory://", "state_dir": tmp, "ems_start_timeout": 3,
                                        "register_pause": 0.05, **settings})
        self.nfvo_t = InMemoryTransport(self.broker)
        self.ems = FakeEms(InMemoryTransport(self.broker))
        self.nfvo = FakeNfvo(self.nfvo_t, self.ems)
        self.tmp = tmp

    async def __aenter__(self) -> Harness:
        await self.nfvo_t.connect()
        await self.ems.transport.connect()
        await self.nfvo.start()
        self.store = await SqlStore.open(self.db_url)
        self.vnfm_t = InMemoryTransport(self.broker)
        await self.vnfm_t.connect()
        self.service = VnfmService(self.settings, transport=self.vnfm_t, store=self.store)
        await self.service.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop(grace=1)
        await self.vnfm_t.close()
        await self.ems.transport.close()
        await self.nfvo_t.close()
        await self.store.close()

    async def call(self, msg: dict[str, Any] | bytes, cid: str | None = None, timeout: float = 60) -> dict[str, Any]:
        body = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        raw = await self.nfvo_t.rpc("generic", body, timeout=timeout, correlation_id=cid)
        return json.loads(raw)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(tmp_path) as harness:
        yield harness
