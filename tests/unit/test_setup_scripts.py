"""The set-up scripts (scripts/*.sh): the RabbitMQ node decision with fake environments, and shellcheck.

A systemd Debian 12 VM cannot be booted here: what differs there (the package's post-install starts
``rabbit@<host name>``) is an input of ``rabbit_node_decide``, tested below.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
EPMD_WITH_RABBIT = "epmd: up and running on port 4369 with data:\nname rabbit at port 25672\n"
EPMD_WITHOUT_RABBIT = "epmd: up and running on port 4369 with data:\nname gvnfm-1a2b3c4d at port 41149\n"


def bash(snippet: str, *args: str) -> str:
    done = subprocess.run(["bash", "-c", f'. "{SCRIPTS}/rabbitmq-node.sh"; {snippet}', "bash", *args],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(("configured", "epmd", "expected"), [
    # systemd VM: the package's post-install started the default node; nothing configured
    ("", EPMD_WITH_RABBIT, "rabbit@vm1 no"),
    # container, fresh install: nothing runs; we start rabbit@localhost and write it down
    ("", "", "rabbit@localhost yes"),
    ("", EPMD_WITHOUT_RABBIT, "rabbit@localhost yes"),      # a private test node is not the broker
    # a name configured before (by an earlier run, or the operator) wins, running or not
    ("rabbit@localhost", EPMD_WITH_RABBIT, "rabbit@localhost no"),
    ("rabbit@localhost", "", "rabbit@localhost no"),
    ("broker", EPMD_WITH_RABBIT, "broker@vm1 no"),           # RabbitMQ appends the host name
])
def test_the_node_to_talk_to(configured: str, epmd: str, expected: str) -> None:
    assert bash('rabbit_node_decide "$1" "$2" "$3"', configured, epmd, "vm1") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("NODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\n", "rabbit@localhost"),
    ("# NODENAME=rabbit@commented\n#NODENAME=x\n", ""),        # Debian ships it commented out
    ('export NODENAME="rabbit@quoted"\n', "rabbit@quoted"),
    ("NODE_IP_ADDRESS=127.0.0.1\n", ""),
])
def test_the_configured_node_name(tmp_path: Path, text: str, expected: str) -> None:
    conf = tmp_path / "rabbitmq-env.conf"
    conf.write_text(text)
    assert bash('rabbit_envconf_nodename "$1"', str(conf)) == expected
    assert bash('rabbit_envconf_nodename "$1"', str(tmp_path / "absent")) == ""


def test_the_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (scripts/ensure-services.sh installs it)")
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    done = subprocess.run([shellcheck, "-x", "-S", "warning", *scripts], capture_output=True, text=True,
                          timeout=120, cwd=SCRIPTS.parent, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_apt_failure_is_reported_as_such(tmp_path: Path) -> None:
    """A failing apt-get is named with what it said, at once: not a wait that times out later."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package nosuch' >&2\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    snippet = (f'source <(sed -n "/^say()/,/^}}/p; /^apt_install()/,/^}}/p" "{SCRIPTS}/ensure-services.sh"); '
               'APT_UPDATED=1; apt_install nosuch; echo "status=$?"')
    done = subprocess.run(["bash", "-c", snippet], capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert "apt-get install nosuch failed" in done.stdout and "Unable to locate package" in done.stdout, done
    assert "status=1" in done.stdout


def test_a_bare_image_without_python_gets_it_installed(tmp_path: Path) -> None:
    """No python3 at all (exit 127 before): ensure-venv.sh installs python3 and python3-venv as root (here
    a fake apt-get that fails: its message is shown), and says what to install otherwise."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for prog in ("bash", "id", "tail", "rm", "cat"):
        found = shutil.which(prog)
        assert found, prog
        (fake / prog).symlink_to(found)
    (fake / "apt-get").write_text("#!/bin/bash\n[ \"$1\" = update ] && exit 0\necho 'E: no network' >&2\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    done = subprocess.run([str(fake / "bash"), str(SCRIPTS / "ensure-venv.sh")], capture_output=True, text=True,
                          timeout=60, check=False, cwd=tmp_path, env={"PATH": str(fake)})
    assert done.returncode == 1, done
    assert "no python3 on this machine" in done.stderr, done.stderr
    if subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout.strip() == "0":
        assert "installing python3 python3-venv with apt-get" in done.stderr
        assert "apt-get failed installing python3 python3-venv" in done.stderr and "E: no network" in done.stderr
    else:
        assert "apt-get install python3 python3-venv" in done.stderr


# -- ensure_rabbitmq end to end in a fake machine ----------------------------------------------------------
# Fake programs stand in for the packages: the node that "runs" is in $T/node, open ports are files
# $T/up-<port>, every call is noted in $T/calls. rabbitmqctl/rabbitmq-plugins answer only when asked
# about the node that runs (as the real ones: "Erlang distribution failed" otherwise).
FAKES = {
    "hostname": 'echo vm1\n',
    "epmd": '[ -e "$T/node" ] && { echo "epmd: up and running on port 4369 with data:"; '
            'n=$(cat "$T/node"); echo "name ${n%@*} at port 25672"; }\nexit 0\n',
    "start-node": 'n=$(sed -n "s/^NODENAME=//p" "$T/rabbitmq-env.conf" 2>/dev/null | tail -n 1)\n'
                  'echo "${n:-rabbit@vm1}" > "$T/node"; touch "$T/up-5672"\n',
    "systemctl": 'echo "systemctl $*" >> "$T/calls"; [ "$1" = start ] && start-node\nexit 0\n',
    "rabbitmq-server": 'echo "rabbitmq-server $*" >> "$T/calls"; start-node\n',
    "rabbitmqctl": 'echo "rabbitmqctl $*" >> "$T/calls"\n'
                   '[ "$1" = -n ] && [ "$2" = "$(cat "$T/node" 2>/dev/null)" ] && exit 0\n'
                   'echo "TCP connection succeeded but Erlang distribution failed" >&2; exit 69\n',
    "rabbitmq-plugins": 'echo "rabbitmq-plugins $*" >> "$T/calls"\n'
                        '[ "$1" = -n ] && [ "$2" = "$(cat "$T/node" 2>/dev/null)" ] || exit 69\n'
                        'touch "$T/up-15672"\n',
}

HARNESS = r'''
T=$1 SYSTEMD=$2
export T PATH="$T/bin:$PATH"
ENSURE_SERVICES_SOURCED=1 . "$3/ensure-services.sh"
RABBIT_ENVCONF=$T/rabbitmq-env.conf
WAIT_SECONDS=3
need_root() { return 0; }
listening() { [ -e "$T/up-$2" ]; }
systemd_running() { [ "$SYSTEMD" = yes ]; }
rabbitmq_installed() { [ -e "$T/installed" ]; }
apt_install() {   # the package's post-install starts the default node where systemd runs
    echo "apt-get install $*" >> "$T/calls"; touch "$T/installed"
    if systemd_running; then systemctl start rabbitmq-server; fi
}
ensure_rabbitmq
echo "status=$?"
'''


def fake_machine(tmp_path: Path, *, systemd: bool, installed: bool = False, running: str | None = None,
                 envconf: str | None = None) -> tuple[str, list[str], str]:
    """Run ensure_rabbitmq on a fake machine; (its output, the calls it made, rabbitmq-env.conf)."""
    fake = tmp_path / "bin"
    fake.mkdir(parents=True)
    for name, body in FAKES.items():
        (fake / name).write_text("#!/bin/bash\n" + body)
        (fake / name).chmod(0o755)
    if installed:
        (tmp_path / "installed").touch()
    if running:
        (tmp_path / "node").write_text(running + "\n")
        (tmp_path / "up-5672").touch()
    if envconf is not None:
        (tmp_path / "rabbitmq-env.conf").write_text(envconf)
    done = subprocess.run(["bash", "-c", HARNESS, "bash", str(tmp_path), "yes" if systemd else "no", str(SCRIPTS)],
                          capture_output=True, text=True, timeout=120, check=False)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    conf = (tmp_path / "rabbitmq-env.conf").read_text() if (tmp_path / "rabbitmq-env.conf").exists() else ""
    return done.stdout + done.stderr, calls, conf


def test_a_fresh_systemd_vm_uses_the_node_the_package_started(tmp_path: Path) -> None:
    out, calls, conf = fake_machine(tmp_path, systemd=True)
    assert "status=0" in out and "now listening on 127.0.0.1:5672 (node rabbit@vm1)" in out, out
    assert "NODENAME" not in conf                                    # the running node is not renamed
    assert "rabbitmqctl -n rabbit@vm1 -q await_startup --timeout 5" in calls
    assert not any(c.startswith("rabbitmq-server") for c in calls)   # systemd started it, not us
    assert "rabbitmq-plugins -n rabbit@vm1 -q enable rabbitmq_management" in calls


def test_a_fresh_container_starts_rabbit_at_localhost_by_hand(tmp_path: Path) -> None:
    out, calls, conf = fake_machine(tmp_path, systemd=False)
    assert "status=0" in out and "(node rabbit@localhost)" in out, out
    assert conf == "NODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\n"
    assert "rabbitmq-server -detached" in calls and not any(c.startswith("systemctl") for c in calls)
    assert "rabbitmqctl -n rabbit@localhost -q await_startup --timeout 5" in calls
    assert "rabbitmq-plugins -n rabbit@localhost -q enable rabbitmq_management" in calls


def test_an_installed_but_stopped_broker_is_started_through_systemd(tmp_path: Path) -> None:
    out, calls, conf = fake_machine(tmp_path, systemd=True, installed=True)
    assert "status=0" in out and "(node rabbit@localhost)" in out, out
    assert "systemctl start rabbitmq-server" in calls and "NODENAME=rabbit@localhost" in conf


def test_a_running_broker_is_left_alone_and_gets_its_management_api(tmp_path: Path) -> None:
    out, calls, conf = fake_machine(tmp_path, systemd=True, installed=True, running="rabbit@vm1")
    assert "status=0" in out and "already listening on 127.0.0.1:5672, left alone" in out, out
    assert calls == ["rabbitmq-plugins -n rabbit@vm1 -q enable rabbitmq_management"] and conf == ""
    # a name configured earlier (by this script in a container) is the one asked
    out, calls, _ = fake_machine(tmp_path / "c", systemd=False, installed=True, running="rabbit@localhost",
                                 envconf="NODENAME=rabbit@localhost\n")
    assert "status=0" in out and calls == ["rabbitmq-plugins -n rabbit@localhost -q enable rabbitmq_management"]
