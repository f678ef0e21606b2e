"""The web page's access rules (token in the URL once, then an HttpOnly cookie; cookie-authenticated
changes need the page's header and origin), its assets (from the package, nothing from another origin)
and its event stream (the orchestrator's event hub, unsubscribed when the stream ends)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest

from gvnfm.api.access import ALLOWED, FORBIDDEN, UNAUTHENTICATED, cookie_name, decide
from gvnfm.api.page import STATIC, _stream
from gvnfm.api.server import build_app
from gvnfm.orchestrator.events import EventHub, ProgressEvent

PAGE = "X-Gvnfm-Request"


@pytest.mark.parametrize("path,method,kw,verdict", [
    ("/", "GET", {}, ALLOWED),                                   # the page asks for the token itself
    ("/ui/app.js", "GET", {}, ALLOWED),
    ("/ui/../api/v1/ns-records", "GET", {}, UNAUTHENTICATED),
    ("/api/v1/events", "GET", {}, UNAUTHENTICATED),
    ("/api/v1/events", "GET", {"cookie": "tok"}, ALLOWED),
    ("/api/v1/ns-records", "GET", {"cookie": "tok2"}, UNAUTHENTICATED),
    ("/api/v1/x/scale-out", "POST", {"authorization": "Bearer tok"}, ALLOWED),      # no browser adds it
    ("/api/v1/x/scale-out", "POST", {"cookie": "tok"}, FORBIDDEN),                  # a cross-site form
    ("/api/v1/x/scale-out", "POST", {"cookie": "tok", "csrf_header": "page"}, ALLOWED),
    ("/api/v1/x/scale-out", "POST", {"cookie": "tok", "csrf_header": "page", "origin": "http://127.0.0.1:9",
                                     "host": "127.0.0.1:9"}, ALLOWED),
    ("/api/v1/x/scale-out", "POST", {"cookie": "tok", "csrf_header": "page", "origin": "http://evil.example",
                                     "host": "127.0.0.1:9"}, FORBIDDEN),
    ("/api/v1/x/scale-out", "POST", {"cookie": "tok", "csrf_header": "page", "origin": "null",
                                     "host": "127.0.0.1:9"}, FORBIDDEN),
    ("/api/v1/x/scripts/a.sh", "PUT", {"cookie": "tok"}, FORBIDDEN),
    ("/api/v1/x/scale-out", "POST", {"cookie": "bad", "csrf_header": "page"}, UNAUTHENTICATED),
])
def test_who_may_call_with_the_cookie(path: str, method: str, kw: dict[str, str], verdict: int) -> None:
    assert decide(path, method, "tok", **kw) == verdict


def test_one_cookie_per_port() -> None:
    assert cookie_name(8000) == "gvnfm_up_8000" != cookie_name(8001)


def fake_runtime() -> SimpleNamespace:
    return SimpleNamespace(nfvo=SimpleNamespace(nsrs={}, events=EventHub()), state_dir="/nonexistent")


def client(runtime: SimpleNamespace | None = None) -> httpx.AsyncClient:
    app = build_app(runtime or fake_runtime(), "tok")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000")


async def test_the_printed_token_becomes_an_httponly_cookie() -> None:
    async with client() as c:
        answer = await c.get("/?token=tok")
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("gvnfm_up_8000=tok;") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert answer.headers["referrer-policy"] == "no-referrer"
        page = await c.get("/")                                       # the client keeps the cookie
        assert page.status_code == 200 and '<script src="/ui/app.js"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "tok" not in page.text
        assert (await c.get("/api/v1/ns-records")).json() == []        # the API takes the cookie
        refused = await c.post("/api/v1/ns-records/current/vnfrecords/a/start", json={})
        assert refused.status_code == 403 and "x-gvnfm-request" in refused.json()["detail"]
        passed = await c.post("/api/v1/ns-records/current/vnfrecords/a/start", json={}, headers={PAGE: "page"})
        assert passed.status_code == 404                              # past the check: no such NSR


async def test_without_the_token_the_page_says_where_to_find_it() -> None:
    async with client() as c:
        for answer in (await c.get("/"), await c.get("/?token=nope")):
            assert answer.status_code == 401 and "gvnfm up" in answer.text and "api.json" in answer.text
            assert "set-cookie" not in answer.headers
        assert (await c.get("/api/v1/ns-records")).status_code == 401


async def test_every_asset_comes_from_the_package() -> None:
    files = sorted(p.name for p in STATIC.iterdir())
    assert files == ["app.css", "app.js", "index.html"]
    async with client() as c:
        for name in files:
            answer = await c.get(f"/ui/{name}")
            assert answer.status_code == 200, name
            # offline: no other origin (CDN, web font) is referenced
            assert "http://" not in answer.text and "https://" not in answer.text and "//cdn" not in answer.text


async def test_the_event_stream_follows_the_hub_and_ends_with_the_server() -> None:
    runtime, closing = fake_runtime(), asyncio.Event()
    hub: EventHub = runtime.nfvo.events
    stream = _stream(runtime, closing)
    first = await anext(stream)
    assert first.startswith("retry: 1000\n") and "event: hello" in first
    hub.emit(ProgressEvent(nsr_id="n1", vnfr="app", action="SCALE_OUT", state="SCALING"))
    chunk = await anext(stream)
    kind, data = chunk.strip().split("\n")
    assert kind == "event: progress"
    assert json.loads(data.removeprefix("data: "))["action"] == "SCALE_OUT"
    assert len(hub._listeners) == 1
    closing.set()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert hub._listeners == []                                      # unsubscribed
