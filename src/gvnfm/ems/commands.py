"""The EMS commands (§3.3 of the behaviour reference), hardened; where they differ from the reference
EMS (all wire-compatible): docs/architecture.md, *The EMS commands*.

Invariants:
- ``EmsCommandHandler.handle`` turns any message body into a ``{"output","err","status"}`` reply and
  never raises (bad input: ``status`` 1 with a readable ``err``);
- files are written and scripts run only below the scripts folder or the allowed roots (``paths``);
- ``env`` values are never logged (only their names).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any

from gvnfm.catalogue.ems import (
    CLONE_SCRIPTS,
    EXECUTE,
    MAX_TIMEOUT_SECONDS,
    REPO_SCRIPTS_UPDATE,
    SAVE_SCRIPTS,
    SAVE_VNFR_DEPENDENCY,
    SCRIPTS_UPDATE,
    EmsReply,
)
from gvnfm.catalogue.wire_json import loads_wire
from gvnfm.ems.config import EmsConfig
from gvnfm.ems.paths import PathRefused, resolve_folder, resolve_inside
from gvnfm.ems.runner import RunAs, run_script, script_argv
from gvnfm.ems.safe_tree import append_file, merge_tree, write_file
from gvnfm.redact import mask_urls as redact_urls

log = logging.getLogger("gvnfm.ems")

OB_PARAMETERS = ("ob_parameters.json", "ob_parameters.yaml", "ob_parameters.sh")
_ALLOWED_URL = re.compile(r"^(?:file|https?|git|ssh)://", re.IGNORECASE)
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_]")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
GIT_PROTOCOLS = "file:git:http:https:ssh"
#: Scripts up to this size are written without a worker thread.
INLINE_WRITE_BYTES = 1024 * 1024


def _count(action: str, script_outcome: str | None = None) -> None:
    """Count a command in the process's Prometheus metrics when the process has loaded them (an
    ``--http`` endpoint serves them, or a VNFM in the same process); an agent without one does not
    import prometheus_client at all (docs/performance.md, *A light EMS*)."""
    metrics = sys.modules.get("gvnfm.ops.metrics")
    if metrics is None:
        return
    metrics.EMS_COMMANDS.labels(action).inc()
    if script_outcome is not None:
        metrics.EMS_SCRIPTS.labels(script_outcome).inc()


class CommandError(Exception):
    """A command that cannot be carried out; becomes a reply with ``status`` and ``err``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


#: Commands that only write files: done at once, logged with one line at their end.
_FILE_COMMANDS = frozenset({SAVE_SCRIPTS, SCRIPTS_UPDATE, SAVE_VNFR_DEPENDENCY})


def _payload_size(command: dict[str, Any]) -> str:
    """What a file command's payload is shown as in the log: its size, never its content."""
    payload = command.get("payload")
    return f"<{len(payload) if isinstance(payload, str) else '?'} chars>"


def sanitize_key(name: str) -> str:
    return _UNSAFE_KEY.sub("_", name)


def listing(folder: Path) -> str:
    """The reference's reply to file commands: ``str(os.listdir(path))`` (sorted here)."""
    return str(sorted(os.listdir(folder)))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def dependency_sh(dependency: dict[str, Any]) -> str:
    """The ``ob_parameters.sh`` block of a VNFRecordDependency (reference layout, quoted values)."""
    lines = ["# VNF Parameters"]
    for type_, block in _items(dependency.get("parameters")):
        for key, value in _items(block.get("parameters") if isinstance(block, dict) else None):
            lines.append(f"export {sanitize_key(f'OB_{type_}_VNF_{key}')}={shlex.quote(_text(value))}")
    lines += ["", "# VNFC Parameters"]
    for type_, block in _items(dependency.get("vnfcParameters")):
        per_vnfc = [p.get("parameters") if isinstance(p, dict) else None
                    for _, p in _items(block.get("parameters") if isinstance(block, dict) else None)]
        per_vnfc_params = [p if isinstance(p, dict) else {} for p in per_vnfc]
        keys = list(dict.fromkeys(k for p in per_vnfc_params for k in p))
        for key in keys:
            joined = ":".join(_text(p[key]) if key in p else "NA" for p in per_vnfc_params)
            lines.append(f"export {sanitize_key(f'OB_{type_}_VNFC_{key}')}={shlex.quote(joined)}")
    return "\n".join(lines) + "\n"


def _items(value: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else []


def check_git_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise CommandError("CLONE_SCRIPTS needs the repository URL as payload")
    url = url.strip()
    if any(c in url for c in "\x00\r\n") or url.startswith("-"):
        raise CommandError(f"repository URL {redact_urls(url)!r} is not acceptable")
    if _ALLOWED_URL.match(url) or (url.startswith("/") and "::" not in url):
        return url
    raise CommandError(f"repository URL {redact_urls(url)!r} refused: only file://, http(s)://, git://, ssh:// URLs "
                       "and absolute local paths are accepted")


def _add_exec(path: Path) -> None:
    """``chmod +x`` unless it is a symlink or already executable for all."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or st.st_mode & 0o111 == 0o111:
        return
    os.chmod(path, st.st_mode | 0o111)


class EmsCommandHandler:
    """Executes commands for one agent (one hostname, one scripts folder)."""

    def __init__(self, config: EmsConfig) -> None:
        self.config = config
        assert config.scripts_path is not None   # (EmsConfig sets every folder)
        self.scripts_dir = Path(config.scripts_path)
        self._scripts_real: Path | None = None
        #: where EXECUTE without script-path runs: the (resolved) folder of the last SAVE/CLONE/UPDATE
        self.current_folder: Path | None = None
        self.run_as: RunAs | None = None
        if config.run_as:
            self.run_as = RunAs.lookup(config.run_as)
            self.run_as.check_possible()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[EmsReply]]] = {
            SAVE_SCRIPTS: self.save_scripts,
            SCRIPTS_UPDATE: self.scripts_update,
            CLONE_SCRIPTS: self.clone_scripts,
            REPO_SCRIPTS_UPDATE: self.clone_scripts,
            EXECUTE: self.execute,
            SAVE_VNFR_DEPENDENCY: self.save_vnfr_dependency,
        }

    # -- entry point ---------------------------------------------------------------------------------
    async def handle(self, body: bytes | str) -> EmsReply:
        started = time.monotonic()
        action = "?"
        file_command: dict[str, Any] | None = None
        try:
            command = self.parse(body)
            action = command["action"]
            handler = self._handlers.get(action)
            if handler is None:
                raise CommandError(f"unknown action {action!r}; this EMS knows {sorted(self._handlers)}")
            if action in _FILE_COMMANDS:
                file_command = command   # done at once: one line, at the end, says what it was
            else:
                self._log_command(command)
            reply = await handler(command)
            if action == EXECUTE:
                _count(action, "ok" if reply.status == 0 else "failed")
                return reply   # execute() logged its end (ems_command_done with the script's figures)
        except (CommandError, PathRefused) as exc:
            status = exc.status if isinstance(exc, CommandError) else 1
            reply = EmsReply(output="", err=f"[gvnfm-ems] {exc}", status=status)
            log.warning("event=ems_command_refused hostname=%s action=%s error=%r",
                        self.config.hostname, action, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("event=ems_command_crashed hostname=%s action=%s", self.config.hostname, action)
            reply = EmsReply(output="", err=f"[gvnfm-ems] internal error in {action}: {type(exc).__name__}: {exc}",
                             status=1)
        if file_command is not None:
            log.info("event=ems_command_done hostname=%s action=%s name=%r script_path=%r payload=%s status=%s "
                     "seconds=%.3f output_chars=%d err_chars=%d", self.config.hostname, action,
                     file_command.get("name"), file_command.get("script-path"), _payload_size(file_command),
                     reply.status, time.monotonic() - started, len(reply.output), len(reply.err))
        else:
            log.info("event=ems_command_done hostname=%s action=%s status=%s seconds=%.3f output_chars=%d "
                     "err_chars=%d", self.config.hostname, action, reply.status, time.monotonic() - started,
                     len(reply.output), len(reply.err))
        _count(action)
        return reply

    @staticmethod
    def parse(body: bytes | str) -> dict[str, Any]:
        try:
            data = loads_wire(body)
        except (ValueError, UnicodeDecodeError) as exc:
            # the body is not echoed: it may hold secrets (env values) and the error goes to the log
            raise CommandError(f"message is not JSON ({exc}; {len(body)} bytes)") from None
        if not isinstance(data, dict):
            raise CommandError(f"message is not a JSON object but {type(data).__name__}")
        action = data.get("action")
        if not isinstance(action, str) or not action:
            raise CommandError("message has no 'action'")
        return data

    def _log_command(self, command: dict[str, Any]) -> None:
        # (file commands are logged by ``handle`` at their end, with their payload's size only)
        shown = repr(redact_urls(str(command.get("payload")))[:200])   # redacted before the cut: no half password
        env = command.get("env")
        env_keys = sorted(str(k) for k in env) if isinstance(env, dict) else []
        log.info("event=ems_command hostname=%s action=%s name=%r script_path=%r payload=%s env_keys=%s",
                 self.config.hostname, command["action"], command.get("name"), command.get("script-path"),
                 shown, ",".join(env_keys) or "-")

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def scripts_real(self) -> Path:
        """The agent's own scripts folder, resolved once: it belongs to the agent, not to messages (and
        names inside it are still checked for symlinks on every command)."""
        if self._scripts_real is None:
            self._scripts_real = self.scripts_dir.resolve()
        return self._scripts_real

    def folder(self, command: dict[str, Any], when_absent: Path | None = None) -> Path:
        """The resolved folder of a command (``when_absent``, already resolved, without script-path)."""
        return resolve_folder(command.get("script-path"), default=self.scripts_real, when_absent=when_absent,
                              allowed_roots=self.config.allowed_script_roots, default_is_real=True)

    def timeout(self, command: dict[str, Any]) -> float:
        value = command.get("timeout")
        if value is None:
            return self.config.script_timeout
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or not 0 < value <= MAX_TIMEOUT_SECONDS):
            raise CommandError(f"'timeout' must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS:.0f}, "
                               f"got {value!r}")
        return float(value)

    def environment(self, vnfm_env: Any, folder: Path) -> dict[str, str]:
        """os.environ < run_as HOME/USER/LOGNAME < extra_env < SCRIPTS_PATH < the VNFM's env."""
        env = dict(os.environ)
        if self.run_as is not None:
            env.update(self.run_as.env())
        env.update(self.config.extra_env)
        env["SCRIPTS_PATH"] = str(folder)
        if vnfm_env is None or vnfm_env == {}:
            return env
        if not isinstance(vnfm_env, dict):
            raise CommandError(f"'env' must be a JSON object, got {type(vnfm_env).__name__}")
        for key, value in vnfm_env.items():
            if value is None:
                continue
            if not isinstance(key, str) or not _SHELL_NAME.fullmatch(key):
                # bash imports BASH_FUNC_<name>%% as a function: only shell identifiers are passed
                raise CommandError(f"env name {key!r} is not a shell identifier ([A-Za-z_][A-Za-z0-9_]*)")
            text = _text(value)
            if "\x00" in text:
                raise CommandError(f"env value of {key!r} contains a NUL byte")
            env[key] = text
        return env

    def _decode(self, command: dict[str, Any]) -> bytes:
        payload = command.get("payload")
        if not isinstance(payload, str):
            raise CommandError("payload must be the base64 text of the script")
        try:
            return base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CommandError(f"payload is not valid base64: {exc}") from None

    # -- commands ----------------------------------------------------------------------------------
    async def save_scripts(self, command: dict[str, Any]) -> EmsReply:
        content = self._decode(command)
        name = command.get("name")
        if not isinstance(name, str):
            raise CommandError(f"{command['action']} needs a 'name'")
        if name.split("/")[-1] in ("", "."):
            raise CommandError(f"script name {name!r} names a folder, not a file")
        folder = self.folder(command)
        rel = PurePosixPath(resolve_inside(folder, name, folder_is_real=True).relative_to(folder))

        def write() -> str:
            write_file(folder, rel, content, 0o755)
            _add_exec(folder)
            return listing(folder)

        try:
            # a script of ordinary size is written in the loop (a few system calls on a local disk,
            # cheaper than a hop to a worker thread); a big one in a thread, not to stall other agents
            output = write() if len(content) <= INLINE_WRITE_BYTES else await asyncio.to_thread(write)
        except OSError as exc:
            raise CommandError(f"cannot write {name!r} in {str(folder)!r}: {exc.strerror or exc}") from None
        self.current_folder = folder
        return EmsReply(output=output, err="", status=0)

    scripts_update = save_scripts

    async def clone_scripts(self, command: dict[str, Any]) -> EmsReply:
        url = check_git_url(command.get("payload"))
        folder = self.folder(command)
        timeout = self.timeout(command)
        if folder.exists() and not folder.is_dir():
            raise CommandError(f"{str(folder)!r} exists and is not a folder")
        folder.parent.mkdir(parents=True, exist_ok=True)
        merge = folder.exists() and any(folder.iterdir())
        tmp_root = Path(tempfile.mkdtemp(prefix=".gvnfm-clone-", dir=folder.parent)) if merge else None
        dest = tmp_root / "repo" if tmp_root else folder
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ALLOW_PROTOCOL=GIT_PROTOCOLS)
        argv = ["git", "-c", "protocol.ext.allow=never", "clone", "--quiet", "--", url, str(dest)]
        try:
            result = await run_script(argv, cwd=folder.parent, env=env, timeout=timeout,
                                      max_output=self.config.max_output_bytes, kill_grace=self.config.kill_grace)
            if result.status != 0:   # git's own messages may quote the URL: redacted too
                return EmsReply(output=redact_urls(result.stdout), status=result.status,
                                err=redact_urls(result.stderr)
                                or f"git clone of {redact_urls(url)!r} failed with status {result.status}")

            def finish() -> str:
                if tmp_root is not None:
                    merge_tree(dest, folder)   # never through a link already in the folder
                _add_exec(folder)
                for entry in folder.iterdir():
                    if entry.is_file() and not entry.is_symlink():
                        _add_exec(entry)
                return listing(folder)

            try:
                output = await asyncio.to_thread(finish)
            except OSError as exc:
                raise CommandError(f"cannot update {str(folder)!r} from the clone: {exc.strerror or exc}") from None
        finally:
            if tmp_root is not None:
                await asyncio.to_thread(shutil.rmtree, tmp_root, True)
        self.current_folder = folder
        return EmsReply(output=output, err=redact_urls(result.stderr), status=0)

    async def execute(self, command: dict[str, Any]) -> EmsReply:
        payload = command.get("payload")
        if not isinstance(payload, str) or not payload.split():
            raise CommandError("EXECUTE needs the script name (and arguments) as payload")
        words = payload.split()
        folder = self.folder(command, when_absent=self.current_folder)
        script = resolve_inside(folder, words[0], folder_is_real=True)
        if not script.is_file():
            raise CommandError(f"script {words[0]!r} not found in {str(folder)!r}", status=127)
        env = self.environment(command.get("env"), folder)
        timeout = self.timeout(command)
        result = await run_script(script_argv(script, words[1:]), cwd=folder, env=env, timeout=timeout,
                                  max_output=self.config.max_output_bytes, run_as=self.run_as,
                                  kill_grace=self.config.kill_grace)
        if result.timed_out:
            log.warning("event=ems_script_timeout hostname=%s script=%s timeout=%s", self.config.hostname,
                        words[0], timeout)
        log.info("event=ems_command_done hostname=%s action=EXECUTE script=%s status=%s seconds=%.3f "
                 "stdout_bytes=%d stderr_bytes=%d", self.config.hostname, words[0], result.status, result.duration,
                 result.stdout_bytes, result.stderr_bytes)
        return EmsReply(output=result.stdout, err=result.stderr, status=result.status)

    async def save_vnfr_dependency(self, command: dict[str, Any]) -> EmsReply:
        payload = command.get("payload")
        if isinstance(payload, str):
            try:
                dependency = json.loads(payload)
            except ValueError as exc:
                raise CommandError(f"SAVE_VNFR_DEPENDENCY payload is not JSON: {exc}") from None
            text = payload
        elif isinstance(payload, dict):
            dependency, text = payload, json.dumps(payload, indent=2)
        else:
            raise CommandError("SAVE_VNFR_DEPENDENCY needs the VNFRecordDependency JSON as payload")
        if not isinstance(dependency, dict):
            raise CommandError("SAVE_VNFR_DEPENDENCY payload is not a JSON object")
        folder = self.folder(command)
        import yaml  # here: the only command that needs it (the agent's import time, docs/performance.md)

        as_yaml = yaml.safe_dump(dependency, default_flow_style=False)
        as_sh = dependency_sh(dependency)

        def write() -> str:
            folder.mkdir(parents=True, exist_ok=True)
            write_file(folder, PurePosixPath("ob_parameters.json"), text.encode(), 0o644)
            write_file(folder, PurePosixPath("ob_parameters.yaml"), as_yaml.encode(), 0o644)
            append_file(folder, PurePosixPath("ob_parameters.sh"), as_sh, 0o644)
            return listing(folder)

        try:
            output = await asyncio.to_thread(write)
        except OSError as exc:
            raise CommandError(f"cannot write ob_parameters in {str(folder)!r}: {exc.strerror or exc}") from None
        return EmsReply(output=output, err="", status=0)
