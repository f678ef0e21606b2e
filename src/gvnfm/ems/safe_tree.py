"""Writing into the scripts folder without ever following a symlink that is already there.

Invariant: every write of SAVE_SCRIPTS, SCRIPTS_UPDATE, SAVE_VNFR_DEPENDENCY and CLONE_SCRIPTS lands
inside the folder it names, whatever the folder already holds (links left by an earlier clone, or
planted by hand). Each path component below the folder is opened relative to its parent's file
descriptor with ``O_NOFOLLOW``; a file is written to a fresh temporary name (``O_EXCL``) and renamed
over its target, which replaces a symlink instead of writing through it. The folder itself is
resolved and checked by the caller (``ems.paths``).

A repository's own symlinks are copied as links, never followed by gvnfm: a clone replaces what is in
the way (a link where the repository has a folder is removed, not entered), and script names are
resolved by ``ems.paths``, which refuses names that lead outside the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from gvnfm.ems.fileio import write_all

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path component below the folder is a symlink (or not a folder): nothing is written."""


def _open_child_dir(parent_fd: int, name: str, *, create: bool, mode: int = 0o755) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=parent_fd)
        return _open_child_dir(parent_fd, name, create=False)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(exc.errno, f"{name!r} is a symlink or not a folder; nothing is written through it") \
                from None
        raise


@contextlib.contextmanager
def open_folder(root: Path, parts: tuple[str, ...] = (), *, create: bool = True) -> Iterator[int]:
    """A descriptor of ``root/parts...``, every component below ``root`` opened without following links
    (missing ones are made when ``create``, ``root`` too: it is the caller's resolved folder)."""
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            if part in ("", ".", ".."):
                raise UnsafePath(errno.EINVAL, f"path component {part!r} is not allowed")
            child = _open_child_dir(fd, part, create=create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _clear_folder_at(dir_fd: int, name: str) -> None:
    """Removes ``name`` when it is a real folder (symlinks inside are removed, never followed)."""
    st = _lstat_at(dir_fd, name)
    if st is not None and stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)


def _write_at(dir_fd: int, name: str, content: bytes, mode: int) -> None:
    tmp = f".{name[:64]}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            write_all(fd, content)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def write_file(root: Path, rel: PurePosixPath, content: bytes, mode: int) -> None:
    """Atomically write ``root/rel`` (folders made as needed); an existing symlink at any place is
    replaced or refused, never followed."""
    with open_folder(root, rel.parts[:-1]) as dfd:
        _write_at(dfd, rel.parts[-1], content, mode)


def append_file(root: Path, rel: PurePosixPath, text: str, mode: int) -> None:
    """Append to ``root/rel``; refused when it (or a folder on the way) is a symlink."""
    with open_folder(root, rel.parts[:-1]) as dfd:
        fd = os.open(rel.parts[-1], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                     dir_fd=dfd)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(text)


def merge_tree(src: Path, dst: Path, *, skip: frozenset[str] = frozenset({".git"})) -> None:
    """Copy the tree ``src`` (a fresh clone) over the folder ``dst``: files and links of ``src`` replace
    what ``dst`` has under the same name, folders are merged. Nothing in ``dst`` is ever followed: a
    link (or file) where ``src`` has a folder is removed first, a folder where ``src`` has a file or a
    link is removed first. ``skip``: names left out at the top level."""
    with open_folder(dst) as dfd:
        _merge(src, dfd, skip)


def _merge(src: Path, dfd: int, skip: frozenset[str]) -> None:
    with os.scandir(src) as entries:
        for entry in entries:
            if entry.name in skip:
                continue
            st = entry.stat(follow_symlinks=False)
            have = _lstat_at(dfd, entry.name)
            if stat.S_ISDIR(st.st_mode):
                if have is not None and not stat.S_ISDIR(have.st_mode):
                    os.unlink(entry.name, dir_fd=dfd)   # a link or a file: removed, never entered
                child = _open_child_dir(dfd, entry.name, create=True, mode=stat.S_IMODE(st.st_mode) or 0o755)
                try:
                    _merge(Path(entry.path), child, frozenset())
                finally:
                    os.close(child)
            elif stat.S_ISLNK(st.st_mode):
                _clear_folder_at(dfd, entry.name)
                tmp = f".{entry.name[:64]}.{uuid.uuid4().hex[:8]}.tmp"
                os.symlink(os.readlink(entry.path), tmp, dir_fd=dfd)
                os.replace(tmp, entry.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            elif stat.S_ISREG(st.st_mode):
                _clear_folder_at(dfd, entry.name)
                _write_at(dfd, entry.name, Path(entry.path).read_bytes(), stat.S_IMODE(st.st_mode))
            # anything else (a clone holds no devices or pipes) is left out
