"""Host names and host folders shared by the local VIMs."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from gvnfm.vim.base import VimError

_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
MAX_HOSTNAME = 253


def check_hostname(hostname: str, max_length: int = MAX_HOSTNAME) -> str:
    """A hostname is also a folder name and an AMQP queue name: letters, digits, ``.``, ``_``, ``-``."""
    if not isinstance(hostname, str) or not _HOSTNAME.match(hostname) or ".." in hostname:
        raise VimError(f"hostname {hostname!r} is not usable: use letters, digits, '.', '_' and '-' "
                       "(starting with a letter or digit)")
    if len(hostname) > max_length:
        raise VimError(f"hostname {hostname!r} is longer than {max_length} characters")
    return hostname


def fresh_dir(path: Path, mode: int = 0o755) -> Path:
    """An empty folder at ``path`` (whatever was there before is removed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=mode)
    return path


def remove_tree(path: Path) -> None:
    """Remove a host folder, including read-only or permission-less parts (overlay work dirs)."""
    if not path.exists() and not path.is_symlink():
        return

    def _fix(func: object, name: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name, ignore_errors=True)
            else:
                os.unlink(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=_fix)


def write_private(path: Path, text: str) -> None:
    """``text`` to ``path`` (its folder made if need be), readable by its owner only: a host's EMS
    properties (credentials) and the CA they name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
