"""Structured log lines: logfmt text (``ts=... level=... logger=... event=... key=value``) or JSON lines.

Invariants:
- every text line reads back with a logfmt parser: the values a call site substitutes (``%s``, ``%r``,
  ``%d``...) are quoted and escaped when they hold blanks, quotes, ``=`` or control characters; a
  message without ``event=`` is one quoted ``msg=``; a traceback is one quoted ``exc=``;
- a line logged while an operation runs carries its ``op``, ``vnfr`` and ``action`` (from
  :func:`bind_operation`, a contextvar, so the tasks an operation starts inherit it);
- the value of a key whose name says it is a secret (password, token, secret) is ``***``, and a
  ``scheme://user:password@`` in any value loses its password.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

_OPERATION: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("gvnfm_operation", default=None)
_SPEC = re.compile(r"%(?:\((?P<name>[^)]*)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
_KEY_BEFORE = re.compile(r"([A-Za-z_][\w.\-]*)=$")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s\"]+:)([^@\s\"]+)(@)")
_SECRET_KEYS = ("password", "passwd", "secret", "token")
_SECRET_IN_TEXT = re.compile(r"((?:password|passwd|secret|token)\w*[\"']?\s*[=:]\s*[\"']?)([^\s\"',;)]+)", re.I)
_BARE_OK = re.compile(r'^[^\s="\\\x00-\x1f\x7f]+$')


def bind_operation(op: str | None, vnfr: str | None, action: str | None) -> contextvars.Token[Any]:
    """Mark the current task (and the tasks it starts) as working for this operation."""
    return _OPERATION.set({k: v for k, v in (("op", op), ("vnfr", vnfr), ("action", action)) if v})


def unbind_operation(token: contextvars.Token[Any]) -> None:
    _OPERATION.reset(token)


def quote(value: str) -> str:
    """A logfmt value: bare when it can be, else double-quoted with ``\\`` escapes."""
    if _BARE_OK.match(value):
        return value
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    out = out.replace("\t", "\\t")
    out = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", out)
    return f'"{out}"'


def _mask(key: str | None, value: str) -> str:
    if key and any(s in key.lower() for s in _SECRET_KEYS) and value not in ("", "None"):
        return "***"
    low = value.lower()
    if "://" in value:
        value = _URL_PASSWORD.sub(r"\1***\3", value)
    if "pass" in low or "secret" in low or "token" in low:
        value = _SECRET_IN_TEXT.sub(r"\1***", value)
    return value


@functools.lru_cache(maxsize=2048)
def _template(template: str) -> tuple[tuple[str, str, bool | None], ...]:
    """(literal before, conversion spec, None when the value is no ``key=`` value, else whether the key
    names a secret) per ``%`` spec, and the tail as a last entry with an empty spec."""
    parts = []
    pos = 0
    for m in _SPEC.finditer(template):
        literal = template[pos:m.start()]
        key_m = _KEY_BEFORE.search(literal)
        secret = any(w in key_m.group(1).lower() for w in _SECRET_KEYS) if key_m else None
        parts.append((literal, m.group(), secret))
        pos = m.end()
    parts.append((template[pos:], "", None))
    return tuple(parts)


def _render_message(record: logging.LogRecord) -> str:
    """The message with every substituted value logfmt-quoted (and masked)."""
    template, args = record.msg, record.args
    if not isinstance(template, str) or not args or isinstance(args, dict):
        return _mask(None, record.getMessage())
    values = args if isinstance(args, tuple) else (args,)
    out: list[str] = []
    i = 0
    try:
        for literal, spec, secret in _template(template):
            out.append(literal)
            if not spec:
                continue
            if spec == "%%":
                out.append("%")
                continue
            text = spec % (values[i],)
            i += 1
            if spec[-1] not in "sra":            # a number: nothing to quote or hide
                out.append(text)
            elif secret is None:
                out.append(_mask(None, text))
            else:
                out.append("***" if secret and text not in ("", "None") else quote(_mask(None, text)))
    except (IndexError, TypeError, ValueError):
        return _mask(None, record.getMessage())
    return "".join(out)


class KeyValueFormatter(logging.Formatter):
    """logfmt lines (see the module's invariants)."""

    def fields(self, record: logging.LogRecord) -> tuple[str, dict[str, str]]:
        msg = _render_message(record)
        if "event=" not in msg:
            msg = f"msg={quote(msg)}"
        extra = {k: v for k, v in (_OPERATION.get() or {}).items() if f"{k}=" not in msg}
        return msg, extra

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg, extra = self.fields(record)
        line = f"ts={ts} level={record.levelname} logger={record.name} {msg}"
        if extra:
            line += "".join(f" {k}={quote(v)}" for k, v in extra.items())
        if record.exc_info:
            line += f" exc={quote(_mask(None, self.formatException(record.exc_info)))}"
        return line


def parse_logfmt(line: str) -> Iterator[tuple[str, str | None]]:
    """Key/value pairs of one logfmt line (bare keys give None); ValueError on a malformed line."""
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        if i >= n:
            return
        start = i
        while i < n and line[i] not in ' ="':
            i += 1
        key = line[start:i]
        if not key:
            raise ValueError(f"no key at column {i}: {line!r}")
        if i >= n or line[i] == " ":
            yield key, None
            continue
        if line[i] == '"':
            raise ValueError(f"quote inside key at column {i}: {line!r}")
        i += 1  # '='
        if i < n and line[i] == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ValueError(f"unterminated quoted value: {line!r}")
                c = line[i]
                if c == "\\":
                    nxt = line[i + 1:i + 2]
                    if nxt == "u":
                        buf.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                        continue
                    buf.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                buf.append(c)
                i += 1
            if i < n and line[i] != " ":
                raise ValueError(f"no blank after a quoted value at column {i}: {line!r}")
            yield key, "".join(buf)
        else:
            start = i
            while i < n and line[i] != " ":
                if line[i] in '="':
                    raise ValueError(f"unquoted {line[i]!r} in a value at column {i}: {line!r}")
                i += 1
            yield key, line[start:i]


class JsonFormatter(KeyValueFormatter):
    """One JSON object per line: ts, level, logger, then the line's keys (``msg`` for words that are
    not ``key=value``)."""

    def format(self, record: logging.LogRecord) -> str:
        msg, extra = self.fields(record)
        data: dict[str, Any] = {"ts": f"{record.created:.3f}", "level": record.levelname, "logger": record.name}
        words: list[str] = []
        try:
            for key, value in parse_logfmt(msg):
                if value is None:
                    words.append(key)
                else:
                    data.setdefault(key, value)
        except ValueError:
            data["msg"] = msg
        if words:
            data["text"] = " ".join(words)
        data.update(extra)
        if record.exc_info:
            data["exc"] = _mask(None, self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


FORMATTERS = {"text": KeyValueFormatter, "json": JsonFormatter}


def formatter(fmt: str = "text") -> logging.Formatter:
    try:
        return FORMATTERS[fmt]()
    except KeyError:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATTERS)}") from None


def setup_logging(level: str = "INFO", stream: object = None, fmt: str = "text") -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aio_pika", "aiormq", "sqlalchemy.engine", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
