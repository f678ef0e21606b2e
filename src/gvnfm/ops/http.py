"""The operators' HTTP endpoint of ``gvnfm vnfm --http`` and ``gvnfm ems --http``: ``/healthz``,
``/readyz`` and ``/metrics`` (Prometheus), served by uvicorn inside the daemon's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response

from gvnfm.ops.health import Health
from gvnfm.ops.metrics import exposition

log = logging.getLogger(__name__)


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``, or a bare port on 127.0.0.1) -> (host, port); ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host, int(port)


def build_ops_app(health: Health) -> FastAPI:
    app = FastAPI(title="gvnfm operations endpoint", docs_url=None, redoc_url=None, openapi_url=None)
    add_metrics_route(app)

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        code, body = await health.healthz()
        return PlainTextResponse(body, status_code=code)

    @app.get("/readyz")
    async def readyz() -> PlainTextResponse:
        code, body = await health.readyz()
        return PlainTextResponse(body, status_code=code)

    return app


def add_metrics_route(app: FastAPI) -> None:
    """``GET /metrics`` (the process's Prometheus registry) on any FastAPI app."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        data, ctype = exposition()
        return Response(data, media_type=ctype)


def quiet_signals(server: uvicorn.Server) -> None:
    """Leave SIGTERM/SIGINT to the daemon: uvicorn (>= 0.29) otherwise takes them over while it serves
    (``capture_signals``: the daemon's own handlers do not run) and raises them again when it stops."""
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]  # (older uvicorn)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]


class OpsServer:
    def __init__(self, listen: str, health: Health) -> None:
        host, port = parse_listen(listen)
        self.server = uvicorn.Server(uvicorn.Config(build_ops_app(health), host=host, port=port,
                                                    log_level="warning", lifespan="off", access_log=False))
        quiet_signals(self.server)
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not (self.server.started and self.server.servers and self.server.servers[0].sockets):
            if self._task.done():
                self._task.result()
                raise OSError("the HTTP endpoint did not start (address in use?)")
            await asyncio.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        log.info("event=http_started url=%s", self.url)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 1.0)
