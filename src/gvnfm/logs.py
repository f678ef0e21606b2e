"""Structured log lines: ``ts=... level=... logger=... event=... key=value``."""

from __future__ import annotations

import logging
import sys
import time

from gvnfm.redact import mask_urls


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg = record.getMessage()
        if "event=" not in msg:
            msg = f"msg={msg!r}"
        line = f"ts={ts} level={record.levelname} logger={record.name} {msg}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return mask_urls(line)   # whatever logged it (a library's error text too): no URL password


def setup_logging(level: str = "INFO", stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aio_pika", "aiormq", "sqlalchemy.engine", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
