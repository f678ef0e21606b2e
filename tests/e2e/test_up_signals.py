"""`gvnfm up` as a user runs it, interrupted: a second Ctrl-C during the teardown removes the hosts
without waiting for the VNFM, the teardown is bounded on its own, and no process of a host (EMS,
script, daemon) outlives `gvnfm up`, kill -9 included. Real processes: `gvnfm up`, its hosts' EMS
and scripts; the VNFM "stops answering" because its TERMINATE script never ends."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gvnfm.vim.reaper import processes_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
HANG_GUARD = 180.0


DAEMON = "nohup sleep 600 >/dev/null 2>&1 &\necho \"daemon started on $hostname\""
STUCK = "echo terminating\nexec sleep 600"


def _service(root: Path, install: str = DAEMON, terminate: str = STUCK) -> Path:
    """One VNF, one VNFC: by default INSTANTIATE leaves a daemon behind, TERMINATE never ends."""
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "install.sh").write_text(f"#!/bin/bash\n{install}\n")
    (root / "scripts" / "terminate.sh").write_text(f"#!/bin/bash\n{terminate}\n")
    vnfd = {"name": "stuck", "type": "stuck", "vendor": "t", "version": "1", "endpoint": "generic",
            "vnfPackageLocation": "https://example.invalid/scripts.git",
            "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]},
                                {"event": "TERMINATE", "lifecycle_events": ["terminate.sh"]}],
            "virtual_link": [{"name": "private"}], "deployment_flavour": [{"flavour_key": "m1.small"}],
            "vdu": [{"vm_image": ["ubuntu"], "scale_in_out": 1,
                     "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}]}
    (root / "nsd.json").write_text(json.dumps({"name": "stuck", "vendor": "t", "version": "1",
                                               "vld": [{"name": "private"}], "vnfd": [vnfd]}))
    return root


class Up:
    """A running `gvnfm up` (its own process group, as a shell would start it)."""

    def __init__(self, tmp: Path, *extra: str, install: str = DAEMON, terminate: str = STUCK,
                 env: dict[str, str] | None = None) -> None:
        self.state = tmp / "state"
        self.hosts = (self.state / "vim" / "hosts").resolve()
        self.out = tmp / "up.out"
        svc = _service(tmp / "svc", install, terminate)
        argv = [sys.executable, "-m", "gvnfm.cli.main", "up", str(svc), "--plain", "--state-dir",
                str(self.state), "--api-port", "-1", "--script-timeout", "900", *extra]
        with self.out.open("wb") as fh:
            self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                         start_new_session=True, env=env)

    def log(self) -> str:
        path = self.state / "up.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, what: Callable[[], bool], text: str, *, alive: bool = True) -> None:
        """Wait until ``what()``; with ``alive``, `gvnfm up` exiting first is a failure."""
        deadline = time.monotonic() + HANG_GUARD
        while not what():
            assert not alive or self.proc.poll() is None or what(), \
                f"gvnfm up exited ({self.proc.returncode}) before {text}:\n{self.output()}"
            assert time.monotonic() < deadline, f"hang guard: {text}\n{self.output()}"
            time.sleep(0.1)

    def host_processes(self) -> list[int]:
        return processes_of(self.hosts, under=True)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def exit_code(self) -> int:
        try:
            return self.proc.wait(HANG_GUARD)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"hang guard: gvnfm up did not exit\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def up_factory(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def make(*extra: str, **kwargs: Any) -> Up:
        run = Up(tmp_path, *extra, **kwargs)
        started.append(run)
        return run

    yield make
    for run in started:
        run.kill()


def _active_with_daemon(run: Up) -> None:
    run.wait_for(lambda: "network service ACTIVE" in run.output(), "the service is ACTIVE")
    run.wait_for(lambda: bool(run.host_processes()), "the host's daemon runs")


def _releasing(run: Up) -> None:
    """The teardown has sent RELEASE_RESOURCES, which will not be answered (TERMINATE never ends)."""
    run.wait_for(lambda: "RELEASE_RESOURCES" in run.output(), "RELEASE_RESOURCES is sent")


def _nothing_left(run: Up) -> None:
    run.wait_for(lambda: not run.host_processes() and not any(run.hosts.iterdir()),
                 "every process and folder of the hosts is gone", alive=False)


def test_second_ctrl_c_tears_down_without_waiting(up_factory: Callable[..., Up]) -> None:
    run = up_factory("--teardown-timeout", "3600")
    _active_with_daemon(run)
    run.signal(signal.SIGINT)
    _releasing(run)
    assert run.proc.poll() is None            # still waiting for the VNFM's answer (within 3600 s)
    run.signal(signal.SIGINT)
    code = run.exit_code()
    out = run.output()
    assert "interrupted again: removing the hosts without waiting for the VNFM" in out, out
    assert code == 0 and "torn down" in out, out
    _nothing_left(run)


def test_teardown_is_bounded_on_its_own(up_factory: Callable[..., Up]) -> None:
    run = up_factory("--teardown-timeout", "2")
    _active_with_daemon(run)
    run.signal(signal.SIGTERM)                 # once: the teardown ends by itself
    code = run.exit_code()
    out = run.output()
    assert "did not answer within 2 s" in out and "torn down" in out, out
    assert code == 0 and "interrupted again" not in out, out
    _nothing_left(run)


@pytest.mark.rabbitmq
def test_no_host_process_survives_kill_9(up_factory: Callable[..., Up], amqp_vhost: str) -> None:
    """With RabbitMQ every host's EMS is a process of its own; after kill -9 of `gvnfm up` neither the
    EMS nor the daemon a script left behind survives (the EMS's parent-death signal, the watchdog)."""
    run = up_factory("--broker", amqp_vhost)
    _active_with_daemon(run)
    before = run.host_processes()
    assert any("gvnfm.ems" in _cmdline(pid) for pid in before), [_cmdline(p) for p in before]
    assert any(_cmdline(pid).startswith("sleep") for pid in before), [_cmdline(p) for p in before]
    run.signal(signal.SIGKILL)
    assert run.exit_code() == -signal.SIGKILL
    _nothing_left(run)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace").replace("\0", " ")
    except OSError:
        return ""


# -- SIGTERM/SIGINT in each phase: `up` ends promptly, tears down what it made, never answers half ------------

def _in_order(text: str, *parts: str) -> None:
    """Each of ``parts`` occurs in ``text``, in this order (runs of white space count as one space)."""
    text = " ".join(text.split())
    at = -1
    for part in (" ".join(p.split()) for p in parts):
        found = text.find(part, at + 1)
        assert found > at, f"{part!r} missing or out of order in:\n{text}"
        at = found


def _instantiate_unanswered(out: str) -> None:
    """The interrupted INSTANTIATE got no answer (the VNFM's operation was cancelled, not half answered)."""
    assert not re.search(r"INSTANTIATE\s+\S*\s*answered", out), out
    assert "DEPLOY ACTIVE" not in " ".join(out.split()) and "network service ACTIVE" not in out, out


def test_signal_while_connecting_ends_at_once(up_factory: Callable[..., Up]) -> None:
    """The broker refuses connections, so `up` keeps retrying (10 s): SIGTERM ends it without waiting."""
    with socket.socket() as held:       # bound, never listening: connections to it are refused
        held.bind(("127.0.0.1", 0))
        run = up_factory("--broker", f"amqp://guest:guest@127.0.0.1:{held.getsockname()[1]}/")
        run.wait_for(lambda: "event=amqp_connect_retry" in run.log(), "`up` retries connecting to the broker")
        run.signal(signal.SIGTERM)
        code = run.exit_code()
    out, log = run.output(), run.log()
    assert code == 130 and "interrupted while starting: nothing was deployed" in out, out
    assert "cannot connect" not in out and "Traceback" not in out, out
    _in_order(log, "event=amqp_connect_retry", "event=up_signal signal=SIGTERM", "event=up_interrupted phase=starting")
    assert "event=runtime_started" not in log, log
    assert not run.hosts.exists() or not any(run.hosts.iterdir())


def test_signal_mid_script_tears_down(up_factory: Callable[..., Up]) -> None:
    """SIGINT while an INSTANTIATE script runs: the deployment stops, its host (script included) goes,
    exit 130."""
    run = up_factory(install="exec sleep 600", terminate="echo bye")
    run.wait_for(lambda: "install.sh running" in run.output() and bool(run.host_processes()),
                 "the INSTANTIATE script runs")
    run.signal(signal.SIGINT)
    code = run.exit_code()
    out = run.output()
    assert code == 130, out
    assert "never retrieved" not in run.log() and "Traceback" not in out, run.log()
    _in_order(out, "install.sh running", "interrupted during deployment", "TEARDOWN started",
              "RELEASE_RESOURCES", "REMOVE_HOSTS done", "TEARDOWN TERMINATED")
    _instantiate_unanswered(out)
    _nothing_left(run)


@pytest.mark.rabbitmq
def test_signal_while_waiting_for_ems(up_factory: Callable[..., Up], amqp_vhost: str, tmp_path: Path) -> None:
    """The host's EMS process never registers (it hangs at start-up): SIGTERM during the VNFM's wait
    tears down without waiting out the EMS deadline or TERMINATE on a host that cannot run it."""
    hang = tmp_path / "hang"
    hang.mkdir()
    (hang / "sitecustomize.py").write_text('import sys, time\nif "gvnfm.ems" in sys.orig_argv:\n    time.sleep(600)\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hang), os.environ.get("PYTHONPATH")]))}
    run = up_factory("--broker", amqp_vhost, "--ems-start-timeout", "900", terminate="echo bye", env=env)
    run.wait_for(lambda: "WAIT EMS running" in run.output(), "the VNFM waits for the EMS")
    run.signal(signal.SIGTERM)
    code = run.exit_code()
    out = run.output()
    assert code == 130, out
    _in_order(out, "WAIT EMS running", "interrupted during deployment", "TEARDOWN started", "REMOVE_HOSTS done",
              "TEARDOWN TERMINATED")
    _instantiate_unanswered(out)
    assert "event=ems_registered" not in run.log()
    _nothing_left(run)


def test_sigterm_when_active_tears_down_and_exits_0(up_factory: Callable[..., Up]) -> None:
    run = up_factory(terminate="echo bye")
    _active_with_daemon(run)
    run.signal(signal.SIGTERM)
    code = run.exit_code()
    out = run.output()
    assert code == 0, out
    _in_order(out, "network service ACTIVE", "TEARDOWN started", "terminate.sh done",
              "RELEASE_RESOURCES ACTIVE answered", "REMOVE_HOSTS done", "torn down")
    _nothing_left(run)


def test_second_signal_mid_deployment(up_factory: Callable[..., Up]) -> None:
    """Two signals while a script runs whose TERMINATE never ends: `up` exits 130, its host removed."""
    run = up_factory(install="exec sleep 600")
    run.wait_for(lambda: "install.sh running" in run.output() and bool(run.host_processes()),
                 "the INSTANTIATE script runs")
    run.signal(signal.SIGTERM)
    run.wait_for(lambda: "TEARDOWN" in run.output(), "the teardown starts")
    run.signal(signal.SIGTERM)
    code = run.exit_code()
    out = run.output()
    assert code == 130, out
    _in_order(out, "interrupted during deployment", "TEARDOWN started",
              "interrupted again: removing the hosts without waiting for the VNFM", "REMOVE_HOSTS done")
    _instantiate_unanswered(out)
    _nothing_left(run)
