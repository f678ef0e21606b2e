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
