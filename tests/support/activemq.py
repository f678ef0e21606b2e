"""A private ActiveMQ broker for tests that must stop or restart one (the shared instance that
``scripts/ensure-services.sh`` starts is never restarted).

``PrivateActiveMQ`` runs Debian's ActiveMQ (``/usr/share/activemq``) as a child process: its own
configuration (one STOMP connector on a free 127.0.0.1 port, no OpenWire, no JMX), KahaDB data and
temporary files under one temporary directory, the JVM flags of Debian's ``/usr/bin/activemq``.
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
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:%(port)d"/>
    </transportConnectors>
  </broker>
</beans>
"""

_LIVE: weakref.WeakSet[PrivateActiveMQ] = weakref.WeakSet()


def activemq_installed() -> bool:
    return JAR.is_file() and shutil.which("java") is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateActiveMQ:
    def __init__(self, start_timeout: float = 120.0) -> None:
        self.port = _free_port()
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="gvnfm-activemq-"))
        for sub in ("conf", "data", "tmp"):
            (self.dir / sub).mkdir()
        (self.dir / "conf" / "activemq.xml").write_text(_CONFIG % {"port": self.port})
        self._proc: subprocess.Popen[bytes] | None = None

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
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"ActiveMQ not listening on {self.port} after {self.start_timeout:g} s: {self.log_tail()}")

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

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.dir / "console.log").read_text(errors="replace").splitlines()[-lines:])
        return ""


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_LIVE):
        broker.cleanup()
