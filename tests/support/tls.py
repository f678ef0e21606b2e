"""A throw-away PKI for TLS tests, made with the ``openssl`` CLI (and ``keytool`` for Java's trust
store): a test CA, a server certificate it signs for ``127.0.0.1`` (subjectAltName
``IP:127.0.0.1,DNS:localhost``) in a PKCS12 key store, a client certificate it signs, and a second CA
that signed none of them. Everything lives in the folder given (the caller removes it); keys are EC
P-256 (quick to make), valid two days.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gvnfm.transport.amqp import AmqpTransport
from gvnfm.transport.lifecycle import ConnectRefused

#: far above what a refusal may take: a refusal within REFUSED_WITHIN was not retried until the deadline
CONNECT_TIMEOUT = 30.0
REFUSED_WITHIN = 5.0

_OPENSSL_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def tls_tools_installed() -> bool:
    return shutil.which("openssl") is not None and shutil.which("keytool") is not None


@dataclass(frozen=True)
class Pki:
    ca: Path                 #: the test CA's certificate (PEM): the ``cafile`` that verifies the server
    other_ca: Path           #: a CA that signed nothing here (PEM)
    server_cert: Path        #: the server's certificate (PEM), for 127.0.0.1 and localhost
    server_key: Path         #: its key (PEM, not encrypted), for a broker that reads PEM files (RabbitMQ)
    keystore: Path           #: the server's key and certificate chain (PKCS12), for the broker
    truststore: Path         #: the test CA (PKCS12, made by keytool), for a broker checking client certificates
    password: str            #: of both stores
    client_cert: Path        #: a client certificate the test CA signed (PEM)
    client_key: Path         #: its key (PEM, not encrypted)


def _run(*argv: str, cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _ca(folder: Path, name: str, conf: Path) -> None:
    _run("openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=gvnfm test {name}",
         "-config", str(conf), "-extensions", "ca", cwd=folder)


def _leaf(folder: Path, name: str, subject: str, ca: str, conf: Path) -> None:
    _run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, "-config", str(conf), cwd=folder)
    _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-set_serial", str(secrets.randbits(63)), "-days", "2", "-out", f"{name}.pem",
         "-extfile", str(conf), "-extensions", name, cwd=folder)


def make_pki(folder: Path) -> Pki:
    """The PKI in ``folder`` (created; 0700)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = folder / "openssl.cnf"
    conf.write_text(_OPENSSL_CONF)
    password = secrets.token_hex(12)
    _ca(folder, "ca", conf)
    _ca(folder, "other-ca", conf)
    _leaf(folder, "server", "/CN=127.0.0.1", "ca", conf)
    _leaf(folder, "client", "/CN=gvnfm test client", "ca", conf)
    _run("openssl", "pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key", "-certfile", "ca.pem",
         "-name", "server", "-out", "server.p12", "-passout", f"pass:{password}", cwd=folder)
    _run("keytool", "-importcert", "-noprompt", "-alias", "gvnfm-test-ca", "-file", "ca.pem",
         "-keystore", "trust.p12", "-storetype", "pkcs12", "-storepass", password, cwd=folder)
    return Pki(ca=folder / "ca.pem", other_ca=folder / "other-ca.pem", server_cert=folder / "server.pem",
               server_key=folder / "server.key", keystore=folder / "server.p12", truststore=folder / "trust.p12",
               password=password, client_cert=folder / "client.pem", client_key=folder / "client.key")


@pytest.fixture(scope="module")
def module_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A PKI for the test module (tests/conftest.py makes it a fixture of every module)."""
    if not tls_tools_installed():
        pytest.fail("openssl and keytool are needed for the test PKI (packages openssl, default-jre-headless)")
    return make_pki(tmp_path_factory.mktemp("pki"))


async def amqps_refused(url: str, secret: str) -> ConnectRefused:
    """Connect an AMQP transport to ``url``: the :class:`ConnectRefused` it raises, checked to come at once
    (not retried until ``connect_timeout``) and to be without ``secret`` (the URL's password)."""
    transport = AmqpTransport(url, connect_timeout=CONNECT_TIMEOUT, reconnect_initial=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectRefused) as caught:
            await transport.connect()
    finally:
        await transport.close()
    assert time.monotonic() - started < REFUSED_WITHIN, f"a certificate problem was retried: {caught.value}"
    assert secret not in str(caught.value)
    return caught.value
