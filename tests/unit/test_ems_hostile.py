"""The hostile EMS commands of the security review (symlinks, non-finite numbers, env names, folder
names): each is refused or made harmless, and nothing lands outside the scripts folder."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems.commands import EmsCommandHandler
from gvnfm.ems.config import EmsConfig

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]


@pytest.fixture()
def handler(tmp_path: Path) -> EmsCommandHandler:
    return EmsCommandHandler(EmsConfig(hostname="vnfc-1", root=str(tmp_path / "host"), kill_grace=0.2))


async def send(handler: EmsCommandHandler, command: dict[str, Any] | bytes) -> EmsReply:
    body = command if isinstance(command, bytes) else json.dumps(command).encode()
    return await handler.handle(body)


def repo(base: Path, name: str, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    path = base / name
    path.mkdir()
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    for rel, target in (links or {}).items():
        os.symlink(target, path / rel)
    subprocess.run([*GIT, "-C", str(path), "init", "-q"], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-qm", name], check=True)
    return path


def clone(url: Path, script_path: str = "/opt/openbaton/scripts/cl") -> dict[str, Any]:
    return {"action": "CLONE_SCRIPTS", "payload": f"file://{url}", "script-path": script_path}


def outside_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}


async def test_a_clone_never_writes_through_links_of_an_earlier_clone(handler: EmsCommandHandler,
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "x" / "out"
    out.mkdir(parents=True)
    (out / "t").write_text("original")
    a = repo(tmp_path, "a", {"run.sh": "echo a"}, links={"link": str(out / "t"), "ldir": str(out)})
    b = repo(tmp_path, "b", {"link": "from B", "ldir/planted": "planted by B"})
    assert (await send(handler, clone(a))).status == 0
    folder = Path(handler.config.scripts_path) / "cl"
    assert os.readlink(folder / "link") == str(out / "t")          # A's links are copied as links
    reply = await send(handler, clone(b))
    assert reply.status == 0, reply.err
    assert outside_files(out) == {"t": "original"}                  # nothing landed outside
    assert not (folder / "link").is_symlink() and (folder / "link").read_text() == "from B"
    assert not (folder / "ldir").is_symlink() and (folder / "ldir" / "planted").read_text() == "planted by B"
    assert (folder / "run.sh").read_text() == "echo a"


async def test_a_clone_over_a_hand_planted_link(handler: EmsCommandHandler, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "t").write_text("original")
    folder = Path(handler.config.scripts_path)
    os.makedirs(folder)
    os.symlink(out, folder / "ldir")
    os.symlink(out / "t", folder / "link")
    b = repo(tmp_path, "b", {"link": "from B", "ldir/planted": "planted by B", "ldir/t": "overwritten?"})
    reply = await send(handler, clone(b, "/opt/openbaton/scripts"))
    assert reply.status == 0, reply.err
    assert outside_files(out) == {"t": "original"}
    assert (folder / "ldir" / "t").read_text() == "overwritten?" and not (folder / "ldir").is_symlink()


async def test_a_clone_whose_target_path_is_a_link_outside_is_refused(handler: EmsCommandHandler,
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    folder = Path(handler.config.scripts_path)
    os.makedirs(folder)
    os.symlink(out, folder / "cl")
    b = repo(tmp_path, "b", {"x.sh": "echo"})
    reply = await send(handler, clone(b))
    assert reply.status == 1 and "outside" in reply.err
    assert list(out.iterdir()) == []


async def test_save_never_writes_through_a_planted_link(handler: EmsCommandHandler, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "t").write_text("original")
    folder = Path(handler.config.scripts_path)
    os.makedirs(folder)
    os.symlink(out / "t", folder / "link")
    os.symlink(out, folder / "ldir")
    payload = base64.b64encode(b"echo saved").decode()
    reply = await send(handler, {"action": "SAVE_SCRIPTS", "name": "link", "payload": payload})
    assert reply.status == 1 and "outside" in reply.err          # the link leads outside: refused
    reply = await send(handler, {"action": "SAVE_SCRIPTS", "name": "ldir/planted", "payload": payload})
    assert reply.status == 1 and "outside" in reply.err
    # a link planted into SAVE_VNFR_DEPENDENCY's files is replaced (json/yaml) or refused (the appended .sh)
    os.symlink(out / "t", folder / "ob_parameters.json")
    os.symlink(out / "t", folder / "ob_parameters.sh")
    reply = await send(handler, {"action": "SAVE_VNFR_DEPENDENCY", "payload": {"target": "x"}})
    assert reply.status == 1 and ("symlink" in reply.err.lower() or "too many levels" in reply.err.lower())
    assert outside_files(out) == {"t": "original"}
    assert not (folder / "ob_parameters.json").is_symlink()


@pytest.mark.parametrize("name", ["sub/", "sub/.", ".", "sub//"])
async def test_save_of_a_folder_name_is_refused(handler: EmsCommandHandler, name: str) -> None:
    reply = await send(handler, {"action": "SAVE_SCRIPTS", "name": name, "payload": base64.b64encode(b"x").decode()})
    assert reply.status == 1 and "names a folder" in reply.err
    assert not (Path(handler.config.scripts_path) / "sub").exists()


@pytest.mark.parametrize("name", ["BASH_FUNC_echo%%", "A-B", "1A", "A B", "A.B", "", "é"])
async def test_env_names_must_be_shell_identifiers(handler: EmsCommandHandler, name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    await send(handler, {"action": "SAVE_SCRIPTS", "name": "x.sh", "payload": base64.b64encode(b"echo hi").decode()})
    reply = await send(handler, {"action": "EXECUTE", "payload": "x.sh",
                                 "env": {name: f"() {{ touch {marker}; }}", "OK_1": "y"}})
    assert reply.status == 1 and "shell identifier" in reply.err
    assert not marker.exists()


@pytest.mark.parametrize("raw", ['NaN', 'Infinity', '-Infinity', '1e308', '1e400', '0', '-1', '1e9', 'true', '"5"'])
async def test_non_finite_or_absurd_timeouts_are_refused(handler: EmsCommandHandler, raw: str) -> None:
    await send(handler, {"action": "SAVE_SCRIPTS", "name": "x.sh", "payload": base64.b64encode(b"echo hi").decode()})
    body = ('{"action": "EXECUTE", "payload": "x.sh", "env": {}, "timeout": ' + raw + "}").encode()
    reply = await send(handler, body)
    assert reply.status == 1 and ("timeout" in reply.err or "number" in reply.err), reply.err


async def test_a_refused_nan_leaves_other_limits_working(handler: EmsCommandHandler) -> None:
    """The issue's symptom: NaN in the timer heap broke another command's limit."""
    await send(handler, {"action": "SAVE_SCRIPTS", "name": "slow.sh",
                         "payload": base64.b64encode(b"sleep 30").decode()})
    nan = send(handler, b'{"action": "EXECUTE", "payload": "slow.sh", "env": {}, "timeout": NaN}')
    limited = send(handler, {"action": "EXECUTE", "payload": "slow.sh", "env": {}, "timeout": 0.5})
    refused, timed_out = await asyncio.gather(nan, limited)
    assert refused.status == 1 and timed_out.status == 124


@pytest.mark.parametrize("raw", ['{"action": "EXECUTE", "payload": "x.sh", "env": {"A": NaN}}',
                                 '{"action": "EXECUTE", "payload": "x.sh", "env": {"A": 1e400}}',
                                 '{"action": "EXECUTE", "payload": "x.sh", "n": 123456789012345678901234567890}'])
async def test_non_finite_numbers_anywhere_are_refused(handler: EmsCommandHandler, raw: str) -> None:
    reply = await send(handler, raw.encode())
    assert reply.status == 1 and "number" in reply.err
