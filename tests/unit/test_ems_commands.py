"""Every EMS command with the JSON the reference VNFM sends (§3.3), and the hardening around them."""

from __future__ import annotations

import base64
import json
import logging
import os
import pwd
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems.commands import EmsCommandHandler, dependency_sh, redact_urls
from gvnfm.ems.config import EmsConfig


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture()
def handler(tmp_path: Path) -> EmsCommandHandler:
    return EmsCommandHandler(EmsConfig(hostname="vnfc-1", root=str(tmp_path / "host"), kill_grace=0.2))


async def send(handler: EmsCommandHandler, command: dict[str, Any] | bytes) -> EmsReply:
    body = command if isinstance(command, bytes) else json.dumps(command).encode()
    reply = await handler.handle(body)
    assert isinstance(reply.status, int) and isinstance(reply.output, str) and isinstance(reply.err, str)
    return reply


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


async def save(handler: EmsCommandHandler, name: str, text: str,
               script_path: str = "/opt/openbaton/scripts") -> EmsReply:
    return await send(handler, {"action": "SAVE_SCRIPTS", "payload": b64(text), "name": name,
                                "script-path": script_path})


async def test_save_scripts_exact_json(handler: EmsCommandHandler) -> None:
    reply = await save(handler, "install.sh", "#!/bin/bash\necho installed\n")
    assert reply.status == 0 and reply.err == ""
    assert reply.output == "['install.sh']"  # str(os.listdir(path))
    path = Path(handler.config.scripts_path) / "install.sh"
    assert path.read_text() == "#!/bin/bash\necho installed\n"
    assert path.stat().st_mode & 0o111 == 0o111
    reply = await save(handler, "start.sh", "echo started")
    assert reply.output == "['install.sh', 'start.sh']"


async def test_save_scripts_bad_base64(handler: EmsCommandHandler) -> None:
    reply = await send(handler, {"action": "SAVE_SCRIPTS", "payload": "!!not base64!!", "name": "x.sh",
                                 "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 1 and "base64" in reply.err
    assert not (Path(handler.config.scripts_path) / "x.sh").exists()


async def test_execute_lifecycle_with_env_and_args(handler: EmsCommandHandler) -> None:
    await save(handler, "configure.sh", 'printf "%s|%s|%s|%s|%s\\n" "$1" "$2" "$port" "$hostname" "$PWD"\n'
                                       'echo warn >&2\nexit 0\n')
    reply = await send(handler, {"action": "EXECUTE", "payload": "configure.sh first second",
                                 "env": {"port": "5001", "private": "192.168.1.10", "hostname": "vnfc-1"}})
    assert reply.status == 0
    assert reply.output == f"first|second|5001|vnfc-1|{handler.config.scripts_path}\n"
    assert reply.err == "warn\n"


async def test_execute_failure_status_and_missing_script(handler: EmsCommandHandler) -> None:
    await save(handler, "fail.sh", "echo partial; echo boom >&2; exit 7")
    reply = await send(handler, {"action": "EXECUTE", "payload": "fail.sh", "env": {}})
    assert (reply.status, reply.output, reply.err) == (7, "partial\n", "boom\n")
    reply = await send(handler, {"action": "EXECUTE", "payload": "nope.sh", "env": {}})
    assert reply.status == 127 and "not found" in reply.err


async def test_execute_ad_hoc_without_env_inherits_agent_env(handler: EmsCommandHandler,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GVNFM_EMS_TEST_AGENT_VAR", "from-agent")
    await save(handler, "ob_runtime_script", 'echo "$GVNFM_EMS_TEST_AGENT_VAR $SCRIPTS_PATH"')
    reply = await send(handler, {"action": "EXECUTE", "payload": "ob_runtime_script",
                                 "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 0
    assert reply.output == f"from-agent {handler.config.scripts_path}\n"


async def test_env_precedence_agent_lt_extra_env_lt_vnfm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("V_ALL", "agent")
    monkeypatch.setenv("V_AGENT_EXTRA", "agent")
    monkeypatch.setenv("V_AGENT_ONLY", "agent")
    handler = EmsCommandHandler(EmsConfig(hostname="h-1", root=str(tmp_path),
                                          extra_env={"V_ALL": "extra", "V_AGENT_EXTRA": "extra"}))
    await save(handler, "env.sh", 'echo "$V_ALL $V_AGENT_EXTRA $V_AGENT_ONLY $V_VNFM_ONLY"')
    reply = await send(handler, {"action": "EXECUTE", "payload": "env.sh",
                                 "env": {"V_ALL": "vnfm", "V_VNFM_ONLY": "vnfm", "dropped": None}})
    assert reply.output == "vnfm extra agent vnfm\n"
    reply = await send(handler, {"action": "EXECUTE", "payload": "env.sh", "env": {}})
    assert reply.output == "extra extra agent \n"


async def test_bad_env_is_a_clear_error(handler: EmsCommandHandler) -> None:
    await save(handler, "x.sh", "echo hi")
    for env in ({"A=B": "1"}, {"A": "x\u0000y"}, ["A"]):
        reply = await send(handler, {"action": "EXECUTE", "payload": "x.sh", "env": env})
        assert reply.status == 1 and "env" in reply.err


async def test_interpreter_py_suffix_shebang_and_bash(handler: EmsCommandHandler) -> None:
    await save(handler, "tool.py", "#!/usr/bin/env python3\nimport sys\nprint('py', sys.argv[1:])\n")
    await save(handler, "deploy.pyramid.sh", 'echo "bash=${BASH_VERSION:+yes}"\n')  # '.py' substring, no shebang
    await save(handler, "run.sh", "#!/usr/bin/env python3\nprint('shebang-python')\n")
    assert (await send(handler, {"action": "EXECUTE", "payload": "tool.py a b", "env": {}})).output == "py ['a', 'b']\n"
    assert (await send(handler, {"action": "EXECUTE", "payload": "deploy.pyramid.sh"})).output == "bash=yes\n"
    assert (await send(handler, {"action": "EXECUTE", "payload": "run.sh"})).output == "shebang-python\n"


@pytest.mark.parametrize("name", ["../../etc/x", "/etc/passwd", "a/../../b.sh"])
async def test_traversal_names_refused_everywhere(handler: EmsCommandHandler, name: str, tmp_path: Path) -> None:
    for action in ("SAVE_SCRIPTS", "SCRIPTS_UPDATE"):
        reply = await send(handler, {"action": action, "payload": b64("echo pwned"), "name": name,
                                     "script-path": "/opt/openbaton/scripts"})
        assert reply.status != 0 and "script name" in reply.err
    reply = await send(handler, {"action": "EXECUTE", "payload": name, "env": {}})
    assert reply.status != 0 and "script name" in reply.err
    assert not (tmp_path / "etc").exists()


async def test_symlink_escape_refused(handler: EmsCommandHandler, tmp_path: Path) -> None:
    scripts = Path(handler.config.scripts_path)
    outside = tmp_path / "outside"
    run(["mkdir", "-p", str(scripts), str(outside)])
    os.symlink(outside, scripts / "link")
    reply = await save(handler, "link/evil.sh", "echo pwned")
    assert reply.status != 0 and "outside" in reply.err
    assert not (outside / "evil.sh").exists()
    (outside / "run.sh").write_text("echo ran-outside")
    reply = await send(handler, {"action": "EXECUTE", "payload": "link/run.sh"})
    assert reply.status != 0 and "outside" in reply.err


@pytest.mark.parametrize("action", ["SAVE_SCRIPTS", "SCRIPTS_UPDATE", "SAVE_VNFR_DEPENDENCY", "EXECUTE",
                                    "CLONE_SCRIPTS"])
async def test_script_path_outside_refused(handler: EmsCommandHandler, action: str, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    payload = {"EXECUTE": "x.sh", "CLONE_SCRIPTS": "file:///nonexistent",
               "SAVE_VNFR_DEPENDENCY": "{}"}.get(action, b64("echo x"))
    for path in (str(target), "/etc", "/opt/openbaton/scripts/../../../etc"):
        reply = await send(handler, {"action": action, "payload": payload, "name": "x.sh", "script-path": path})
        assert reply.status != 0 and "script-path" in reply.err, reply
    assert not target.exists()


async def test_script_path_below_the_scripts_folder_is_honoured(handler: EmsCommandHandler) -> None:
    sub = Path(handler.config.scripts_path) / "v2"
    reply = await save(handler, "a.sh", "echo from-v2 $SCRIPTS_PATH", script_path=str(sub))
    assert reply.status == 0 and (sub / "a.sh").exists()
    # EXECUTE without script-path runs from the folder the last SAVE wrote to
    reply = await send(handler, {"action": "EXECUTE", "payload": "a.sh", "env": {"x": "1"}})
    assert reply.output == f"from-v2 {sub}\n"
    # an explicit script-path is relative to the agent's scripts folder, not to the last one used
    reply = await send(handler, {"action": "EXECUTE", "payload": "a.sh", "script-path": "/opt/openbaton/scripts/v2"})
    assert reply.output == f"from-v2 {sub}\n"
    reply = await send(handler, {"action": "EXECUTE", "payload": "a.sh", "script-path": "v2"})
    assert reply.output == f"from-v2 {sub}\n"


async def test_scripts_update_writes_into_script_path_and_chmods(handler: EmsCommandHandler) -> None:
    await save(handler, "install.sh", "echo v1")
    reply = await send(handler, {"action": "SCRIPTS_UPDATE", "payload": b64("echo v2"), "name": "install.sh",
                                 "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 0 and reply.output == "['install.sh']"
    path = Path(handler.config.scripts_path) / "install.sh"
    assert path.read_text() == "echo v2" and path.stat().st_mode & 0o111 == 0o111
    assert (await send(handler, {"action": "EXECUTE", "payload": "install.sh"})).output == "v2\n"


async def test_non_json_unknown_action_and_bad_fields(handler: EmsCommandHandler) -> None:
    for body in (b"not json at all", b"\xff\xfe\x00garbage", b"[1, 2]", b'{"payload": "x"}', b"null"):
        reply = await send(handler, body)
        assert reply.status != 0 and reply.err
    reply = await send(handler, {"action": "FORMAT_DISK", "payload": "x"})
    assert reply.status != 0 and "unknown action 'FORMAT_DISK'" in reply.err
    for command in ({"action": "EXECUTE"}, {"action": "EXECUTE", "payload": 42}, {"action": "EXECUTE", "payload": " "},
                    {"action": "SAVE_SCRIPTS", "payload": b64("x")}, {"action": "SAVE_VNFR_DEPENDENCY", "payload": "{"},
                    {"action": "EXECUTE", "payload": "x.sh", "timeout": -1}, {"action": "CLONE_SCRIPTS"}):
        reply = await send(handler, command)
        assert reply.status != 0 and reply.err, command


async def test_per_command_timeout(handler: EmsCommandHandler) -> None:
    await save(handler, "slow.sh", "sleep 30")
    reply = await send(handler, {"action": "EXECUTE", "payload": "slow.sh", "env": {}, "timeout": 0.5})
    assert reply.status == 124 and "timed out after 0.5 s" in reply.err


DEPENDENCY = {
    "target": "client",
    "parameters": {"server": {"parameters": {"private": "", "hostile": "$(touch {marker})",
                                             "quote": "a'b\"c", "port-no": 5001, "none": None}}},
    "vnfcParameters": {"server": {"parameters": {
        "vnfc-a": {"parameters": {"private": "192.168.1.10", "private-net_floatingIp": "`touch {marker}`"}},
        "vnfc-b": {"parameters": {"private": "192.168.1.11"}}}}},
    "idType": {"iperf-server": "server"},
}


def dependency(marker: Path) -> dict[str, Any]:
    return json.loads(json.dumps(DEPENDENCY).replace("{marker}", str(marker)))


async def test_save_vnfr_dependency_files_and_safe_shell(handler: EmsCommandHandler, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    dep = dependency(marker)
    text = json.dumps(dep, indent=2)
    reply = await send(handler, {"action": "SAVE_VNFR_DEPENDENCY", "payload": text,
                                 "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 0
    assert reply.output == "['ob_parameters.json', 'ob_parameters.sh', 'ob_parameters.yaml']"
    folder = Path(handler.config.scripts_path)
    assert (folder / "ob_parameters.json").read_text() == text
    assert yaml.safe_load((folder / "ob_parameters.yaml").read_text()) == dep
    sh = (folder / "ob_parameters.sh").read_text()
    assert sh.startswith("# VNF Parameters\nexport OB_server_VNF_private=''\n")
    assert "\n\n# VNFC Parameters\n" in sh
    names = ["OB_server_VNF_private", "OB_server_VNF_hostile", "OB_server_VNF_quote", "OB_server_VNF_port_no",
             "OB_server_VNF_none", "OB_server_VNFC_private", "OB_server_VNFC_private_net_floatingIp"]
    probe = "; ".join(f'printf "%s=[%s]\\n" {n} "${n}"' for n in names)
    out = run(["bash", "-c", f"set -e; source {folder}/ob_parameters.sh; {probe}"])
    assert out.splitlines() == [
        "OB_server_VNF_private=[]", f"OB_server_VNF_hostile=[$(touch {marker})]", "OB_server_VNF_quote=[a'b\"c]",
        "OB_server_VNF_port_no=[5001]", "OB_server_VNF_none=[]", "OB_server_VNFC_private=[192.168.1.10:192.168.1.11]",
        f"OB_server_VNFC_private_net_floatingIp=[`touch {marker}`:NA]"]
    assert not marker.exists()
    # appended, as the reference does: sourcing gives the latest values
    dep["parameters"]["server"]["parameters"]["private"] = "changed"
    await send(handler, {"action": "SAVE_VNFR_DEPENDENCY", "payload": json.dumps(dep),
                         "script-path": "/opt/openbaton/scripts"})
    assert (folder / "ob_parameters.sh").read_text().count("# VNF Parameters") == 2
    out = run(["bash", "-c", f"source {folder}/ob_parameters.sh; echo $OB_server_VNF_private"])
    assert out == "changed\n"


def test_dependency_sh_tolerates_odd_shapes() -> None:
    assert dependency_sh({}) == "# VNF Parameters\n\n# VNFC Parameters\n"
    assert dependency_sh({"parameters": [1], "vnfcParameters": {"t": "x"}}) == "# VNF Parameters\n\n# VNFC Parameters\n"


def make_repo(base: Path, files: dict[str, str]) -> Path:
    repo = base / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "scripts"], check=True)
    return repo


async def test_clone_scripts_from_local_file_repo(handler: EmsCommandHandler, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"install.sh": "echo cloned-install", "sub/helper.sh": "echo helper"})
    reply = await send(handler, {"action": "CLONE_SCRIPTS", "payload": f"file://{repo}",
                                 "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 0, reply.err
    assert reply.output == "['.git', 'install.sh', 'sub']"
    folder = Path(handler.config.scripts_path)
    assert (folder / "install.sh").stat().st_mode & 0o111 == 0o111
    assert (await send(handler, {"action": "EXECUTE", "payload": "install.sh", "env": {}})).output == "cloned-install\n"
    # a second clone into the now non-empty folder copies the files over (the reference fails)
    (repo / "install.sh").write_text("echo v2")
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", "-C", str(repo), "commit", "-qam", "v2"])
    reply = await send(handler, {"action": "CLONE_SCRIPTS", "payload": str(repo),
                                 "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 0, reply.err
    assert (folder / "install.sh").read_text() == "echo v2"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".gvnfm-clone-")]
    # REPO_SCRIPTS_UPDATE (broken in the reference, never sent by its VNFM) updates the same way
    run(["bash", "-c", f"echo 'echo v3' > {repo}/install.sh"])
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", "-C", str(repo), "commit", "-qam", "v3"])
    reply = await send(handler, {"action": "REPO_SCRIPTS_UPDATE", "payload": f"file://{repo}"})
    assert reply.status == 0 and (folder / "install.sh").read_text() == "echo v3\n"


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/gvnfm-pwned", "-uhttp://x", "relative/path",
                                 "user@host:repo.git", "ftp://x/y"])
async def test_clone_scripts_refuses_dangerous_urls(handler: EmsCommandHandler, url: str) -> None:
    reply = await send(handler, {"action": "CLONE_SCRIPTS", "payload": url, "script-path": "/opt/openbaton/scripts"})
    assert reply.status != 0 and ("refused" in reply.err or "not acceptable" in reply.err)


async def test_clone_failure_reports_git_status(handler: EmsCommandHandler, tmp_path: Path) -> None:
    reply = await send(handler, {"action": "CLONE_SCRIPTS", "payload": f"file://{tmp_path}/no-such-repo",
                                 "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 128 and "no-such-repo" in reply.err


@pytest.mark.parametrize(("text", "shown"), [
    ("https://alice:s3cr3t@git.example/x.git", "https://alice:***@git.example/x.git"),
    ("https://alice:p@ss:w@rd@git.example/x.git", "https://alice:***@git.example/x.git"),
    ("clone 'https://ghp_T0KEN@github.com/o/r' failed", "clone 'https://***@github.com/o/r' failed"),
    ("ssh://git@host/repo.git and ssh://bob:pw@h/r", "ssh://git@host/repo.git and ssh://bob:***@h/r"),
    ("file:///srv/repo@v1 https://host/a@b", "file:///srv/repo@v1 https://host/a@b"),
])
def test_redact_urls(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


async def test_clone_url_credentials_neither_logged_nor_replied(handler: EmsCommandHandler, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text('#!/bin/sh\nfor a; do last2="$last"; last="$a"; done\n'
                              'echo "fatal: unable to access \'$last2\': connection refused" >&2\nexit 128\n')
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    url = "https://alice:s3cr3t-pw-77@git.example.invalid/scripts.git"
    reply = await send(handler, {"action": "CLONE_SCRIPTS", "payload": url, "script-path": "/opt/openbaton/scripts"})
    assert reply.status == 128
    assert "unable to access 'https://alice:***@git.example.invalid/scripts.git': connection refused" in reply.err
    reply2 = await send(handler, {"action": "CLONE_SCRIPTS", "payload": url.replace("https", "ftp")})
    assert reply2.status == 1 and "ftp://alice:***@git.example.invalid" in reply2.err
    assert "s3cr3t-pw-77" not in reply.err + reply2.err
    assert "alice:***@git.example.invalid" in caplog.text and "s3cr3t-pw-77" not in caplog.text


async def test_secrets_in_env_are_not_logged(handler: EmsCommandHandler, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await save(handler, "x.sh", "echo done")
    reply = await send(handler, {"action": "EXECUTE", "payload": "x.sh",
                                 "env": {"DB_PASSWORD": "s3cr3t-value-42", "port": "5001"}})
    assert reply.status == 0
    assert "DB_PASSWORD" in caplog.text and "port" in caplog.text
    assert "s3cr3t-value-42" not in caplog.text


async def test_run_as_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("run_as needs root")
    base = Path(tempfile.mkdtemp(prefix="gvnfm-ems-runas-"))
    try:
        run(["chmod", "755", str(base)])
        handler = EmsCommandHandler(EmsConfig(hostname="h-1", root=str(base), run_as="nobody"))
        await save(handler, "who.sh", 'echo "$(id -un) $HOME"; touch "$SCRIPTS_PATH/written" 2>/dev/null || echo ro')
        reply = await send(handler, {"action": "EXECUTE", "payload": "who.sh", "env": {}})
        assert reply.status == 0, reply.err
        name, home = reply.output.split("\n")[0].split(" ", 1)
        assert name == "nobody"
        assert home == pwd.getpwnam("nobody").pw_dir
        assert reply.output.strip().endswith("ro")  # the scripts folder belongs to the agent
    finally:
        run(["rm", "-rf", str(base)])


def test_run_as_unknown_user_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        EmsCommandHandler(EmsConfig(hostname="h", root=str(tmp_path), run_as="no-such-user-gvnfm"))
