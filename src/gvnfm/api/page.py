"""The web page of a running ``gvnfm up``: served at the control API's root, with its assets from the
package (``gvnfm/api/static``: no CDN, no build step) and a server-sent event stream of the
orchestrator's progress (the event hub the terminal view reads).

Invariants: the printed URL carries the run's token once (``/?token=...``); the page exchanges it for
an HttpOnly, SameSite=Strict cookie (per port, see ``access.cookie_name``) and redirects to ``/`` so
the token leaves the address bar and the history. The page itself holds no data: it reads the API with
the cookie, and the event stream only tells it *that* something changed (it then reads the records).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from gvnfm.api.access import cookie_name, token_matches

STATIC = Path(str(resources.files("gvnfm.api") / "static"))
#: the page's own assets only; inline script/style and every other origin refused
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: a comment line on an idle event stream, so proxies and the browser keep it open
KEEPALIVE_SECONDS = 15.0

SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>gvnfm up — sign in</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><main class="signin"><h1>gvnfm up</h1><p role="alert">{why}</p>
<p>Open the address <code>gvnfm up</code> printed when it started (it ends in <code>/?token=…</code>; a new
token every run), or read <code>url</code> and <code>token</code> from <code>api.json</code> in its state
folder.</p></main></body></html>
"""


def _page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff"}


def event_lines(kind: str, data: dict[str, Any]) -> str:
    """One server-sent event (no I/O)."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def add_page(app: FastAPI, runtime: Any, token: str, closing: asyncio.Event) -> None:
    """Routes of the page: ``/`` (token exchange or the page), ``/ui/*`` (assets), ``/api/v1/events``."""
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
    index = (STATIC / "index.html").read_text()

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        name = cookie_name(request.url.port)
        given = request.query_params.get("token")
        if given is not None:
            if not token_matches(given, token):
                return HTMLResponse(SIGN_IN.format(why="This address's token is not this run's."), 401,
                                    headers=_page_headers())
            response = RedirectResponse("/", status_code=303, headers=_page_headers())
            response.set_cookie(name, token, httponly=True, samesite="strict", path="/")
            return response
        if not token_matches(request.cookies.get(name), token):
            return HTMLResponse(SIGN_IN.format(why="This page needs the token of the running gvnfm up."), 401,
                                headers=_page_headers())
        return HTMLResponse(index, headers=_page_headers())

    @app.get("/api/v1/events", summary="server-sent events: the orchestrator's progress, as it happens",
             response_class=StreamingResponse)
    async def events() -> StreamingResponse:
        """``text/event-stream``: first ``event: hello``, then one ``event: progress`` per change
        (``{"nsr_id", "vnfr", "action", "state", "hostname", "event", "script", "message", "at"}``),
        a comment line every 15 s while idle. Ends when ``gvnfm up`` stops."""
        return StreamingResponse(_stream(runtime, closing), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _stream(runtime: Any, closing: asyncio.Event) -> AsyncIterator[str]:
    closed = asyncio.create_task(closing.wait())
    with runtime.nfvo.events.subscription() as queue:
        try:
            yield "retry: 1000\n" + event_lines("hello", {})
            while not closing.is_set():
                get = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({get, closed}, timeout=KEEPALIVE_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    if closed not in done:
                        yield ": keepalive\n\n"
                    continue
                yield event_lines("progress", get.result().as_dict())
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed
