"""What gvnfm mends in stomp.py 9.x, kept apart from the transport that uses it.

- stomp.py logs every frame it sends (DEBUG), CONNECT with the password: its mask wants a space after
  ``passcode:`` that the frame does not have (stomp.py 8.2 and 9.0). :class:`HidePasscode`, installed on
  the ``stomp.py`` logger when this module is imported, masks it before any handler sees the record.
- stomp.py 9.0 reads a TLS socket without blocking and takes an empty read (the broker closed) or a read
  error (a TLS alert) for "no data yet": its reader spins on the dead socket (a core at 100 %) and never
  reports the connection lost. :func:`end_on_tls_close` mends one connection's transport.

Both depend on stomp.py 9's internals (pyproject pins ``stomp-py>=9.0,<10``); the tests that fail
without them: ``tests/unit/test_stomp_tls_urls.py`` (the passcode) and ``tests/integration/test_stomp_tls.py``
(a broker restart and a refused client certificate over TLS).
"""

from __future__ import annotations

import logging
import re
import ssl
from typing import Any

import stomp.exception

_PASSCODE = re.compile(r"passcode:.*", re.DOTALL)


class HidePasscode(logging.Filter):
    """Masks CONNECT's ``passcode:`` in stomp.py's frame log, from ``passcode:`` to the end of the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "passcode:" in text:
            record.msg, record.args = _PASSCODE.sub("passcode:********", text), ()
        return True


logging.getLogger("stomp.py").addFilter(HidePasscode())


def end_on_tls_close(transport: Any) -> None:
    """stomp.py 9.0 reads a TLS socket without blocking and takes an empty read (the broker closed) or a
    read error (a TLS alert) for "no data yet": its reader spins on the dead socket (a core at 100 %) and
    never reports the connection lost. Here (this connection's transport only) an empty read or a read
    error other than want-read/want-write ends its loop, which then reports ``disconnected`` as it does
    for a plain socket. The error is kept for :func:`read_error`."""
    size = getattr(transport, "_Transport__recv_bytes", 16384)

    def receive_or_end() -> Any:
        try:
            data = transport.socket.recv(size)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise                                       # no data yet
        except InterruptedError:
            raise stomp.exception.InterruptedException() from None
        except Exception as exc:
            transport.gvnfm_read_error = exc
            transport.running = False
            raise
        if not data:
            transport.running = False
        return data

    transport.receive = receive_or_end


def read_error(transport: Any) -> BaseException | None:
    """The error that ended the reader of a transport mended by :func:`end_on_tls_close` (a TLS alert:
    the broker's own reason for closing), or None."""
    error = getattr(transport, "gvnfm_read_error", None)
    return error if isinstance(error, BaseException) else None
