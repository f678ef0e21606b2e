"""Secrets kept out of logs and printed text: the one function that masks URL credentials, and the
summary that stands for a refused message's body.

``mask_urls`` is used wherever a URL can be logged or printed (the log formatter applies it to every
line, so a library's exception text is covered too). Invariant: the password of a
``scheme://user:password@host`` never survives; ``https://token@host`` (a bare user in http(s) is a
token) becomes ``https://***@host``; ``ssh://git@host`` is kept.
"""

from __future__ import annotations

import hashlib
import json
import re

# scheme://userinfo@ -- greedy up to the last '@' before the path, so a password with '@' is covered
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"]*)@")
_ACTION = re.compile(r"[A-Za-z_]{1,40}")


def mask_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: ``amqp://user:***@host``."""
    def mask(m: re.Match[str]) -> str:
        scheme, userinfo = m["scheme"], m["userinfo"]
        user, colon, _ = userinfo.partition(":")
        if colon:
            return f"{scheme}{user}:***@"
        return f"{scheme}***@" if scheme.lower().startswith("http") else m[0]
    return _URL_USERINFO.sub(mask, text) if "://" in text else text


def body_summary(body: bytes | str) -> str:
    """How a refused message is logged instead of its body (which may hold configuration secrets):
    ``bytes=<n> action=<action or ?> sha256=<first 16 hex digits>``."""
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
    action = "?"
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and isinstance(data.get("action"), str) and _ACTION.fullmatch(data["action"]):
            action = data["action"]
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return f"bytes={len(raw)} action={action} sha256={hashlib.sha256(raw).hexdigest()[:16]}"
