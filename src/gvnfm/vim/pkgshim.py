"""Package-manager shims of the local images (``apt-get``/``apt``, ``yum``/``dnf``, ``add-apt-repository``).

A local host uses the machine's programs, so "installing" a package means checking that what the
package provides is already there: ``install`` succeeds when, for every package, one of its programs
(see the image's ``packages`` table; by default the package name itself) is on ``PATH``, or the
machine's own package database says it is installed; otherwise it fails naming what is missing and
how to fix it. ``update``, ``upgrade``, ``remove``... succeed without doing anything.

Invoked by the generated shim scripts: ``main("apt", "default", sys.argv[1:])``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from gvnfm.vim.images import Image, get_image

APT_ARG_OPTIONS = {"-o", "-c", "-t", "--option", "--config-file", "--target-release", "--default-release"}
YUM_ARG_OPTIONS = {"-c", "-d", "-e", "-x", "-R", "--config", "--debuglevel", "--errorlevel", "--exclude",
                   "--installroot", "--releasever", "--enablerepo", "--disablerepo", "--setopt",
                   "--repo", "--repoid"}
APT_NOOP = {"update", "upgrade", "dist-upgrade", "full-upgrade", "autoremove", "autopurge", "autoclean",
            "clean", "check", "remove", "purge", "build-dep", "source", "download", "changelog", "satisfy",
            "list", "search", "show", "policy", "edit-sources", "mark", "markauto", "unmarkauto", "hold",
            "unhold"}
YUM_NOOP = {"update", "upgrade", "makecache", "clean", "check-update", "remove", "erase", "autoremove",
            "groupinstall", "groupupdate", "groupremove", "group", "groups", "list", "info", "search",
            "repolist", "history", "distro-sync", "config-manager", "module", "provides", "whatprovides",
            "check", "swap"}


@dataclass
class Request:
    command: str | None = None
    packages: list[str] = field(default_factory=list)
    error: str | None = None


def parse(argv: Sequence[str], arg_options: set[str]) -> Request:
    req = Request()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest = args[i + 1:]
            if req.command is None and rest:
                req.command, rest = rest[0], rest[1:]
            req.packages.extend(rest)
            break
        if arg.startswith("-") and arg != "-":
            name = arg.split("=", 1)[0]
            if name in arg_options and "=" not in arg:
                if i + 1 >= len(args):
                    req.error = f"option {arg} requires an argument"
                    return req
                i += 2
                continue
            i += 1
            continue
        if req.command is None:
            req.command = arg
        else:
            req.packages.append(arg)
        i += 1
    return req


def package_name(spec: str) -> str:
    """``pkg=1.2``, ``pkg/stable``, ``pkg:amd64``, ``pkg-1.2.x86_64`` stay recognisable as ``pkg``."""
    name = spec.split("=", 1)[0].split("/", 1)[0]
    if ":" in name:
        name = name.split(":", 1)[0]
    return name.strip()


def _installed_in_machine_db(manager: str, package: str) -> bool:
    """Whether the machine's own package database has the package (dpkg on Debian, rpm on RHEL)."""
    probes = {"apt": ["dpkg-query", "-W", "-f=${Status}", package], "yum": ["rpm", "-q", package]}
    argv = probes[manager]
    if shutil.which(argv[0]) is None:
        return False
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    if manager == "apt":
        return done.returncode == 0 and done.stdout.strip().endswith("ok installed")
    return done.returncode == 0


def check_packages(image: Image, manager: str, packages: Sequence[str], path: str) -> tuple[list[str], list[str]]:
    """``(found lines, missing lines)`` for an install request."""
    found: list[str] = []
    missing: list[str] = []
    for spec in packages:
        if spec.endswith((".deb", ".rpm")) or spec.startswith((".", "/")):
            missing.append(f"{spec}: installing package files is not possible on a local host")
            continue
        pkg = package_name(spec)
        programs = image.programs_for(manager, pkg)
        if not programs:
            found.append(f"{pkg}: nothing to install on a local host")
            continue
        located = next((p for p in (shutil.which(prog, path=path) for prog in programs) if p), None)
        if located:
            found.append(f"{pkg}: already provided by {located}")
        elif _installed_in_machine_db(manager, pkg):
            found.append(f"{pkg}: already installed on this machine")
        else:
            wanted = " or ".join(f"'{p}'" for p in programs)
            missing.append(f"{pkg}: the program {wanted} is not on this machine (looked in PATH)")
    return found, missing


def _install(image: Image, manager: str, tool: str, packages: list[str], exit_code: int) -> int:
    if not packages:
        print(f"{tool} (gvnfm {image.name} image): nothing to install", file=sys.stderr)
        return 0
    found, missing = check_packages(image, manager, packages, os.environ.get("PATH", ""))
    for line in found:
        print(line)
    if missing:
        print(f"E: {tool} (gvnfm {image.name} image) cannot install on a local host, which uses the machine's "
              "own programs:", file=sys.stderr)
        for line in missing:
            print(f"E:   {line}", file=sys.stderr)
        print("E: install them on the machine (or choose an image that provides them) and deploy again.",
              file=sys.stderr)
        return exit_code
    return 0


def apt_main(image: Image, tool: str, argv: Sequence[str]) -> int:
    req = parse(argv, APT_ARG_OPTIONS)
    if req.error:
        print(f"E: {req.error}", file=sys.stderr)
        return 100
    if req.command is None:
        print(f"{tool} (gvnfm {image.name} image shim)\nUsage: {tool} [options] command [packages]", file=sys.stderr)
        return 1 if not argv else 0
    if req.command in ("install", "reinstall"):
        return _install(image, "apt", tool, req.packages, 100)
    if req.command in APT_NOOP:
        print(f"{tool} (gvnfm {image.name} image): '{req.command}' has nothing to do on a local host")
        return 0
    print(f"E: Invalid operation {req.command}", file=sys.stderr)
    return 100


def yum_main(image: Image, tool: str, argv: Sequence[str]) -> int:
    req = parse(argv, YUM_ARG_OPTIONS)
    if req.error:
        print(f"Error: {req.error}", file=sys.stderr)
        return 1
    if req.command is None:
        print(f"{tool} (gvnfm {image.name} image shim)\nUsage: {tool} [options] COMMAND [packages]", file=sys.stderr)
        return 1 if not argv else 0
    if req.command in ("install", "reinstall"):
        return _install(image, "yum", tool, req.packages, 1)
    if req.command in ("localinstall",):
        print(f"Error: {tool} (gvnfm {image.name} image): installing package files is not possible on a local host",
              file=sys.stderr)
        return 1
    if req.command in YUM_NOOP:
        print(f"{tool} (gvnfm {image.name} image): '{req.command}' has nothing to do on a local host")
        return 0
    print(f"Error: No such command: {req.command}.", file=sys.stderr)
    return 1


def apt_repository_main(image: Image, tool: str, argv: Sequence[str]) -> int:
    repos = [a for a in argv if not a.startswith("-")]
    print(f"{tool} (gvnfm {image.name} image): would add {' '.join(repos) or 'nothing'}; "
          "a local host uses the machine's programs, nothing done")
    return 0


def main(kind: str, image_name: str, argv: Sequence[str]) -> int:
    tool = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else kind
    try:
        image = get_image(image_name)
    except Exception as exc:  # a broken installation: say so instead of a traceback
        print(f"{tool}: gvnfm image shim cannot load image {image_name!r}: {exc}", file=sys.stderr)
        return 1
    handlers = {"apt": apt_main, "yum": yum_main, "apt-repository": apt_repository_main}
    handler = handlers.get(kind)
    if handler is None:
        print(f"{tool}: unknown gvnfm shim kind {kind!r}", file=sys.stderr)
        return 1
    return handler(image, tool, argv)
