"""A private RabbitMQ node for tests that must stop or restart a broker.

The shared broker on 127.0.0.1:5672 is used by every engineer's tests at the same time and must never
be restarted. ``PrivateRabbit`` runs a second, throw-away node of the installed RabbitMQ:

- node name ``gvnfm-<random>@localhost``, AMQP and distribution ports picked free on 127.0.0.1;
- everything under one temporary directory: mnesia, logs, pid file, an empty ``rabbitmq-env.conf``
  (so /etc/rabbitmq/rabbitmq-env.conf does not leak in), its own ``rabbitmq.conf`` (so the system
  listener on 5672 is not reused), an empty enabled-plugins list (no management plugin), and its own
  ``HOME`` holding a private Erlang cookie (so it works as root or any user, and never reads or writes
  ``~/.erlang.cookie`` of the shared node);
- with ``tls`` (a test PKI, tests/support/tls.py): an AMQPS listener as well, with the PKI's server
  certificate for 127.0.0.1 and localhost, checking a client certificate when one is given
  (``verify_peer``) and requiring one only with ``require_client_certificate``;
- the scripts are run from RabbitMQ's own ``sbin`` directory, not Debian's ``/usr/sbin`` wrappers that
  ``su`` to the ``rabbitmq`` user (and would lose the environment above).

Every ``rabbitmqctl`` call names the private node explicitly (``-n``), and ``stop()`` refuses a node
whose name does not start with ``gvnfm-``. Nodes still running at interpreter exit are killed.

Usage in a test module (tests/conftest.py imports the ``private_rabbit`` fixture for every module; a
module importing it itself needs ``# noqa: F811`` on every test that takes it)::

    from tests.support.rabbit import PrivateRabbit

    async def test_x(private_rabbit: PrivateRabbit) -> None:
        ...
        private_rabbit.restart()
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.tls import Pki

_LIVE: weakref.WeakSet[PrivateRabbit] = weakref.WeakSet()


class RabbitError(RuntimeError):
    """The private node did not start or stop as asked."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rabbit_sbin() -> Path | None:
    """The directory of RabbitMQ's own scripts (``rabbitmq-server``, ``rabbitmqctl``), or None."""
    candidates = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"), reverse=True)
    candidates.append("/usr/lib/rabbitmq/bin")
    found = shutil.which("rabbitmq-server")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for directory in candidates:
        path = Path(directory)
        if (path / "rabbitmq-server").is_file() and (path / "rabbitmqctl").is_file():
            return path
    return None


class PrivateRabbit:
    """One private RabbitMQ node. ``start()``/``stop()``/``restart()`` block (call them from tests
    through ``asyncio.to_thread`` when an event loop must keep running meanwhile)."""

    def __init__(self, *, user: str = "guest", password: str = "guest", start_timeout: float = 90.0,
                 stomp: bool = False, tls: Pki | None = None, require_client_certificate: bool = False,
                 config: str = "", advanced: str = "") -> None:
        sbin = rabbit_sbin()
        if sbin is None:
            raise RabbitError("rabbitmq-server is not installed")
        self.sbin = sbin
        self.node = f"gvnfm-{secrets.token_hex(4)}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        while self.dist_port == self.port:
            self.dist_port = _free_port()
        #: with ``stomp``: the STOMP plugin enabled, listening on this port
        self.stomp_port = _free_port() if stomp else None
        #: with ``tls``: the AMQPS listener's port
        self.tls_port = _free_port() if tls is not None else None
        self.tls = tls
        self.require_client_certificate = require_client_certificate
        #: more ``rabbitmq.conf`` lines (e.g. ``consumer_timeout = 2000``), and an ``advanced.config`` (Erlang terms)
        self.config = config
        self.advanced = advanced
        self.user = user
        self.password = password
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="gvnfm-rabbit-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}
        self._prepare()

    # -- layout ---------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        home = self.dir / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text("[rabbitmq_stomp].\n" if self.stomp_port else "[].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "disk_free_limit.absolute = 1MB\n"
            "log.console = false\n"
            "log.file.level = info\n"
            + (f"stomp.listeners.tcp.1 = 127.0.0.1:{self.stomp_port}\n" if self.stomp_port else "")
            + self._tls_config()
            + (self.config.rstrip("\n") + "\n" if self.config else "")
        )
        if self.advanced:
            (self.dir / "advanced.config").write_text(self.advanced)
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir()

    def _tls_config(self) -> str:
        if self.tls is None:
            return ""
        return (f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {self.tls.ca}\n"
                f"ssl_options.certfile = {self.tls.server_cert}\n"
                f"ssl_options.keyfile = {self.tls.server_key}\n"
                "ssl_options.verify = verify_peer\n"
                f"ssl_options.fail_if_no_peer_cert = {str(self.require_client_certificate).lower()}\n")

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.dir / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    @property
    def url(self) -> str:
        return self.url_for(self.user, self.password)

    def url_for(self, user: str, password: str) -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    def amqps_url(self, *, host: str = "127.0.0.1", cafile: Path | None = None, certfile: Path | None = None,
                  keyfile: Path | None = None, password: str | None = None) -> str:
        """The AMQPS listener's URL (``tls`` only), with the TLS parameters given."""
        assert self.tls_port is not None, "PrivateRabbit(tls=...) has an AMQPS listener"
        query = "&".join(f"{name}={quote(str(path))}" for name, path in
                         (("cafile", cafile), ("certfile", certfile), ("keyfile", keyfile)) if path is not None)
        secret = quote(self.password if password is None else password, safe="")
        return f"amqps://{self.user}:{secret}@{host}:{self.tls_port}/" + (f"?{query}" if query else "")

    @property
    def stomp_url(self) -> str:
        """The STOMP plugin's URL (``stomp=True`` only)."""
        assert self.stomp_port is not None, "PrivateRabbit(stomp=True) has a STOMP listener"
        return f"stomp://{self.user}:{self.password}@127.0.0.1:{self.stomp_port}/"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- control --------------------------------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <private node> args...``."""
        proc = subprocess.run([str(self.sbin / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RabbitError(f"rabbitmqctl {' '.join(args)} failed ({proc.returncode}): "
                              f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def start(self) -> None:
        if self.running:
            return
        started = time.monotonic()
        log = (self.dir / "log" / "server.out").open("ab")
        try:
            self._proc = subprocess.Popen([str(self.sbin / "rabbitmq-server")], env=self.env, cwd=self.dir,
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        finally:
            log.close()
        _LIVE.add(self)
        try:
            self._await_startup(started)
        except BaseException:
            self._kill()
            raise
        self.timings["start"] = time.monotonic() - started

    def _await_startup(self, started: float) -> None:
        deadline = started + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RabbitError(f"rabbitmq-server exited with {self._proc.returncode}: {self.log_tail()}")
            remaining = max(5.0, deadline - time.monotonic())
            try:
                proc = self.ctl("await_startup", "--timeout", str(int(remaining)), timeout=remaining + 10,
                                check=False)
            except subprocess.TimeoutExpired:
                break
            if proc.returncode == 0:
                return
            last = proc.stderr.strip() or proc.stdout.strip()
            time.sleep(0.3)   # the node is not registered with epmd yet
        raise RabbitError(f"node {self.node} not up after {self.start_timeout:g} s: {last}\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the node (all client connections are closed)."""
        if not self.node.startswith("gvnfm-"):
            raise RabbitError(f"refusing to stop {self.node}: not a private node")
        if self._proc is None:
            return
        started = time.monotonic()
        if self.running:
            try:
                self.ctl("stop", timeout=60)
            except (RabbitError, subprocess.TimeoutExpired):
                pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._kill()
        self._proc = None
        self.timings["stop"] = time.monotonic() - started

    def restart(self, *, full: bool = False) -> None:
        """Drop every client connection and come back. By default ``stop_app``/``start_app`` (the Erlang
        VM stays up; connections are closed by the broker, transient queues are lost); ``full=True``
        stops and restarts the whole node."""
        started = time.monotonic()
        if full:
            self.stop()
            self.start()
        else:
            self.ctl("stop_app")
            self.ctl("start_app")
            self._await_startup(time.monotonic())
        self.timings["restart_full" if full else "restart"] = time.monotonic() - started

    def stop_app(self) -> None:
        """The broker application only: clients are disconnected and cannot reconnect until
        ``start_app``."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self._await_startup(time.monotonic())

    def add_user(self, name: str, password: str) -> None:
        self.ctl("add_user", name, password)
        self.ctl("set_permissions", "-p", "/", name, ".*", ".*", ".*")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def cleanup(self) -> None:
        """Stop the node (gracefully, else kill it) and remove its directory."""
        try:
            self.stop()
        finally:
            self._kill()
            _LIVE.discard(self)
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted((self.dir / "log").glob("*")):
            with contextlib.suppress(OSError):
                out.extend(f"{path.name}: {line}" for line in path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out[-lines:])


@atexit.register
def _kill_leftovers() -> None:
    for node in list(_LIVE):
        node._kill()
        shutil.rmtree(node.dir, ignore_errors=True)


def _started_node(**options: bool) -> Iterator[PrivateRabbit]:
    if rabbit_sbin() is None:
        pytest.fail("rabbitmq-server is not installed: cannot start a private broker "
                    "(run scripts/ensure-services.sh)")
    node = PrivateRabbit(**options)
    try:
        node.start()
        yield node
    finally:
        node.cleanup()


@pytest.fixture(scope="module")
def private_rabbit() -> Iterator[PrivateRabbit]:
    """A started private RabbitMQ node for the module. RabbitMQ not installed is a failure, not a skip
    (the suite's rule for its real services: CI installs it)."""
    yield from _started_node()


@pytest.fixture(scope="module")
def stomp_rabbit() -> Iterator[PrivateRabbit]:
    """The same, with its STOMP plugin listening (:attr:`PrivateRabbit.stomp_url`)."""
    yield from _started_node(stomp=True)
