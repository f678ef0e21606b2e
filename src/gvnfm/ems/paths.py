"""Safe resolution of names and folders coming from messages.

Policy (documented choice):
- a script ``name`` (SAVE_SCRIPTS, SCRIPTS_UPDATE, the first word of an EXECUTE payload) is a
  relative path inside the scripts folder: absolute names, ``..`` components, NUL bytes and names
  that resolve (through symlinks) outside the folder are refused;
- a ``script-path`` is honoured when it resolves to a folder equal to or below one of the allowed
  roots (by default only the agent's ``scripts_path``). The reference's default
  ``/opt/openbaton/scripts`` (what every VNFM sends) and folders below it always mean the agent's own
  scripts folder, so an agent with another ``scripts_path`` (or a ``root``) still works with a
  stock VNFM. A relative ``script-path`` is relative to the scripts folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from gvnfm.catalogue.ems import DEFAULT_SCRIPTS_PATH


class PathRefused(ValueError):
    """A name or folder from a message points outside what the agent allows."""


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _plain_below(base: Path, parts: tuple[str, ...]) -> Path | None:
    """``base/parts`` when none of its components below ``base`` is a symlink (one ``lstat`` per
    component instead of a ``realpath`` of the whole path); None when one is (or cannot be checked)."""
    path = base
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return base.joinpath(*parts)   # nothing below exists: there is no symlink to follow
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return path


def resolve_inside(folder: str | os.PathLike[str], name: str, *, folder_is_real: bool = False) -> Path:
    """``folder/name`` with symlinks resolved, refused unless it stays strictly inside ``folder``.

    ``folder_is_real``: the caller passes a folder it resolved itself (the agent's own scripts folder,
    or one this module returned): then only the components of ``name`` are checked, and the full
    resolution runs only when one of them is a symlink."""
    if not isinstance(name, str) or not name.strip():
        raise PathRefused("empty script name")
    if "\x00" in name:
        raise PathRefused(f"script name {name!r} contains a NUL byte")
    rel = PurePosixPath(name)
    if rel.is_absolute():
        raise PathRefused(f"script name {name!r} is absolute; names are relative to the scripts folder")
    if ".." in rel.parts:
        raise PathRefused(f"script name {name!r} contains '..'")
    if folder_is_real and rel.parts:
        plain = _plain_below(Path(folder), rel.parts)
        if plain is not None:
            return plain
    base = Path(folder).resolve()
    target = (base / rel).resolve()
    if target == base or base not in target.parents:
        raise PathRefused(f"script name {name!r} resolves outside the scripts folder {str(base)!r}")
    return target


def resolve_folder(value: str | None, *, default: str | os.PathLike[str],
                   allowed_roots: Sequence[str | os.PathLike[str]] = (),
                   alias: str = DEFAULT_SCRIPTS_PATH, when_absent: str | os.PathLike[str] | None = None,
                   default_is_real: bool = False) -> Path:
    """The folder a message's ``script-path`` designates. ``default`` is the agent's scripts folder
    (what the alias and relative values map to); ``when_absent`` (default: ``default``) is returned
    when the message has no ``script-path``. ``default_is_real``: ``default`` and ``when_absent``
    are already resolved (by the agent, once), and the alias or ``default`` itself maps to ``default``
    without resolving anything again."""
    default_path = Path(default) if default_is_real else Path(default).resolve()
    if value is None or (isinstance(value, str) and not value.strip()):
        if when_absent is None:
            return default_path
        return Path(when_absent) if default_is_real else Path(when_absent).resolve()
    if default_is_real and isinstance(value, str) and value.strip() in (alias, str(default_path)):
        return default_path
    if not isinstance(value, str):
        raise PathRefused(f"script-path must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise PathRefused("script-path contains a NUL byte")
    pure = PurePosixPath(value.strip())
    if ".." in pure.parts:
        raise PathRefused(f"script-path {value!r} contains '..'")
    if not pure.is_absolute():
        return _check(default_path / pure, value, default_path, allowed_roots)
    alias_path = PurePosixPath(alias)
    if pure == alias_path or alias_path in pure.parents:
        return _check(default_path / pure.relative_to(alias_path), value, default_path, allowed_roots)
    return _check(Path(pure), value, default_path, allowed_roots)


def _check(candidate: Path, value: str, default: Path, allowed_roots: Sequence[str | os.PathLike[str]]) -> Path:
    resolved = candidate.resolve()
    roots = [default, *(Path(r).resolve() for r in allowed_roots)]
    if any(_within(resolved, r) for r in roots):
        return resolved
    raise PathRefused(f"script-path {value!r} is outside the allowed folders {[str(r) for r in roots]}")
