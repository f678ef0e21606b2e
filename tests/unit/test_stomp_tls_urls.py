"""``stomp+ssl://`` URLs: the TLS parameters (``cafile``, ``certfile``, ``keyfile``, aiormq's names),
refused clearly when the URL is parsed (unknown parameter, TLS parameter on ``stomp://``, a missing or
unloadable file), never with the password; and what the transport asks stomp.py for (verification on,
host name checked). The handshakes themselves: tests/integration/test_stomp_tls.py."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import certifi
import pytest
import stomp
from yarl import URL

from gvnfm.ems.config import ConfigError, EmsConfig
from gvnfm.transport import TransportError
from gvnfm.transport.stomp import StompAddress, StompTransport

SECRET = "pw-Secret-4411"
CA = certifi.where()   # a real PEM bundle


def refused(url: str) -> str:
    with pytest.raises(TransportError) as info:
        StompAddress.parse(url)
    text = str(info.value)
    assert text.startswith("invalid broker URL stomp")
    assert SECRET not in text and "u:***@" in text
    return text


def test_tls_parameters_are_kept_as_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = StompAddress.parse(f"stomp+ssl://u:{SECRET}@broker:61614/ob?cafile={CA}&dialect=activemq")
    assert (a.ssl, a.cafile, a.certfile, a.keyfile, a.vhost, a.port) == (True, CA, None, None, "ob", 61614)
    monkeypatch.chdir(Path(CA).parent)
    assert StompAddress.parse(f"stomp+ssl://h/?cafile={Path(CA).name}").cafile == CA
    plain = StompAddress.parse("stomp+ssl://u:p@h")
    assert (plain.cafile, plain.certfile, plain.keyfile) == (None, None, None)   # the system's CAs


def test_unknown_parameters_are_refused(tmp_path: Path) -> None:
    assert "unknown parameter 'capath'" in refused(f"stomp+ssl://u:{SECRET}@h/?capath=/etc/ssl/certs")
    assert "known: dialect, cafile, certfile, keyfile" in refused(f"stomp+ssl://u:{SECRET}@h/?cafle={CA}")
    assert "known: dialect)" in refused(f"stomp://u:{SECRET}@h/?heartbeat=10")
    # aiormq's switch is named, and refused: the certificate is always verified
    assert "always verified" in refused(f"stomp+ssl://u:{SECRET}@h/?no_verify_ssl=1")
    assert "given 2 times" in refused(f"stomp+ssl://u:{SECRET}@h/?cafile={CA}&cafile={CA}")
    assert "'cafile' is empty" in refused(f"stomp+ssl://u:{SECRET}@h/?cafile=")


def test_tls_parameters_need_stomp_ssl() -> None:
    assert "cafile need stomp+ssl://" in refused(f"stomp://u:{SECRET}@h/?cafile={CA}")
    assert "certfile, keyfile need stomp+ssl://" in refused(f"stomp://u:{SECRET}@h/?certfile={CA}&keyfile={CA}")


def test_files_must_exist_and_load(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    assert f"cafile '{missing}' does not exist" in refused(f"stomp+ssl://u:{SECRET}@h/?cafile={missing}")
    assert "certfile" in refused(f"stomp+ssl://u:{SECRET}@h/?certfile={missing}")
    assert "does not exist" in refused(f"stomp+ssl://u:{SECRET}@h/?cafile={tmp_path}")   # a folder
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert "does not load as PEM certificates" in refused(f"stomp+ssl://u:{SECRET}@h/?cafile={garbage}")
    assert "do not load as a PEM certificate and its key" in refused(
        f"stomp+ssl://u:{SECRET}@h/?certfile={CA}")   # certificates, no key
    assert "keyfile needs certfile" in refused(f"stomp+ssl://u:{SECRET}@h/?keyfile={CA}")


class _Conn:
    """Stands for ``stomp.Connection12``: records ``set_ssl``, answers CONNECT as ActiveMQ."""

    made: list[_Conn] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ssl: dict[str, Any] | None = None
        self.listener: Any = None
        self.transport = SimpleNamespace(disconnect_socket=lambda: None)
        _Conn.made.append(self)

    def set_ssl(self, **kwargs: Any) -> None:
        self.ssl = kwargs

    def set_listener(self, name: str, listener: Any) -> None:
        self.listener = listener

    def connect(self, *args: Any, **kwargs: Any) -> None:
        self.listener.on_connected(SimpleNamespace(headers={"server": "ActiveMQ/5.17.2"}, body=b""))

    def disconnect(self) -> None:
        pass


async def test_stomp_py_is_asked_to_verify_the_certificate_and_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stomp, "Connection12", _Conn)
    _Conn.made.clear()
    for url, cafile in ((f"stomp+ssl://u:p@broker.example:61614/?cafile={CA}", CA),
                        ("stomp+ssl://u:p@broker.example:61614/", None)):
        t = StompTransport(url, connect_timeout=2)
        await t.connect()
        await t.close()
        assert _Conn.made[-1].ssl == {"for_hosts": [("broker.example", 61614)], "ca_certs": cafile,
                                      "cert_file": None, "key_file": None,
                                      "ssl_version": ssl.PROTOCOL_TLS_CLIENT, "verify": True}
    t = StompTransport("stomp://u:p@broker.example:61613/", connect_timeout=2)
    await t.connect()
    await t.close()
    assert _Conn.made[-1].ssl is None


def test_ems_properties_broker_cafile(tmp_path: Path) -> None:
    cfg = EmsConfig(broker_ip="10.0.0.9", broker_port=61614, protocol="stomp+ssl", username="ems", password=SECRET,
                    broker_cafile=CA, hostname="h-1", root=str(tmp_path))
    url = cfg.amqp_url()
    assert url.endswith(f"@10.0.0.9:61614/%2F?cafile={CA}")
    assert StompAddress.parse(url).cafile == CA
    assert "cafile" not in EmsConfig(protocol="stomp+ssl", broker_cafile="", hostname="h-1",
                                     root=str(tmp_path)).amqp_url()   # empty: unset
    # over AMQP too (amqps): the heartbeat kept, the CA after it
    amqps = EmsConfig(broker_ip="10.0.0.9", broker_port=5671, protocol="amqps", username="ems", password=SECRET,
                      broker_cafile=CA, heartbeat=30, hostname="h-1", root=str(tmp_path)).amqp_url()
    assert amqps.startswith("amqps://") and amqps.endswith(f"@10.0.0.9:5671/%2F?heartbeat=30&cafile={CA}")
    assert URL(amqps).query["cafile"] == CA   # as aiormq reads it
    for bad, why in (({"protocol": "stomp"}, "needs protocol amqps or stomp+ssl (the protocol is stomp)"),
                     ({"broker_port": 5672}, "needs protocol amqps or stomp+ssl (the protocol is amqp)"),
                     ({"protocol": "stomp+ssl", "broker_url": "stomp+ssl://u:p@h/"}, "not used with broker_url")):
        with pytest.raises(ConfigError, match=re.escape(f"broker_cafile: {why}")):
            EmsConfig(broker_cafile=CA, hostname="h-1", root=str(tmp_path), **bad)


def test_stomp_py_debug_frames_never_show_the_passcode(caplog: pytest.LogCaptureFixture) -> None:
    """stomp.py 9.0 logs each frame it sends at DEBUG; its own mask misses CONNECT's ``passcode:``."""
    caplog.set_level(logging.DEBUG, logger="stomp.py")
    lines = [b"CONNECT", b"\n", b"login:admin\n", f"passcode:{SECRET}\n".encode(), b"\n", b"\x00"]
    logging.getLogger("stomp.py").debug("sending frame: %s", stomp.utils.clean_lines(lines))
    assert SECRET not in caplog.text and "passcode:********" in caplog.text and "login:admin" in caplog.text
