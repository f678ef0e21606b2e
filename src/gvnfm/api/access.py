"""Who may call the control API of a running ``gvnfm up`` (decisions only, no I/O).

Two ways to carry the run's token: the ``Authorization: Bearer`` header (CLI, scripts) and, for the web
page, an HttpOnly SameSite=Strict cookie set when the page's URL is opened with ``?token=`` once.

Invariants:
- every route needs the token except ``PUBLIC_PATHS`` and the static assets under ``ASSET_PREFIXES``
  (files from the package: no data), and the page at ``/``, which exchanges or asks for the token itself;
- a state-changing request (not GET/HEAD/OPTIONS) authenticated by the cookie only must also prove it
  comes from the page itself (cross-site request forgery): it carries ``X-Gvnfm-Request`` (a header
  another site's form cannot send, and a script of another origin cannot add without a CORS preflight
  this API never allows) and, when the browser sends ``Origin``, the API's own origin. The bearer
  header needs no such proof: a browser never adds it on its own.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

#: routes open without the token: liveness, the OpenAPI page (no data) and the web page's shell
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/openapi.json", "/"})
#: static files served from the package (Swagger UI's, the web page's)
ASSET_PREFIXES = ("/docs/assets/", "/ui/")
#: the header the web page sends with every state-changing request
CSRF_HEADER = "x-gvnfm-request"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ALLOWED, UNAUTHENTICATED, FORBIDDEN = 200, 401, 403


def cookie_name(port: int | None) -> str:
    """The cookie holding the token: per port, as cookies are not (two ``gvnfm up`` on one machine)."""
    return f"gvnfm_up_{port or 0}"


def token_matches(given: str | None, token: str) -> bool:
    return bool(given) and secrets.compare_digest(str(given).strip().encode(), token.encode())


def is_public(path: str) -> bool:
    if path in PUBLIC_PATHS:
        return True
    return any(path.startswith(p) for p in ASSET_PREFIXES) and ".." not in path.split("/")


def bearer_of(authorization: str | None) -> str | None:
    scheme, _, given = (authorization or "").partition(" ")
    return given if scheme.lower() == "bearer" else None


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether an ``Origin`` header (absent: no claim, true) names the API's own ``Host``."""
    if not origin:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


def decide(path: str, method: str, token: str, *, authorization: str | None = None, cookie: str | None = None,
           csrf_header: str | None = None, origin: str | None = None, host: str | None = None) -> int:
    """``ALLOWED``, ``UNAUTHENTICATED`` (no valid token) or ``FORBIDDEN`` (cookie without proof of origin)."""
    if is_public(path):
        return ALLOWED
    if token_matches(bearer_of(authorization), token):
        return ALLOWED
    if not token_matches(cookie, token):
        return UNAUTHENTICATED
    if method.upper() in SAFE_METHODS:
        return ALLOWED
    return ALLOWED if csrf_header and same_origin(origin, host) else FORBIDDEN
