"""REST control API of a running ``gvnfm up``: network service records and day-2 operations.

Paths follow the Open Baton NFVO's REST API where one exists (``/api/v1/ns-records/{nsr}/vnfrecords/
{vnfr}/...``). ``{nsr}`` may be the NSR id, its name, or ``current`` (the only NSR).

Invariant: every route needs the run's token (in the 0600 ``api.json`` of the 0700 state folder) as
``Authorization: Bearer <token>`` or as the web page's cookie (state-changing requests with the cookie
also prove they come from the page): see ``gvnfm.api.access``. Open without it: ``/healthz``, the
OpenAPI page (``/docs``, its assets served from the installed ``swagger-ui-bundle`` package, and
``/openapi.json``: no data) and the web page's shell and assets (``/``, ``/ui/*``: see ``gvnfm.api.page``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request, Security
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from gvnfm.api.access import ALLOWED, CSRF_HEADER, FORBIDDEN, UNAUTHENTICATED, cookie_name, decide
from gvnfm.api.page import add_page
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


ASSETS = "/docs/assets"


def is_authorized(path: str, authorization: str | None, token: str) -> bool:
    """Whether a GET of ``path`` with this ``Authorization`` header may go on (no I/O)."""
    return decide(path, "GET", token, authorization=authorization) == ALLOWED


def _swagger_assets() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


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


class RestartBody(BaseModel):
    image: str | None = Field(None, description="rebuild the hosts from this image; default: the VDU's own")


class StartStopBody(BaseModel):
    hostname: str | None = Field(None, description="one VNFC instance; default: all")


def build_app(runtime: Any, token: str, closing: asyncio.Event | None = None) -> FastAPI:
    """``closing``: set when the server stops (ends the web page's event streams)."""
    # HTTPBearer(auto_error=False) only documents the scheme (the page's "Authorize" button);
    # the middleware below enforces it on every route, whatever its path
    app = FastAPI(title="gvnfm local control API", version="1", description=DESCRIPTION, docs_url=None,
                  redoc_url=None, dependencies=[Security(HTTPBearer(auto_error=False))])

    @app.middleware("http")
    async def bearer_token(request: Request, call_next: Any) -> Response:
        h = request.headers
        verdict = decide(request.url.path, request.method, token, authorization=h.get("authorization"),
                         cookie=request.cookies.get(cookie_name(request.url.port)), csrf_header=h.get(CSRF_HEADER),
                         origin=h.get("origin"), host=h.get("host"))
        if verdict == UNAUTHENTICATED:
            return JSONResponse({"detail": "missing or wrong bearer token (it is in api.json of the state folder)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if verdict == FORBIDDEN:
            log.warning("event=api_refused reason=cross_origin path=%s origin=%s", request.url.path, h.get("origin"))
            return JSONResponse({"detail": f"a state-changing request with the page's cookie needs the {CSRF_HEADER} "
                                           "header and this API's own origin"}, status_code=403)
        response: Response = await call_next(request)
        return response

    add_page(app, runtime, token, closing if closing is not None else asyncio.Event())

    assets = _swagger_assets()
    if assets is not None:
        app.mount(ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title,
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    @app.get("/healthz", summary="liveness (no token needed)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    from gvnfm.ops.http import add_metrics_route

    add_metrics_route(app)   # the in-process VNFM's metrics, as `gvnfm vnfm --http` serves them (token needed)

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

    @app.get("/api/v1/operations", summary="lifecycle operations of a network service, oldest first")
    async def list_operations(nsr: str = Query("current", description="NSR id or name, or `current`"),
                              vnfr: str | None = Query(None, description="only this VNFR's"),
                              steps: bool = Query(False, description="with each operation's script runs so far")
                              ) -> list[dict[str, Any]]:
        """``[{"id", "action", "vnfr", "state", "started_at", "ended_at", "error"}]`` (``ended_at`` null
        while RUNNING); with ``steps``, each also has ``"steps": [{"hostname", "event", "script",
        "exit_status", "duration"}]`` in the order they finished."""
        from gvnfm.local.history import operations

        record = nsr_of(nsr)
        if vnfr is not None:
            vnfr_of(record, vnfr)
        return await operations(runtime.store, record, vnfr, steps=steps)

    def has_scripts(nsr: NetworkServiceRecord, vnfr: str, event: str) -> bool:
        record = nsr.vnfrs[vnfr].vnfr or {}
        return any(le.get("event") == event and le.get("lifecycle_events")
                   for le in record.get("lifecycle_event") or [])

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
        return {"vnfcInstance": inst.to_wire() if inst else None, "scripts": has_scripts(record, vnfr, "HEAL")}

    @app.put("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/scripts/{name}",
             summary="replace a package script on every VNFC (UPDATE → SCRIPTS_UPDATE)")
    async def update_script(nsr: str, vnfr: str, name: str, body: ScriptBody) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        bundle = record.bundle
        package = bundle.packages.get(vnfr) if bundle is not None else None
        known = {s.name for s in package.scripts} if package is not None else set()
        if package is not None and package.scripts_link:
            served = Path(runtime.state_dir) / "catalogue"     # LocalRuntime.state_dir is resolved
            if served.is_absolute() and package.scripts_link.startswith(served.as_uri() + "/"):
                raise HTTPException(400, f"VNFR {vnfr!r} clones its scripts from a repository gvnfm made of "
                                         f"{package.origin} (its VNFD's vnfPackageLocation is not reachable): "
                                         "remove vnfPackageLocation from the VNFD to have gvnfm send the "
                                         "scripts itself (update-script then works), or redeploy")
            raise HTTPException(400, f"VNFR {vnfr!r} takes its scripts from {package.scripts_link}: "
                                     "update the repository instead")
        if name not in known:
            raise HTTPException(404, f"VNFR {vnfr!r} has no script {name!r} (it has {', '.join(sorted(known))})")
        await guarded(runtime.nfvo.update_script(record, vnfr, name, body.content, wait=False))
        return {"updated": name}

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/update",
              summary="run the UPDATE lifecycle event's scripts on every VNFC (none: nothing runs, as HEAL)")
    async def update_event(nsr: str, vnfr: str) -> dict[str, Any]:
        """``{"updated": vnfr, "scripts": false}`` when the VNFR has no UPDATE scripts."""
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        await guarded(runtime.nfvo.update_script(record, vnfr, None, None, wait=False))
        return {"updated": vnfr, "scripts": has_scripts(record, vnfr, "UPDATE")}

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

    @app.post("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/restart",
              summary="rebuild a VNFR's hosts and INSTANTIATE it again with its record (the NFVO's restart)")
    async def restart(nsr: str, vnfr: str, body: RestartBody) -> dict[str, Any]:
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        await guarded(runtime.deployment.restart(record, vnfr, body.image, wait=False))
        return {"status": record.vnfrs[vnfr].status, "hosts": list(record.vnfrs[vnfr].hosts)}

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

    @app.get("/api/v1/ns-records/{nsr}/vnfrecords/{vnfr}/runs/{hostname}",
             summary="every script run on one VNFC, oldest first (failed runs kept after a resume)")
    async def runs(nsr: str, vnfr: str, hostname: str) -> list[dict[str, Any]]:
        """``[{"event", "script", "exit_status", "stdout", "stderr", "started_at", "duration"}]``."""
        record = nsr_of(nsr)
        vnfr_of(record, vnfr)
        host_of(record, vnfr, hostname)
        data = await runtime.report(record)
        found = [c.get("scripts") or [] for v in data["vnfrs"] if v["name"] == vnfr
                 for c in v["vnfc"] if c["hostname"] == hostname]
        return sorted(found[0] if found else [], key=lambda r: r["started_at"])

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
    """Serves the API inside the running event loop; writes ``<state dir>/api.json`` (0600: url and
    this run's token) so the CLI finds it."""

    def __init__(self, runtime: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.runtime = runtime
        self.token = secrets.token_urlsafe(32)
        self.closing = asyncio.Event()
        self.server = uvicorn.Server(uvicorn.Config(build_app(runtime, self.token, self.closing), host=host, port=port,
                                                    log_level="warning",
                                                    lifespan="off"))
        from gvnfm.ops.http import quiet_signals

        quiet_signals(self.server)   # SIGTERM/SIGINT stay gvnfm up's (uvicorn would take them over)
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
        await asyncio.to_thread(write_private, self.info_path, json.dumps({"url": self.url, "token": self.token}))
        log.info("event=api_started url=%s", self.url)

    @property
    def page_url(self) -> str:
        """The web page's address, with the token the page exchanges for a cookie (print it, never log it)."""
        return f"{self.url}/?token={self.token}"

    async def stop(self) -> None:
        self.closing.set()
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        with contextlib.suppress(FileNotFoundError):
            self.info_path.unlink()
