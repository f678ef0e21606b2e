"""Local images: what a host's scripts find on it.

A VNFD's ``vm_image`` names an image. Local hosts run on the machine's own programs, so an image is
mostly a folder of *shims* put first on the scripts' ``PATH``: the ``default`` image (any name
matching ``default``, ``ubuntu*``, ``debian*``, ``centos*``) has ``sudo`` that runs the command as is,
``apt-get``/``apt``/``yum``/``dnf`` that succeed when the requested programs are already on the
machine (and fail naming the missing ones), ``service``/``systemctl`` that print what they would
do, and ``hostname`` that prints the host's own name (``$HOSTNAME``) on a process host. ``bare`` has no
shims. Definitions live in ``gvnfm/vim/images/<name>.json``; shell shims in
``gvnfm/vim/images/<name>/``; package-manager shims are Python (``gvnfm.vim.pkgshim``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from gvnfm.vim.base import VimError

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class UnknownImage(VimError):
    """A VNFD names an image no local VIM provides."""

    def __init__(self, name: str) -> None:
        self.image = name
        super().__init__(f'unknown image "{name}": this VIM has the images {known_images_text()}')


@dataclass(frozen=True)
class Image:
    name: str
    description: str
    patterns: tuple[str, ...]
    shims: Mapping[str, str] = field(default_factory=dict)      # command -> file in source, or "@<kind>"
    packages: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)  # manager -> pkg -> programs
    source: Path | None = None                                  # folder with the image's shell shims

    def matches(self, name: str) -> bool:
        low = name.strip().lower()
        return any(fnmatch.fnmatchcase(low, pattern.lower()) for pattern in self.patterns)

    def programs_for(self, manager: str, package: str) -> tuple[str, ...]:
        """The programs whose presence means ``package`` is installed (any of them); ``()`` means
        there is nothing to check (e.g. ``ca-certificates``)."""
        table = self.packages.get(manager, {})
        if package in table:
            return table[package]
        for pattern, programs in table.items():
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(package, pattern):
                return programs
        return (package,)

    def install_shims(self, dest: Path) -> Path | None:
        """Write the image's shims into ``dest/<image>/bin`` (executable) and return that folder;
        ``None`` for an image without shims. Idempotent; safe to call for every host."""
        if not self.shims:
            return None
        bin_dir = dest / self.name / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for command, origin in self.shims.items():
            target = bin_dir / command
            if origin.startswith("@"):
                text = (f"#!{sys.executable}\n"
                        "# gvnfm image shim (generated): see gvnfm/vim/pkgshim.py\n"
                        "import sys\n"
                        "from gvnfm.vim.pkgshim import main\n"
                        f"sys.exit(main({origin[1:]!r}, {self.name!r}, sys.argv[1:]))\n")
            else:
                if self.source is None:
                    raise VimError(f"image {self.name}: shim {command} has no source folder")
                text = (self.source / origin).read_text()
            _write_if_changed(target, text)
        return bin_dir

    def path(self, shim_dir: Path | None, base: str | None = None) -> str:
        """``PATH`` for a host's scripts: the shim folder first, then ``base`` (the machine's PATH)."""
        base = base if base is not None else os.environ.get("PATH", STANDARD_PATH)
        return f"{shim_dir}:{base}" if shim_dir is not None else base


def _write_if_changed(target: Path, text: str) -> None:
    try:
        if target.read_text() == text and os.access(target, os.X_OK):
            return
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)  # hosts are made concurrently
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _images_dir() -> Path:
    return Path(str(resources.files("gvnfm.vim").joinpath("images")))


def _load(path: Path) -> Image:
    data = json.loads(path.read_text())
    source = path.with_suffix("")
    packages = {manager: {pkg: tuple(progs) for pkg, progs in table.items()}
                for manager, table in data.get("packages", {}).items()}
    return Image(name=data["name"], description=data.get("description", ""),
                 patterns=tuple(data.get("patterns") or [data["name"]]),
                 shims=dict(data.get("shims", {})), packages=packages,
                 source=source if source.is_dir() else None)


@cache
def _catalogue() -> tuple[Image, ...]:
    images = [_load(p) for p in sorted(_images_dir().glob("*.json"))]
    # "default" first so that its patterns win; the rest by name.
    return tuple(sorted(images, key=lambda img: (img.name != "default", img.name)))


def known_images() -> list[Image]:
    return list(_catalogue())


def known_images_text() -> str:
    """``default (default, ubuntu*, debian*, centos*), bare``: each image with the names it answers to."""
    return ", ".join(f"{img.name} ({', '.join(img.patterns)})" if img.patterns != (img.name,) else img.name
                     for img in known_images())


def get_image(name: str) -> Image:
    """The image for a VNFD's ``vm_image`` name: an exact name first, then the patterns."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownImage(str(name))
    for image in _catalogue():
        if image.name == name.strip():
            return image
    for image in _catalogue():
        if image.matches(name):
            return image
    raise UnknownImage(name)


def image_exists(name: str) -> bool:
    """For the orchestrator's validation: ``validate(bundle, image_exists=image_exists)``."""
    try:
        get_image(name)
    except UnknownImage:
        return False
    return True
