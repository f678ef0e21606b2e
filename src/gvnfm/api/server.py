"""REST control API of a running ``gvnfm up``: network service records and day-2 operations.

Paths follow the Open Baton NFVO's REST API where one exists (``/api/v1/ns-records/{nsr}/vnfrecords/
{vnfr}/...``). ``{nsr}`` may be the NSR id, its name, or ``current`` (the only NSR).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from gvnfm.orchestrator.errors import Conflict, NotEnoughResources, OrchestratorError, VnfmError
from gvnfm.orchestrator.records import NetworkServiceRecord
from gvnfm.private import write_private

log = logging.getLogger(__name__)


DESCRIPTION = """Network service records and day-2 operations of a running `gvnfm up`.

**One operation at a time per VNFR.** A day-2 request on a VNFR that is busy with another operation
(or on one whose dependants that operation reconfigures: scale-out, scale-in and `switchToStandby`
hold the VNFR's dependency targets too) is refused at once with **409 Conflict**, naming the
operation in progress; nothing is sent and nothing changes. It is not queued: operations can run
for as long as their scripts (`--script-timeout`), and a queued request would act on records its
sender has not seen. Retry when the operation has finished (`gvnfm status`).

Errors: 400 a request that can never succeed as given; 404 an unknown NSR / VNFR / VNFC / script;
409 a request that does not fit the current state (busy, a VNFC not in STANDBY, RESUME of a VNFR
not in ERROR, not enough resources, or the VNFM refused it without changing anything: the VNFR keeps
its state); 502 the VNFM failed the operation (the VNFR is in ERROR, `resume` continues it).
"""


class ScaleOutBody(BaseModel):
    component_id: str | None = Field(None, description="VNFC (component) id to replicate; default: the first")
    standby: bool = Field(False, description="create the new VNFC in STANDBY (no START)")


class HostBody(BaseModel):
    hostname: str


class HealBody(BaseModel):
    hostname: str
    cause: str = Field(..., description="passed to HEAL scripts as $cause; 'switchToStandby' activates a standby")


class ScriptBody(BaseModel):
    content: str = Field(..., description="the new script text")


class ExecuteBody(BaseModel):
    script: str = Field(..., description="script text run on every VNFC of the VNFR")


class StartStopBody(BaseModel):
    hostname: str | None = Field(None, description="one VNFC instance; default: all")


def build_app(runtime: Any) -> FastAPI:
    app = FastAPI(title="gvnfm local control API", version="1", description=DESCRIPTION)

    def nsr_of(key: str) -> NetworkServiceRecord:
        nsrs = runtime.nfvo.nsrs
        if key == "current":
            live = [n for n in nsrs.values() if n.status != "TERMINATED"]
            if len(live) == 1:
                return live[0]
            raise HTTPException(404, f"'current' needs exactly one running network service, there are {len(live)}")
        for nsr in nsrs.values():
            if key in (nsr.id, nsr.name):
                return nsr
        raise HTTPException(404, f"no network service {key!r}")

    def vnfr_of(nsr: NetworkServiceRecord, name: str) -> None:
        if name not in nsr.vnfrs:
            raise HTTPException(404, f"network service {nsr.name!r} has no VNFR {name!r} "
                                     f"(it has {', '.join(nsr.vnfrs)})")

    def host_of(nsr: NetworkServiceRecord, vnfr: str, hostname: str) -> None:
        if hostname not in nsr.vnfrs[vnfr].hosts:
            raise HTTPException(404, f"VNFR {vnfr!r} has no VNFC instance {hostname!r} "
                                     f"(it has {', '.join(nsr.vnfrs[vnfr].hosts) or 'none'})")

    async def guarded(coro: Any) -> Any:
        try:
            return await coro
        except HTTPException:
            raise
        except (NotEnoughResources, Conflict) as exc:
            raise HTTPException(409, str(exc)) from exc
        except VnfmError as exc:
            raise HTTPException(502, str(exc)) from exc
        except (OrchestratorError, KeyError) as exc:
            raise HTTPException(400, str(exc).strip("'\"")) from exc

    @app.get("/api/v1/ns-records", summary="all network service records")
    async def list_nsrs() -> list[dict[str, Any]]:
        return [nsr.report()["nsr"] | {"vnfrs": list(nsr.vnfrs)} for nsr in runtime.nfvo.nsrs.values()]

    @app.get("/api/v1/ns-records/{nsr}", summary="one record with its VNFRs, VNFCs and script runs")
    async def get_nsr(nsr: str) -> dict[str, Any]:
        result: dict[str, Any] = await runtime.report(nsr_of(nsr))
        return result

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/scale-out", summary="add a VNFC instance")
    async def scale_out(nsr: str, vnfr: str, body: ScaleOutBody) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        inst = await guarded(runtime.nfvo.scale_out(record, vnfr, body.component_id,
                                                    "standby" if body.standby else None, wait=False))
        return {"vnfcInstance": inst.to_wire()}

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/scale-in", summary="remove a VNFC instance")
    async def scale_in(nsr: str, vnfr: str, body: HostBody) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        host_of(record, vnfr, body.hostname)
        await guarded(runtime.nfvo.scale_in(record, vnfr, body.hostname, wait=False))
        return {"removed": body.hostname}

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/heal", summary="HEAL one VNFC with a cause")
    async def heal(nsr: str, vnfr: str, body: HealBody) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        host_of(record, vnfr, body.hostname)
        healed = await guarded(runtime.nfvo.heal(record, vnfr, body.hostname, body.cause, wait=False))
        inst = healed.find_vnfc_instance(hostname=body.hostname)
        return {"vnfcInstance": inst.to_wire() if inst else None}

    @app.put("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/scripts/{name}",
             summary="replace a package script on every VNFC (UPDATE → SCRIPTS_UPDATE)")
    async def update_script(nsr: str, vnfr: str, name: str, body: ScriptBody) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        bundle = record._bundle
        package = bundle.packages.get(vnfr) if bundle is not None else None
        known = {s.name for s in package.scripts} if package is not None else set()
        if package is not None and package.scripts_link:
            raise HTTPException(400, f"VNFR {vnfr!r} takes its scripts from {package.scripts_link}: "
                                     "update the repository instead")
        if name not in known:
            raise HTTPException(404, f"VNFR {vnfr!r} has no script {name!r} (it has {', '.join(sorted(known))})")
        await guarded(runtime.nfvo.update_script(record, vnfr, name, body.content, wait=False))
        return {"updated": name}

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/update",
              summary="run the UPDATE lifecycle event's scripts on every VNFC (400 if the VNFR has none)")
    async def update_event(nsr: str, vnfr: str) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        await guarded(runtime.nfvo.update_script(record, vnfr, None, None, wait=False))
        return {"updated": vnfr}

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/execute",
              summary="run an ad-hoc script on every VNFC; per-VNFC results (200 even when a script fails)")
    async def execute(nsr: str, vnfr: str, body: ExecuteBody) -> dict[str, Any]:
        """``{"ok", "results": [{"hostname", "status", "output", "err"}], "failed": [hostnames], "error"}``.
        A failing ad-hoc script does not change the VNFR's state (it is no lifecycle failure)."""
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        result: dict[str, Any] = await guarded(runtime.nfvo.execute(record, vnfr, body.script, wait=False))
        return result

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/resume", summary="RESUME a VNFR in ERROR")
    async def resume(nsr: str, vnfr: str) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        await guarded(runtime.deployment.resume(record, vnfr, wait=False))
        return {"status": record.vnfrs[vnfr].status}

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/{action}", summary="START or STOP a VNFR or one VNFC")
    async def start_stop(nsr: str, vnfr: str, action: str, body: StartStopBody) -> dict[str, Any]:
        if action not in ("start", "stop"):
            raise HTTPException(404, f"unknown operation {action!r}")
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        if body.hostname:
            host_of(record, vnfr, body.hostname)
        method = runtime.nfvo.start_vnf if action == "start" else runtime.nfvo.stop_vnf
        await guarded(method(record, vnfr, body.hostname, wait=False))
        return {"status": record.vnfrs[vnfr].status}

    @app.get("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/logs/{hostname}",
             summary="script output and error logs of one VNFC (LOG_REQUEST)")
    async def logs(nsr: str, vnfr: str, hostname: str,
                   since: int | None = Query(None, description="the `version` of an earlier answer: the VNFM is "
                                                               "asked again only if the log may have changed")
                   ) -> dict[str, Any]:
        """``{"outputLog", "errorLog", "version", "cached"}``."""
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        host_of(record, vnfr, hostname)
        result: dict[str, Any] = await guarded(runtime.nfvo.logs(record, vnfr, hostname, since=since))
        return result

    return app


class ApiServer:
    """Serves the API inside the running event loop; writes ``<state dir>/api.json`` so the CLI finds it."""

    def __init__(self, runtime: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.runtime = runtime
        self.server = uvicorn.Server(uvicorn.Config(build_app(runtime), host=host, port=port, log_level="warning",
                                                    lifespan="off"))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None
        self.url = ""
        self.info_path = Path(runtime.state_dir) / "api.json"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        await asyncio.to_thread(write_private, self.info_path, json.dumps({"url": self.url}))
        log.info("event=api_started url=%s", self.url)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        with contextlib.suppress(FileNotFoundError):
            self.info_path.unlink()
