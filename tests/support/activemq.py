"""A private ActiveMQ broker for tests that must stop or restart one (the shared instance that
``scripts/ensure-services.sh`` starts is never restarted).

``PrivateActiveMQ`` runs Debian's ActiveMQ (``/usr/share/activemq``) as a child process: its own
configuration (one STOMP connector on a free 127.0.0.1 port, no OpenWire, no JMX), KahaDB data and
temporary files under one temporary directory, the JVM flags of Debian's ``/usr/bin/activemq``.
``tls=True`` adds ``stomp+ssl`` connectors with a test PKI made in that directory
(``tests/support/tls.py``, ``self.pki``): ``tls_port`` on 127.0.0.1, ``tls_alias_port`` on 127.0.0.2
(an address the server certificate does not name), ``tls_client_auth_port`` on 127.0.0.1 requiring a
client certificate signed by the test CA.
``stop()`` ends that process only (SIGTERM, then SIGKILL); the data directory survives a restart
(persistent messages included).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from urllib.parse import quote

from tests.support.tls import Pki, make_pki

HOME = Path("/usr/share/activemq")
JAR = HOME / "bin" / "activemq.jar"
# as Debian's /usr/bin/activemq starts it on Java 17
_JVM_FLAGS = [
    "-Xms32M", "-Xmx256M", "-Djava.awt.headless=true", "--add-reads=java.xml=java.logging",
    *[f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.security", "java.base/java.net", "java.base/java.lang", "java.base/java.util",
        "java.naming/javax.naming.spi", "java.rmi/sun.rmi.transport.tcp", "java.base/java.util.concurrent",
        "java.base/java.util.concurrent.atomic")],
]
_CONFIG = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer"/>
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="gvnfm-test"
          dataDirectory="${activemq.data}">
    <persistenceAdapter><kahaDB directory="${activemq.data}/kahadb"/></persistenceAdapter>
%(ssl_context)s    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:%(port)d"/>
%(tls_connectors)s    </transportConnectors>
  </broker>
</beans>
"""

_SSL_CONTEXT = """    <sslContext>
      <sslContext keyStore="file:%(keystore)s" keyStorePassword="%(password)s" keyStoreType="pkcs12"
                  trustStore="file:%(truststore)s" trustStorePassword="%(password)s" trustStoreType="pkcs12"/>
    </sslContext>
"""
_TLS_CONNECTORS = """      <transportConnector name="stomp-ssl" uri="stomp+ssl://127.0.0.1:%(tls_port)d"/>
      <transportConnector name="stomp-ssl-alias" uri="stomp+ssl://127.0.0.2:%(tls_alias_port)d"/>
      <transportConnector name="stomp-ssl-client-auth" uri="stomp+ssl://127.0.0.1:%(tls_client_auth_port)d?needClientAuth=true"/>
"""

_LIVE: weakref.WeakSet[PrivateActiveMQ] = weakref.WeakSet()


def activemq_installed() -> bool:
    return JAR.is_file() and shutil.which("java") is not None


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PrivateActiveMQ:
    def __init__(self, start_timeout: float = 120.0, *, tls: bool = False) -> None:
        self.port = _free_port()
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="gvnfm-activemq-"))
        for sub in ("conf", "data", "tmp"):
            (self.dir / sub).mkdir()
        self.pki: Pki | None = None
        self.tls_port = self.tls_alias_port = self.tls_client_auth_port = 0
        values: dict[str, object] = {"port": self.port, "ssl_context": "", "tls_connectors": ""}
        if tls:
            try:
                self.pki = make_pki(self.dir / "tls")
            except BaseException:
                shutil.rmtree(self.dir, ignore_errors=True)
                raise
            self.tls_port, self.tls_alias_port = _free_port(), _free_port("127.0.0.2")
            self.tls_client_auth_port = _free_port()
            ports = {"tls_port": self.tls_port, "tls_alias_port": self.tls_alias_port,
                     "tls_client_auth_port": self.tls_client_auth_port}
            values["ssl_context"] = _SSL_CONTEXT % {"keystore": self.pki.keystore, "truststore": self.pki.truststore,
                                                   "password": self.pki.password}
            values["tls_connectors"] = _TLS_CONNECTORS % ports
        (self.dir / "conf" / "activemq.xml").write_text(_CONFIG % values)
        self._proc: subprocess.Popen[bytes] | None = None

    def _listening(self) -> list[tuple[str, int]]:
        addresses = [("127.0.0.1", self.port)]
        if self.pki is not None:
            addresses += [("127.0.0.1", self.tls_port), ("127.0.0.2", self.tls_alias_port),
                          ("127.0.0.1", self.tls_client_auth_port)]
        return addresses

    @property
    def url(self) -> str:
        return f"stomp://admin:admin@127.0.0.1:{self.port}/"

    def start(self) -> None:
        conf = self.dir / "conf"
        argv = ["java", *_JVM_FLAGS, f"-Djava.io.tmpdir={self.dir / 'tmp'}",
                f"-Dactivemq.classpath={conf}:{HOME / 'lib'}/", f"-Dactivemq.home={HOME}",
                f"-Dactivemq.base={self.dir}", f"-Dactivemq.conf={conf}", f"-Dactivemq.data={self.dir / 'data'}",
                "-jar", str(JAR), "start", f"xbean:file:{conf / 'activemq.xml'}"]
        with (self.dir / "console.log").open("ab") as out:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          cwd=self.dir, start_new_session=True)
        _LIVE.add(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"ActiveMQ exited with {self._proc.returncode}: {self.log_tail()}")
            if all(_port_open(address) for address in self._listening()):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"ActiveMQ not listening on {self._listening()} after {self.start_timeout:g} s: "
                           f"{self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            _LIVE.discard(self)
            shutil.rmtree(self.dir, ignore_errors=True)

    def tls_url(self, port: int | None = None, host: str = "127.0.0.1", password: str = "admin",
                **query: str | Path) -> str:
        """``stomp+ssl://`` to a TLS connector (``tls_port`` by default), with ``query`` parameters (the
        broker checks no credentials)."""
        params = "&".join(f"{key}={quote(str(value), safe='/')}" for key, value in query.items())
        return (f"stomp+ssl://admin:{quote(password, safe='')}@{host}:{port or self.tls_port}/"
                + (f"?{params}" if params else ""))

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.dir / "console.log").read_text(errors="replace").splitlines()[-lines:])
        return ""


def _port_open(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_LIVE):
        broker.cleanup()
