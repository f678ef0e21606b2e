"""Both examples deployed end to end with `gvnfm up --once`, as a user runs it: on the process VIM with
the in-memory transport and with RabbitMQ, and on the netns VIM with RabbitMQ; plus the ways a
deployment must fail before anything is deployed."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gvnfm.vim.reaper import processes_of
from tests.e2e.conftest import remember_secret
from tests.support.broker_admin import BrokerAdmin
from tests.support.netns import leftovers_of_run
from tests.support.services import unique

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"


def up_argv(path: Path, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gvnfm.cli.main", "up", str(path), "--once", "--plain", "--state-dir", str(state),
            "--api-port", "-1", *extra]


def up(path: Path, state: Path, *extra: str, timeout: float = 300) -> tuple[int, str, dict[str, Any] | None]:
    report = state / "report.json"
    proc = subprocess.run(up_argv(path, state, "--report", str(report), *extra),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    data = json.loads(report.read_text()) if report.exists() else None
    if state.is_dir():   # searched for passwords with every other log (tests/e2e/conftest.py)
        (state / f"cli-output-{unique('run')}.log").write_text(proc.stdout + proc.stderr)
    return proc.returncode, proc.stdout + proc.stderr, data


def scripts_of(report: dict[str, Any], vnf: str) -> dict[str, list[tuple[str, str, int, str]]]:
    vnfr = next(v for v in report["vnfrs"] if v["name"] == vnf)
    return {c["hostname"]: [(s["event"], s["script"], s["exit_status"], s["stdout"]) for s in c["scripts"]]
            for c in vnfr["vnfc"]}


def all_terminated(report: dict[str, Any]) -> None:
    assert report["nsr"]["status"] == "TERMINATED"
    assert {v["status"] for v in report["vnfrs"]} == {"TERMINATED"}
    states = {c["hostname"]: c["state"] for v in report["vnfrs"] for c in v["vnfc"]}
    assert states and set(states.values()) == {"TERMINATED"}, states


def check_chain(report: dict[str, Any]) -> None:
    all_terminated(report)
    app = scripts_of(report, "app")
    assert len(app) == 2, "two instances of the app VNFC"
    db_host = next(iter(scripts_of(report, "db")))
    for host, runs in app.items():
        events = [(e, s, st) for e, s, st, _ in runs]
        assert events == [("INSTANTIATE", "install.sh", 0), ("CONFIGURE", "db_configure.sh", 0),
                          ("START", "start.sh", 0), ("TERMINATE", "terminate.sh", 0)], (host, events)
        configure_out = runs[1][3]
        assert db_host in configure_out, configure_out    # the app saw the db's hostname
    web = scripts_of(report, "web")
    (web_runs,) = web.values()
    configures = [r for r in web_runs if r[0] == "CONFIGURE"]
    assert len(configures) == 2, "app_configure.sh runs once per app instance"
    assert {h for h in app} == {h for r in configures for h in app if h in r[3]}


def no_leftovers(state: Path, report: dict[str, Any]) -> None:
    """No process started on a host (daemons included) outlives the teardown."""
    hostnames = [c["hostname"] for v in report["vnfrs"] for c in v["vnfc"]]
    assert hostnames
    for hostname in hostnames:
        root = (state / "vim" / "hosts" / hostname).resolve()
        assert processes_of(root) == [], f"processes of {hostname} survived the teardown"


def test_chain_on_process_vim_in_memory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, out, report = up(EXAMPLES / "chain", state)
    assert code == 0, out
    assert report is not None
    check_chain(report)
    no_leftovers(state, report)
    # the state is its owner's only: the store holds full requests, the logs and report the deployment
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (state, state / "gvnfm.db", state / "up.log",
                                                               state / "report.json")}
    assert modes == {"state": 0o700, "gvnfm.db": 0o600, "up.log": 0o600, "report.json": 0o600}


@pytest.mark.rabbitmq
def test_chain_on_process_vim_with_rabbitmq(secret_broker: str, tmp_path: Path) -> None:
    code, out, report = up(EXAMPLES / "chain", tmp_path, "--broker", secret_broker)
    assert code == 0, out
    assert report is not None
    check_chain(report)
    no_leftovers(tmp_path, report)


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker", ["rabbitmq", pytest.param("activemq", marks=pytest.mark.activemq)])
def test_chain_on_process_vim_over_stomp(broker: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Every role (the local NFVO, the VNFM, the hosts' EMSs) over STOMP: RabbitMQ's plugin (a virtual
    host of the test's own, its exchange declared as the NFVO would) or ActiveMQ."""
    url = request.getfixturevalue("stomp_vhost" if broker == "rabbitmq" else "activemq_url")
    code, out, report = up(EXAMPLES / "chain", tmp_path, "--broker", url)
    assert code == 0, out
    assert report is not None
    check_chain(report)
    no_leftovers(tmp_path, report)


def _iperf_present() -> None:
    missing = [p for p in ("iperf", "screen") if shutil.which(p) is None]
    assert not missing, f"{missing} not installed: scripts/test.sh installs them (apt-get install iperf screen)"


def check_iperf(report: dict[str, Any]) -> None:
    server = scripts_of(report, "iperf-server")
    client = scripts_of(report, "iperf-client")
    (srv_runs,) = server.values()
    assert [(e, s, st) for e, s, st, _ in srv_runs][:2] == [("INSTANTIATE", "install.sh", 0),
                                                             ("INSTANTIATE", "install-srv.sh", 0)]
    (cli_runs,) = client.values()
    assert ("CONFIGURE", "server_configure.sh", 0) in [(e, s, st) for e, s, st, _ in cli_runs]


def test_iperf_on_process_vim_in_memory(tmp_path: Path) -> None:
    _iperf_present()
    code, out, report = up(EXAMPLES / "iperf", tmp_path)
    assert code == 0, out
    assert report is not None
    check_iperf(report)
    no_leftovers(tmp_path, report)


@pytest.mark.rabbitmq
def test_iperf_on_process_vim_with_rabbitmq(secret_broker: str, tmp_path: Path) -> None:
    _iperf_present()
    code, out, report = up(EXAMPLES / "iperf", tmp_path, "--broker", secret_broker)
    assert code == 0, out
    assert report is not None
    check_iperf(report)
    no_leftovers(tmp_path, report)


@pytest.fixture
def ems_user(amqp_vhost: str, rabbit_admin: BrokerAdmin) -> tuple[str, str, str]:
    """A broker user for the hosts' EMSs (needed when RabbitMQ listens on every interface: it refuses
    guest from the hosts' addresses)."""
    user, password = unique("gvnfm-ems"), unique("pw")
    vhost = amqp_vhost.rsplit("/", 1)[1]
    rabbit_admin.add_user(user, password)
    try:
        rabbit_admin.set_permissions(vhost, user, ".*", ".*", ".*")
        yield user, password, amqp_vhost
    finally:
        rabbit_admin.delete_user(user)


def _broker_on_loopback_only() -> bool:
    out = subprocess.run(["ss", "-Hltn", "sport = :5672"], capture_output=True, text=True).stdout
    addresses = [line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if len(line.split()) > 3]
    return bool(addresses) and all(a.startswith("127.") or a == "[::1]" for a in addresses)


@pytest.mark.rabbitmq
@pytest.mark.netns
@pytest.mark.parametrize("example,own_user", [("chain", False), ("iperf", True)])
def test_examples_on_netns_vim_with_rabbitmq(example: str, own_user: bool, ems_user: tuple[str, str, str],
                                             tmp_path: Path) -> None:
    """chain: the EMSs log in as guest (the VIM relays the bridge to the loopback-only broker);
    iperf: as a user of their own (--ems-user). A broker listening on every interface refuses guest
    from the hosts: then both use their own user."""
    from gvnfm.vim.netns import NetnsVim

    ok, reason = NetnsVim.available()
    if not ok:
        print(f"netns VIM unavailable here: {reason}")
        pytest.skip(f"netns VIM unavailable here: {reason}")
    if example == "iperf":
        _iperf_present()
    user, password, url = ems_user
    remember_secret(password)
    # each netns host has a /tmp of its own: the state dir (with the scripts repository the hosts clone)
    # must be where hosts see it
    state = Path("/var/tmp") / unique("gvnfm-netns-test")
    try:
        own_user = own_user or not _broker_on_loopback_only()
        credentials = ["--ems-user", user, "--ems-password", password] if own_user else []
        code, out, report = up(EXAMPLES / example, state, "--broker", url, "--vim", "netns", *credentials)
        assert code == 0, out
        assert report is not None
        (check_chain if example == "chain" else check_iperf)(report)
        hostnames = [c["hostname"] for v in report["vnfrs"] for c in v["vnfc"]]
        assert hostnames
        assert leftovers_of_run(state, hostnames) == []     # links, mounts, processes, records
    finally:
        shutil.rmtree(state, ignore_errors=True)


# -- failures before anything is deployed ---------------------------------------------------------------

def _nsd(tmp: Path, mutate: Any) -> Path:
    root = tmp / "svc"
    shutil.copytree(EXAMPLES / "iperf", root)
    nsd = json.loads((root / "nsd.json").read_text())
    mutate(nsd)
    (root / "nsd.json").write_text(json.dumps(nsd))
    return root


@pytest.mark.parametrize("mutate,needle", [
    (lambda n: n["vnfd"][0]["lifecycle_event"][0].update(event="INSTALL"), '"INSTALL" is not a lifecycle event'),
    (lambda n: n["vnfd"][0]["requires"].update({"nobody": {"parameters": ["x"]}}), "nobody"),
    (lambda n: n["vnfd"][1]["vdu"][0].update(vm_image=["no-such-image"]), "no-such-image"),
    (lambda n: n["vnfd"][1]["lifecycle_event"][0]["lifecycle_events"].append("missing.sh"), "missing.sh"),
])
def test_bad_descriptors_fail_before_anything_is_deployed(mutate: Any, needle: str, tmp_path: Path) -> None:
    code, out, report = up(_nsd(tmp_path, mutate), tmp_path / "state")
    assert code == 2, out
    assert needle in out
    hosts = tmp_path / "state" / "vim" / "hosts"
    assert not hosts.exists() or not any(hosts.iterdir())
    assert report is not None, "the refusal has a report"
    assert report["nsr"]["status"] == "ERROR" and report["vnfrs"] == []
    (error,) = report["errors"]
    assert needle in error["message"] and error["action"] == "ONBOARD"


def test_a_service_that_does_not_fit_is_refused_with_nothing_allocated(tmp_path: Path) -> None:
    code, out, report = up(EXAMPLES / "chain", tmp_path, "--capacity", "3")
    assert code == 1, out
    assert "Not enough resources" in out
    assert report is not None, "the refusal has a report"
    assert report["nsr"]["status"] == "ERROR" and report["nsr"]["name"]
    assert {v["name"] for v in report["vnfrs"]} == {"db", "app", "web"}
    assert all(v["vnfc"] == [] for v in report["vnfrs"])
    (error,) = report["errors"]
    assert "Not enough resources" in error["message"]


def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("target,needle", [
    ("does-not-exist", "no such file or folder"),
    ("bad.json", "not valid JSON"),
])
def test_a_service_that_does_not_load_is_one_line_and_exits(target: str, needle: str, tmp_path: Path) -> None:
    """Several runs at once: the exit used to hang now and then (the store closed under a task)."""
    (tmp_path / "bad.json").write_text('{"name": "svc", "vnfd": [')
    procs = [subprocess.Popen(up_argv(tmp_path / target, tmp_path / f"state{i}"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=ROOT) for i in range(4)]
    try:
        results = [(p.wait(timeout=60), p.communicate()[0]) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for code, out in results:
        assert code == 2, out
        (line,) = _lines(out)
        assert line.startswith("invalid network service: ") and needle in line, out


@pytest.mark.parametrize("extra,needle", [
    (["--vim", "foo"], "unknown VIM 'foo' (process or netns)"),
    (["--vim", "netns"], "the netns VIM needs a real broker"),
])
def test_a_wrong_option_is_one_line_without_traceback(extra: list[str], needle: str, tmp_path: Path) -> None:
    proc = subprocess.run(up_argv(EXAMPLES / "chain", tmp_path, *extra), capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    (line,) = _lines(out)
    assert line.startswith("cannot start: ") and needle in line, out


@pytest.mark.rabbitmq
def test_a_refused_broker_login_is_one_line_without_traceback(amqp_url: str, tmp_path: Path) -> None:
    url = f"amqp://nobody-gvnfm:{remember_secret('wrong-pw-13')}@" + amqp_url.split("@", 1)[-1].split("://", 1)[-1]
    proc = subprocess.run(up_argv(EXAMPLES / "chain", tmp_path, "--broker", url), capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    out = proc.stdout + proc.stderr
    (tmp_path / "cli-output.log").write_text(out)     # searched for the password (conftest)
    assert proc.returncode == 2, out
    (line,) = _lines(out)
    assert line.startswith("cannot start: ") and "refused" in line and "wrong" not in line, out


def test_an_unreachable_broker_is_one_line_without_traceback(tmp_path: Path) -> None:
    with socket.socket() as probe:     # a port nobody listens on: bound, never listened
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        url = f"amqp://guest:{remember_secret('secret-pw')}@127.0.0.1:{port}/"
        proc = subprocess.run(up_argv(EXAMPLES / "chain", tmp_path, "--broker", url), capture_output=True,
                              text=True, timeout=60, cwd=ROOT)
    out = proc.stdout + proc.stderr
    (tmp_path / "cli-output.log").write_text(out)
    assert proc.returncode == 2, out
    (line,) = _lines(out)
    assert line.startswith("cannot start: cannot connect to ") and f":{port}" in line, out
    assert "secret-pw" not in out                                 # the password is never printed


def _failing_service(root: Path) -> Path:
    """One VNF whose INSTANTIATE script writes to stderr and fails."""
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "install.sh").write_text("#!/bin/bash\necho installing on $hostname\n"
                                                  "echo \"no package [foo] on $hostname\" >&2\nexit 3\n")
    vnfd = {"name": "broken", "type": "broken", "vendor": "t", "version": "1", "endpoint": "generic",
            "vnfPackageLocation": "https://example.invalid/scripts.git",
            "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]}],
            "virtual_link": [{"name": "private"}], "deployment_flavour": [{"flavour_key": "m1.small"}],
            "vdu": [{"vm_image": ["ubuntu"], "scale_in_out": 1,
                     "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}]}
    (root / "nsd.json").write_text(json.dumps({"name": "broken", "vendor": "t", "version": "1",
                                               "vld": [{"name": "private"}], "vnfd": [vnfd]}))
    return root


def test_once_names_the_failed_vnfc_event_script_and_stderr(tmp_path: Path) -> None:
    code, out, report = up(_failing_service(tmp_path / "svc"), tmp_path / "state")
    assert code == 1, out
    assert report is not None
    (vnfc,) = report["vnfrs"][0]["vnfc"]
    host = vnfc["hostname"]
    failure = out[out.index("deployment failed"):]
    for needle in ("VNF broken", f"VNFC {host}", "event INSTANTIATE", "script install.sh",
                   f"no package [foo] on {host}"):
        assert needle in failure, (needle, out)
    # the report: every run with its stderr and timing, all TERMINATED, the failure in the errors
    all_terminated(report)
    (run,) = vnfc["scripts"]
    assert (run["event"], run["script"], run["exit_status"]) == ("INSTANTIATE", "install.sh", 3)
    assert run["stdout"] == f"installing on {host}\n" and run["stderr"] == f"no package [foo] on {host}\n"
    started = datetime.fromisoformat(run["started_at"])
    assert started.tzinfo is not None and abs((datetime.now(started.tzinfo) - started).total_seconds()) < 300
    assert isinstance(run["duration"], float) and 0 <= run["duration"] < 60
    assert any(e["hostname"] == host and e["script"] == "install.sh" for e in report["errors"]), report["errors"]


def test_mutual_dependencies_deploy(tmp_path: Path) -> None:
    script = "#!/bin/bash\necho \"$(basename $0) on $hostname peer=${a_hostname:-}${b_hostname:-}\"\n"
    root = tmp_path / "mutual"
    (root / "scripts").mkdir(parents=True)
    for name in ("install.sh", "a_conf.sh", "b_conf.sh"):
        (root / "scripts" / name).write_text(script)

    def vnfd(name: str, other: str) -> dict[str, Any]:
        return {"name": name, "type": name, "vendor": "t", "version": "1", "endpoint": "generic",
                "vnfPackageLocation": "https://example.invalid/scripts.git",
                "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]},
                                    {"event": "CONFIGURE", "lifecycle_events": [f"{other}_conf.sh"]}],
                "virtual_link": [{"name": "private"}], "deployment_flavour": [{"flavour_key": "m1.small"}],
                "requires": {other: {"parameters": ["hostname"]}},
                "vdu": [{"vm_image": ["ubuntu"], "scale_in_out": 1,
                         "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}]}

    (root / "nsd.json").write_text(json.dumps({"name": "mutual", "vendor": "t", "version": "1",
                                               "vld": [{"name": "private"}], "vnfd": [vnfd("a", "b"), vnfd("b", "a")]}))
    code, out, report = up(root, tmp_path / "state")
    assert code == 0, out
    assert report is not None
    for me, other in (("a", "b"), ("b", "a")):
        (runs,) = scripts_of(report, me).values()
        conf = [r for r in runs if r[0] == "CONFIGURE"]
        assert len(conf) == 1 and f"peer={other}-" in conf[0][3], runs


def readme_setup_commands() -> list[str]:
    """The shell commands of the README's set-up section, as a reader copies them."""
    section = (ROOT / "README.md").read_text().split("\n## Set-up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.strip()]


def test_the_readme_names_two_commands_and_ci_runs_the_second() -> None:
    assert readme_setup_commands() == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "exec bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_readmes_first_command_deploys_and_tears_down_the_chain_example(tmp_path: Path) -> None:
    """The README's first command, run as written in a copy of the project (its own .venv): it sets
    gvnfm up and deploys examples/chain end to end on the embedded defaults."""
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", ".git", ".gvnfm", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".coverage"))
    command = readme_setup_commands()[0]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    report = json.loads((project / ".gvnfm" / "chain-report.json").read_text())
    check_chain(report)


def kill_watchdog(state: Path, timeout: float = 30) -> None:
    """SIGKILL the watchdog of the `gvnfm up` on ``state`` (``gvnfm.vim.watchdog <hosts folder>``) and wait
    for its exit (its pidfd turns readable), so that it cannot reap the hosts when `up` dies."""
    needle = f"gvnfm.vim.watchdog\0{(state / 'vim' / 'hosts').resolve()}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    assert len(pids) == 1, f"one watchdog per gvnfm up: {pids}"
    fd = os.pidfd_open(pids[0])
    try:
        os.kill(pids[0], signal.SIGKILL)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(timeout * 1000), f"watchdog {pids[0]} still alive {timeout}s after SIGKILL"
    finally:
        os.close(fd)


def test_hosts_of_a_killed_gvnfm_up_are_removed_by_the_next_run(tmp_path: Path) -> None:
    """`gvnfm up` killed with SIGKILL, its watchdog killed first (alone, the watchdog reaps the hosts of a
    killed `up`: test_up_signals), leaves the iperf daemons (screen) of its hosts running; the next run
    on the same state dir kills them and removes the host folders."""
    _iperf_present()
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "gvnfm.cli.main", "up", str(EXAMPLES / "iperf"), "--plain",
                             "--state-dir", str(state), "--api-port", "-1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Ctrl-C tears it down" in line:
            break
    hosts = sorted((state / "vim" / "hosts").iterdir())
    assert len(hosts) == 2 and any(processes_of(h.resolve()) for h in hosts), "iperf -s runs on the server host"
    kill_watchdog(state)
    proc.kill()
    proc.wait()
    left = {h.name: processes_of(h.resolve()) for h in hosts}
    assert any(left.values()), "the daemons survive the kill of gvnfm up and its watchdog"
    code, out, _ = up(EXAMPLES / "chain", state)
    assert code == 0, out
    for h in hosts:
        assert processes_of(h.resolve()) == [] and not h.exists(), h.name
