"""Names and folders from messages never escape the scripts folder / the allowed roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gvnfm.ems.paths import PathRefused, resolve_folder, resolve_inside


@pytest.fixture()
def scripts(tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (tmp_path / "outside").mkdir()
    return folder


@pytest.mark.parametrize("name", ["../../etc/x", "/etc/passwd", "a/../../x", "..", "", "   ", "a\x00b", "."])
def test_traversal_names_refused(scripts: Path, name: str) -> None:
    with pytest.raises(PathRefused):
        resolve_inside(scripts, name)


def test_symlink_escape_refused(scripts: Path) -> None:
    os.symlink(scripts.parent / "outside", scripts / "link")
    os.symlink("/etc/passwd", scripts / "pw")
    with pytest.raises(PathRefused, match="outside"):
        resolve_inside(scripts, "link/x.sh")
    with pytest.raises(PathRefused, match="outside"):
        resolve_inside(scripts, "pw")


def test_names_inside_accepted(scripts: Path) -> None:
    assert resolve_inside(scripts, "install.sh") == scripts.resolve() / "install.sh"
    assert resolve_inside(scripts, "sub/dir/x.py") == scripts.resolve() / "sub" / "dir" / "x.py"
    os.symlink("install.sh", scripts / "alias.sh")  # a link that stays inside is fine
    assert resolve_inside(scripts, "alias.sh") == scripts.resolve() / "install.sh"


def test_script_path_policy(scripts: Path, tmp_path: Path) -> None:
    default = scripts.resolve()
    assert resolve_folder(None, default=scripts) == default
    assert resolve_folder("", default=scripts) == default
    assert resolve_folder(str(scripts), default=scripts) == default
    assert resolve_folder(str(scripts / "sub"), default=scripts) == default / "sub"
    assert resolve_folder("sub", default=scripts) == default / "sub"
    # the reference's default means the agent's own folder, wherever that is
    assert resolve_folder("/opt/openbaton/scripts", default=scripts) == default
    assert resolve_folder("/opt/openbaton/scripts/", default=scripts) == default
    assert resolve_folder("/opt/openbaton/scripts/v2", default=scripts) == default / "v2"
    for bad in ("/etc", "/", str(tmp_path / "outside"), str(scripts / ".." / "outside"), "../outside",
                "/opt/openbaton/scripts/../../../etc"):
        with pytest.raises(PathRefused):
            resolve_folder(bad, default=scripts)
    os.symlink(tmp_path / "outside", scripts / "out")
    with pytest.raises(PathRefused, match="outside the allowed"):
        resolve_folder(str(scripts / "out"), default=scripts)
    # an extra allowed root
    assert resolve_folder(str(tmp_path / "outside" / "x"), default=scripts,
                          allowed_roots=[tmp_path / "outside"]) == (tmp_path / "outside" / "x").resolve()
