"""Serve a local ``scripts/`` folder as a git repository (``file://`` URL), for VNFDs whose
``vnfPackageLocation`` / ``scripts-link`` points somewhere this machine cannot reach: the VNFM then
sends CLONE_SCRIPTS with the local URL, exactly as it would with the remote one.

The repository is a bare repository under ``<state_dir>/repos/`` named after a hash of the folder's
content, so loading the same scripts twice reuses it and changed scripts get a new repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Bound on every git command (they work on a handful of local files).
GIT_TIMEOUT = 60.0


class GitRepoError(Exception):
    """The repository could not be created (git missing, a git command failed)."""


def content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.relative_to(folder).parts):
        rel = path.relative_to(folder).as_posix()
        digest.update(rel.encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _git(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_AUTHOR_NAME": "gvnfm", "GIT_AUTHOR_EMAIL": "gvnfm@localhost",
           "GIT_COMMITTER_NAME": "gvnfm", "GIT_COMMITTER_EMAIL": "gvnfm@localhost"}
    try:
        done = subprocess.run(["git", "-c", "init.defaultBranch=master", "-c", "commit.gpgsign=false", *args],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise GitRepoError("git is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitRepoError(f"git {args[0]} took longer than {GIT_TIMEOUT:g} s") from exc
    if done.returncode != 0:
        raise GitRepoError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()}")


def serve_folder(folder: Path, state_dir: Path) -> str:
    """A ``file://`` URL of a bare repository holding the files of ``folder`` in one commit."""
    folder = folder.resolve()
    repos = (state_dir / "repos").resolve()
    repos.mkdir(parents=True, exist_ok=True)
    target = repos / f"{folder.name}-{content_hash(folder)[:16]}.git"
    if (target / "HEAD").is_file():
        return target.as_uri()
    with tempfile.TemporaryDirectory(dir=repos, prefix=".build-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(folder, work, ignore=shutil.ignore_patterns(".git"))
        _git(["init", "-q"], work)
        _git(["add", "-A"], work)
        _git(["commit", "-q", "--allow-empty", "-m", f"scripts of {folder.name}"], work)
        bare = Path(tmp) / "repo.git"
        _git(["clone", "-q", "--bare", str(work), str(bare)], Path(tmp))
        try:
            bare.rename(target)
        except OSError:
            if not (target / "HEAD").is_file():   # not a concurrent loader that won the race
                raise
    return target.as_uri()
