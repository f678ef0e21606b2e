"""TLS to the broker, for both broker transports: the URL parameters, how their files are checked, the
client context, and what a failed handshake means.

The parameters have aiormq's ``amqps://`` names on every TLS URL (``stomp+ssl://`` too): ``cafile``
(PEM: the CAs that may sign the broker's certificate; absent, the system's CAs), ``certfile`` and
``keyfile`` (a client certificate; its key in ``certfile`` when ``keyfile`` is absent; not encrypted).

Invariants:
- the client context always requires the broker's certificate and checks its host name or IP address
  (``ssl.PROTOCOL_TLS_CLIENT``); nothing here turns that off;
- a certificate problem (the broker's certificate not verified: unknown CA, another name; or this
  client's certificate refused by the broker) is told apart from any other failure
  (:func:`certificate_problem`): retrying cannot cure it, so a transport refuses the connection at once
  instead of retrying until its ``connect_timeout``.
"""

from __future__ import annotations

import os
import socket
import ssl

#: The TLS query parameters of a broker URL (aiormq's names for ``amqps://``).
TLS_PARAMETERS = ("cafile", "certfile", "keyfile")


class _EncryptedKey(Exception):
    pass


class EncryptedKeyError(ValueError):
    """The client key is encrypted (OpenSSL would ask for its passphrase on the terminal)."""


def _no_passphrase() -> str:
    raise _EncryptedKey


def client_context(cafile: str | None, certfile: str | None, keyfile: str | None) -> ssl.SSLContext:
    """The certificate required, the host name checked; the system's CAs when there is no ``cafile``.
    An encrypted key raises :class:`EncryptedKeyError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()
    if certfile:
        _load_client_certificate(context, certfile, keyfile)
    return context


def _load_client_certificate(context: ssl.SSLContext, certfile: str, keyfile: str | None) -> None:
    try:
        context.load_cert_chain(certfile, keyfile or certfile, password=_no_passphrase)
    except _EncryptedKey:
        raise EncryptedKeyError(f"the key of {keyfile or certfile!r} is encrypted; give it unencrypted "
                                "(readable by this user only)") from None


def check_files(cafile: str | None, certfile: str | None, keyfile: str | None) -> None:
    """The files exist and load as the transport will load them (``ValueError`` naming the file)."""
    for name, path in (("cafile", cafile), ("certfile", certfile), ("keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{name} {path!r} does not exist (or is not a file)")
    if keyfile and not certfile:
        raise ValueError("keyfile needs certfile (the client certificate)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        try:
            context.load_verify_locations(cafile)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ValueError(f"cafile {cafile!r} does not load as PEM certificates: {exc}") from None
    if certfile:
        try:
            _load_client_certificate(context, certfile, keyfile)
        except EncryptedKeyError:
            raise
        except (ssl.SSLError, OSError, ValueError) as exc:
            files = f"certfile {certfile!r}" + (f" and keyfile {keyfile!r}" if keyfile else "")
            raise ValueError(f"{files} do not load as a PEM certificate and its key: {exc}") from None


def certificate_problem(exc: BaseException | None, *, cafile: str | None = None,
                        certfile: str | None = None) -> str | None:
    """The text of the certificate problem behind ``exc`` (a driver may wrap the ``ssl`` error: its causes
    are followed), or None when it is something else."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            trusted = (f"the CAs of cafile {cafile}" if cafile
                       else "the system's CAs (a private CA is given with ?cafile=)")
            return (f"the broker's TLS certificate was not accepted: certificate verify failed: "
                    f"{cause.verify_message or cause.reason or cause} (trusted: {trusted})")
        if isinstance(cause, ssl.SSLError) and "CERTIFICATE" in (cause.reason or ""):
            given = f"certfile {certfile}" if certfile else "none (certfile=, keyfile=)"
            return f"the broker refused this client's TLS certificate: {cause.reason} (given: {given})"
        cause = cause.__cause__ or cause.__context__
    return None


def handshake_failure(host: str, port: int, context: ssl.SSLContext, timeout: float, *,
                      listen: float = 0.0) -> OSError | None:
    """Why a TLS connection to ``host:port`` fails, for a driver that keeps the reason to itself: one
    handshake with ``context``, then ``listen`` seconds for what the broker says before the protocol
    starts (TLS 1.3: the refusal of a client certificate is an alert after the handshake); None when
    nothing fails (blocking: run it in a thread)."""
    try:
        with socket.create_connection((host, port), timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            if listen > 0:
                tls.settimeout(listen)
                tls.recv(1)
            return None
    except TimeoutError:     # nothing said: the broker waits for the client to speak
        return None
    except OSError as exc:   # ssl.SSLError included
        return exc
