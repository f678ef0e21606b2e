"""Images: lookup by vm_image name, and the default image's shims run for real as programs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gvnfm.vim.base import VimError
from gvnfm.vim.images import UnknownImage, get_image, image_exists, known_images

MISSING = "gvnfm-no-such-program-7f3a"


@pytest.mark.parametrize("name", ["ubuntu", "Ubuntu-16.04-server-cloudimg-amd64", "ubuntu-20.04", "debian 12",
                                  "centos7", "CentOS-7-x86_64-GenericCloud", "default"])
def test_default_image_names(name: str) -> None:
    assert get_image(name).name == "default"
    assert image_exists(name)


def test_bare_and_known() -> None:
    assert get_image("bare").name == "bare"
    assert get_image("bare").shims == {}
    names = [img.name for img in known_images()]
    assert names[0] == "default" and "bare" in names


@pytest.mark.parametrize("name", ["windows-2019", "fedora", "", "   ", "ubunt"])
def test_unknown_image(name: str) -> None:
    with pytest.raises(UnknownImage) as info:
        get_image(name)
    assert isinstance(info.value, VimError)
    assert "unknown image" in str(info.value) and "default" in str(info.value) and "bare" in str(info.value)
    assert not image_exists(name)


def test_package_table() -> None:
    image = get_image("default")
    assert image.programs_for("apt", "netcat") == ("nc", "netcat", "ncat")
    assert image.programs_for("apt", "openjdk-8-jre") == ("java",)
    assert image.programs_for("apt", "iperf3") == ("iperf3",)
    assert image.programs_for("apt", "ca-certificates") == ()
    assert image.programs_for("apt", "some-tool") == ("some-tool",)
    assert image.programs_for("yum", "java-1.8.0-openjdk") == ("java",)


@pytest.fixture
def shims(tmp_path: Path) -> Path:
    shim_dir = get_image("default").install_shims(tmp_path / "images")
    assert shim_dir is not None
    return shim_dir


@pytest.fixture
def machine_bin(tmp_path: Path) -> Path:
    """Programs "present on the machine": fake iperf, screen, nc, java."""
    bin_dir = tmp_path / "machine-bin"
    bin_dir.mkdir()
    for prog in ("iperf", "screen", "nc", "java"):
        (bin_dir / prog).write_text("#!/bin/sh\necho fake\n")
        (bin_dir / prog).chmod(0o755)
    return bin_dir


def run(shims: Path, machine_bin: Path, *argv: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = f"{shims}:{machine_bin}:/usr/bin:/bin"
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": path, "HOME": "/nonexistent", **(env or {})})


def test_install_shims_are_executable_and_idempotent(tmp_path: Path, shims: Path) -> None:
    names = sorted(p.name for p in shims.iterdir())
    assert names == sorted(get_image("default").shims)
    assert all(os.access(shims / n, os.X_OK) for n in names)
    again = get_image("default").install_shims(tmp_path / "images")
    assert again == shims
    assert get_image("bare").install_shims(tmp_path / "images") is None


@pytest.mark.parametrize("tool", ["apt-get", "apt"])
def test_apt_install_present_programs(shims: Path, machine_bin: Path, tool: str) -> None:
    done = run(shims, machine_bin, tool, "install", "-y", "-q", "iperf", "screen", "netcat", "openjdk-8-jre")
    assert done.returncode == 0, done.stderr
    assert f"iperf: already provided by {machine_bin}/iperf" in done.stdout
    assert f"netcat: already provided by {machine_bin}/nc" in done.stdout
    assert f"openjdk-8-jre: already provided by {machine_bin}/java" in done.stdout


def test_apt_install_missing_program_fails_naming_it(shims: Path, machine_bin: Path) -> None:
    done = run(shims, machine_bin, "apt-get", "-y", "install", "iperf", MISSING)
    assert done.returncode == 100
    assert f"{MISSING}: the program '{MISSING}' is not on this machine" in done.stderr
    assert "iperf" not in done.stderr.replace("iperf:", "")  # only the missing one is named as missing


def test_apt_install_mapped_missing_program_names_the_program(shims: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(["apt-get", "install", "-y", "iperf3"], capture_output=True, text=True, timeout=30,
                          check=False, env={"PATH": f"{shims}:{empty}"})
    assert done.returncode == 100
    assert "iperf3: the program 'iperf3' is not on this machine" in done.stderr


def test_apt_options_versions_and_noops(shims: Path, machine_bin: Path) -> None:
    done = run(shims, machine_bin, "apt-get", "-o", "Dpkg::Options::=--force-confold", "-qq", "--yes",
               "--no-install-recommends", "install", "screen=4.9.0-1", "iperf/stable", "nc:amd64")
    assert done.returncode == 0, done.stderr
    for args in (["update"], ["-qq", "update"], ["upgrade", "-y"], ["remove", "-y", "iperf"], ["autoremove"]):
        done = run(shims, machine_bin, "apt-get", *args)
        assert done.returncode == 0, (args, done.stderr)
    done = run(shims, machine_bin, "apt-get", "frobnicate")
    assert done.returncode == 100 and "Invalid operation frobnicate" in done.stderr
    done = run(shims, machine_bin, "apt-get", "install", "-o")
    assert done.returncode == 100 and "requires an argument" in done.stderr
    done = run(shims, machine_bin, "apt-get", "install", "./local.deb")
    assert done.returncode == 100 and "package files" in done.stderr


def test_yum_and_dnf(shims: Path, machine_bin: Path) -> None:
    done = run(shims, machine_bin, "yum", "install", "-y", "iperf", "nc", "java-1.8.0-openjdk")
    assert done.returncode == 0, done.stderr
    done = run(shims, machine_bin, "dnf", "-y", "--enablerepo", "epel", "install", MISSING)
    assert done.returncode == 1 and f"'{MISSING}' is not on this machine" in done.stderr
    assert run(shims, machine_bin, "yum", "makecache").returncode == 0
    assert run(shims, machine_bin, "yum", "-y", "update").returncode == 0
    assert run(shims, machine_bin, "yum", "install", "-y", "epel-release").returncode == 0


def test_sudo_runs_the_command_as_is(shims: Path, machine_bin: Path) -> None:
    cases = [
        (["sudo", "id", "-u"], str(os.getuid())),
        (["sudo", "-E", "sh", "-c", "echo $MARK"], "kept"),
        (["sudo", "-u", "someone", "-H", "sh", "-c", "echo $MARK"], "kept"),
        (["sudo", "-Eu", "someone", "echo", "cluster"], "cluster"),
        (["sudo", "-uroot", "echo", "attached"], "attached"),
        (["sudo", "--user=x", "--", "echo", "-n", "dash"], "dash"),
        (["sudo", "VAR=1", "sh", "-c", "echo v$VAR"], "v1"),
        (["sudo", "-n", "-S", "echo", "flags"], "flags"),
    ]
    for argv, expected in cases:
        done = run(shims, machine_bin, *argv, env={"MARK": "kept"})
        assert done.returncode == 0, (argv, done.stderr)
        assert done.stdout.strip() == expected, argv
    done = run(shims, machine_bin, "sudo", "sh", "-c", "exit 7")
    assert done.returncode == 7
    done = run(shims, machine_bin, "sudo")
    assert done.returncode == 1 and "usage" in done.stderr
    done = run(shims, machine_bin, "sudo", "-u")
    assert done.returncode == 1 and "requires an argument" in done.stderr
    # sudo apt-get goes through the apt-get shim (shim folder first on PATH)
    done = run(shims, machine_bin, "sudo", "apt-get", "install", "-y", MISSING)
    assert done.returncode == 100 and MISSING in done.stderr


def test_service_and_systemctl_print_what_they_would_do(shims: Path, machine_bin: Path) -> None:
    done = run(shims, machine_bin, "service", "nginx", "restart")
    assert done.returncode == 0 and "would run 'nginx restart'" in done.stdout
    done = run(shims, machine_bin, "systemctl", "enable", "--now", "iperf.service")
    assert done.returncode == 0 and "systemctl enable --now iperf.service" in done.stdout
    assert run(shims, machine_bin, "service").returncode == 1
    done = run(shims, machine_bin, "add-apt-repository", "-y", "ppa:x/y")
    assert done.returncode == 0 and "ppa:x/y" in done.stdout
