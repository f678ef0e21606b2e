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


# -- the per-command fast path: the agent's own folder resolved once, only the name's components checked --
@pytest.mark.parametrize("name", ["../../etc/x", "/etc/passwd", "a/../../x", "..", "", "   ", "a\x00b", ".", "./"])
def test_traversal_names_refused_with_a_real_folder(scripts: Path, name: str) -> None:
    with pytest.raises(PathRefused):
        resolve_inside(scripts.resolve(), name, folder_is_real=True)


def test_symlink_escape_refused_with_a_real_folder(scripts: Path) -> None:
    real = scripts.resolve()
    os.symlink(scripts.parent / "outside", scripts / "link")
    os.symlink("/etc/passwd", scripts / "pw")
    (scripts / "sub").mkdir()
    os.symlink("../../outside/x.sh", scripts / "sub" / "deep.sh")
    for name in ("link/x.sh", "pw", "sub/deep.sh"):
        with pytest.raises(PathRefused, match="outside"):
            resolve_inside(real, name, folder_is_real=True)


def test_names_inside_accepted_with_a_real_folder(scripts: Path) -> None:
    real = scripts.resolve()
    (scripts / "install.sh").write_text("echo")
    assert resolve_inside(real, "install.sh", folder_is_real=True) == real / "install.sh"
    assert resolve_inside(real, "./install.sh", folder_is_real=True) == real / "install.sh"
    assert resolve_inside(real, "sub/dir/x.py", folder_is_real=True) == real / "sub" / "dir" / "x.py"  # absent
    os.symlink("install.sh", scripts / "alias.sh")
    assert resolve_inside(real, "alias.sh", folder_is_real=True) == real / "install.sh"
    (scripts / "file").write_text("")
    assert resolve_inside(real, "file/x.sh", folder_is_real=True) == real / "file" / "x.sh"  # ENOTDIR: full path


def test_script_path_with_a_real_default(scripts: Path, tmp_path: Path) -> None:
    real = scripts.resolve()
    for value in (None, "", "/opt/openbaton/scripts", str(real)):
        assert resolve_folder(value, default=real, default_is_real=True) == real
    assert resolve_folder(None, default=real, when_absent=real / "git", default_is_real=True) == real / "git"
    assert resolve_folder("/opt/openbaton/scripts/v2", default=real, default_is_real=True) == real / "v2"
    os.symlink(tmp_path / "outside", scripts / "out")
    for bad in ("/etc", str(tmp_path / "outside"), "/opt/openbaton/scripts/out", "out"):
        with pytest.raises(PathRefused):
            resolve_folder(bad, default=real, default_is_real=True)
