"""`gvnfm up` as a user runs it, in real processes: one owner per state folder (a second `up` is
refused and changes nothing; a killed owner's leftovers are cleaned by the next), and a failed first
deployment kept in ERROR (no --once) that is fixed with `update-script` and `resume` from the command
line, with the scripts that already succeeded not run again."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gvnfm.vim.reaper import processes_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
IPERF = ROOT / "examples" / "iperf"
HANG_GUARD = 240.0


def gvnfm(*args: str, state: Path) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "gvnfm.cli.main", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


class Up:
    """A running `gvnfm up --plain` whose output lines are read as they come."""

    def __init__(self, path: Path, state: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gvnfm.cli.main", "up", str(path), "--plain", "--state-dir", str(state), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, text: str) -> str:
        """The output up to the first line containing ``text`` (fails if the process ends first)."""
        while True:
            line = self._q.get(timeout=HANG_GUARD)
            if line is None:
                pytest.fail(f"gvnfm up ended before {text!r}:\n{''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return "".join(self.lines)

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=HANG_GUARD)
        while (line := self._q.get(timeout=HANG_GUARD)) is not None:
            self.lines.append(line)
        return code


def hosts_of(state: Path) -> list[Path]:
    hosts = state / "vim" / "hosts"
    return sorted(p for p in hosts.iterdir() if p.is_dir()) if hosts.is_dir() else []


def watchdogs_of(state: Path) -> list[int]:
    """Pids of the watchdogs of ``gvnfm up`` on this state folder (``gvnfm.vim.watchdog <hosts folder>``)."""
    needle = f"gvnfm.vim.watchdog\0{(state / 'vim' / 'hosts').resolve()}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_one_owner_per_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Up(IPERF / "nsd.json", state)
    try:
        first.wait_for("network service ACTIVE")
        assert state.stat().st_mode & 0o777 == 0o700
        assert (state / "api.json").stat().st_mode & 0o777 == 0o600
        hosts = hosts_of(state)
        running = {h.name: processes_of(h.resolve()) for h in hosts}
        assert len(hosts) == 2 and all(running.values()), running    # iperf daemons left by the scripts
        api = (state / "api.json").read_text()

        # a second `up` on the same folder: refused at once, one line naming the folder and the owner
        code, out, err = gvnfm("up", str(IPERF / "nsd.json"), "--once", "--plain", "--api-port", "-1", state=state)
        assert code == 2, out + err
        lines = (out + err).strip().splitlines()
        assert lines == [f"state folder {state.resolve()} is in use by gvnfm up, pid {first.proc.pid}; "
                         "use --state-dir"], lines
        # ... and it changed nothing: same hosts, their daemons alive, the first's api.json and API work
        assert hosts_of(state) == hosts and all(processes_of(h.resolve()) for h in hosts)
        assert (state / "api.json").read_text() == api
        code, out, err = gvnfm("status", state=state)
        assert code == 0 and "ACTIVE" in out, out + err
        # iperf's VNFDs name an unreachable git URL: gvnfm serves scripts/ as a repository the hosts clone,
        # so a script cannot be replaced; the error says what to change
        fixed = tmp_path / "fixed.sh"
        fixed.write_text("#!/bin/bash\n")
        code, out, err = gvnfm("update-script", "iperf-client", "server_configure.sh", str(fixed), state=state)
        assert code == 1 and out == "" and "remove vnfPackageLocation from the VNFD" in err, out + err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    finally:
        code = first.stop()
    assert code == 0, "".join(first.lines)
    assert hosts_of(state) == [] and not (state / "api.json").exists()

    # a killed owner whose watchdog was killed too (the watchdog alone reaps the hosts of a killed owner:
    # test_up_signals): its hosts and daemons stay behind; the next `up` (the lock is free) removes them
    killed = Up(IPERF / "nsd.json", state)
    killed.wait_for("network service ACTIVE")
    (watchdog,) = watchdogs_of(state)
    os.kill(watchdog, signal.SIGKILL)
    killed.stop(signal.SIGKILL)
    left = hosts_of(state)
    assert left and any(processes_of(h.resolve()) for h in left)
    code, out, err = gvnfm("up", str(IPERF / "nsd.json"), "--once", "-o", "json", "--api-port", "-1", state=state)
    assert code == 0, out + err
    events = [json.loads(line) for line in out.splitlines()]          # -o json: stdout is JSON lines only
    assert any(e["action"] == "DEPLOY" and e["state"] == "ACTIVE" for e in events), events
    assert "deployed, ACTIVE, torn down" in err
    assert all(not h.exists() for h in left) and all(processes_of(h.resolve()) == [] for h in left)


FAILING_CONFIGURE = """#!/bin/bash
echo "configuring against $server_private" >&2
echo "no server address given" >&2
exit 3
"""
FIXED_CONFIGURE = """#!/bin/bash
echo "client configured with server $server_hostname at $server_private"
"""


def test_a_failed_deployment_is_kept_fixed_and_resumed(tmp_path: Path) -> None:
    nsd = tmp_path / "iperf"
    shutil.copytree(IPERF, nsd)
    # without vnfPackageLocation the scripts/ folder beside the NSD is the VNFs' package: update-script works
    descriptor = json.loads((nsd / "nsd.json").read_text())
    for vnfd in descriptor["vnfd"]:
        vnfd.pop("vnfPackageLocation", None)
    (nsd / "nsd.json").write_text(json.dumps(descriptor))
    (nsd / "scripts" / "server_configure.sh").write_text(FAILING_CONFIGURE)
    fixed = tmp_path / "fixed.sh"
    fixed.write_text(FIXED_CONFIGURE)
    state = tmp_path / "state"
    report = tmp_path / "report.json"
    up = Up(nsd / "nsd.json", state, "--report", str(report))
    try:
        out = up.wait_for("Ctrl-C tears it down")
        assert "deployment failed" in out and "server_configure.sh" in out and "no server address given" in out, out
        assert "kept in ERROR" in out and f"gvnfm resume iperf-client --state-dir {state}" in out, out
        code, out, err = gvnfm("status", "-o", "json", state=state)
        assert code == 0, err
        status = json.loads(out)
        assert status["nsr"]["status"] == "ERROR"
        client = next(v for v in status["vnfrs"] if v["name"] == "iperf-client")
        assert client["status"] == "ERROR"
        host = client["vnfc"][0]["hostname"]
        assert (state / "vim" / "hosts" / host).is_dir(), "the failed VNF's host is kept"

        code, out, err = gvnfm("logs", "iperf-client", host, state=state)
        assert code == 0 and "no server address given" in out, out + err
        code, out, err = gvnfm("update-script", "iperf-client", "server_configure.sh", str(fixed), state=state)
        assert code == 0, out + err
        code, out, err = gvnfm("resume", "iperf-client", state=state)
        assert code == 0 and "ACTIVE" in out, out + err
        code, out, err = gvnfm("status", "-o", "json", state=state)
        assert json.loads(out)["nsr"]["status"] == "ACTIVE", out

        # the operation history: INSTANTIATE ok, MODIFY failed then resumed, START ok
        code, out, err = gvnfm("ops", "iperf-client", "-o", "json", state=state)
        assert code == 0, err
        ops = json.loads(out)
        assert [o["action"] for o in ops][:1] == ["INSTANTIATE"] and {o["vnfr"] for o in ops} == {"iperf-client"}
        assert all(o["started_at"] and o["ended_at"] for o in ops), ops
        # every run of the scripts, the failed one's output kept after the resume
        code, out, err = gvnfm("logs", "iperf-client", host, "--runs", state=state)
        assert code == 0, err
        assert out.count("INSTANTIATE install.sh: ok") == 1, out
        assert "CONFIGURE server_configure.sh: exit 3" in out and "no server address given" in out, out
        assert "CONFIGURE server_configure.sh: ok" in out and "client configured with server" in out, out
        assert out.index("exit 3") < out.index("server_configure.sh: ok")
        code, text, err = gvnfm("ops", state=state)
        assert code == 0 and "iperf-server" in text and "INSTANTIATE" in text, text + err
    finally:
        code = up.stop()
    assert code == 0, "".join(up.lines)
    data = json.loads(report.read_text())
    (client,) = [v for v in data["vnfrs"] if v["name"] == "iperf-client"]
    (runs,) = [c["scripts"] for c in client["vnfc"]]
    events = [(r["event"], r["script"], r["exit_status"]) for r in runs]
    # install.sh ran once (not again on resume); the failed configure's run is kept with its output
    assert events.count(("INSTANTIATE", "install.sh", 0)) == 1, events
    assert ("CONFIGURE", "server_configure.sh", 3) in events and ("CONFIGURE", "server_configure.sh", 0) in events
    failed = next(r for r in runs if r["exit_status"] == 3)
    assert "no server address given" in failed["stderr"] and failed["duration"] >= 0 and failed["started_at"]
    ok = next(r for r in runs if r["script"] == "server_configure.sh" and r["exit_status"] == 0)
    assert "client configured with server" in ok["stdout"]
    assert os.path.exists(state) and hosts_of(state) == []
