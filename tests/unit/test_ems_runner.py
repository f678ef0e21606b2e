"""The script runner: interpreter choice, bounded streamed output, time limit with process-group kill."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from gvnfm.ems import journal, runner
from gvnfm.ems.runner import TailBuffer, run_script, script_argv


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Wait for ``predicate()`` (the timeout is a hang guard, not a time bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def gone(pid: int) -> None:
    """Wait until ``pid`` is gone (asserted: the hang guard fails the test)."""
    await until(lambda: not alive(pid))


def test_tail_buffer_keeps_the_tail_and_marks_the_cut() -> None:
    buf = TailBuffer(10)
    for chunk in (b"0123456", b"789abc", b"def"):
        buf.feed(chunk)
    assert buf.total == 16
    assert buf.text() == "[... 6 bytes cut ...]\n6789abcdef"
    small = TailBuffer(10)
    small.feed(b"hi")
    assert small.text() == "hi"
    big = TailBuffer(4)
    big.feed(b"x" * 100 + b"TAIL")
    assert big.text() == "[... 100 bytes cut ...]\nTAIL"


def test_interpreter_choice(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print(1)")
    (tmp_path / "deploy.pyramid.sh").write_text("echo hi")
    (tmp_path / "x.sh").write_text("#!/bin/sh\necho hi")
    (tmp_path / "plain").write_text("echo hi")
    assert script_argv(tmp_path / "a.py", ["1"]) == [str(tmp_path / "a.py"), "1"]
    assert script_argv(tmp_path / "deploy.pyramid.sh", [])[1:] == [str(tmp_path / "deploy.pyramid.sh")]
    assert script_argv(tmp_path / "deploy.pyramid.sh", [])[0].endswith("bash")
    assert script_argv(tmp_path / "x.sh", []) == [str(tmp_path / "x.sh")]
    assert script_argv(tmp_path / "plain", ["a", "b"])[1:] == [str(tmp_path / "plain"), "a", "b"]


async def test_status_stdout_stderr_separately(tmp_path: Path) -> None:
    res = await run_script(["/bin/bash", "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path, env=None,
                           timeout=10, max_output=1024)
    assert (res.status, res.stdout, res.stderr, res.timed_out) == (3, "out\n", "err\n", False)


async def test_missing_program_is_a_status_not_an_exception(tmp_path: Path) -> None:
    res = await run_script([str(tmp_path / "nope")], cwd=tmp_path, env=None, timeout=5, max_output=1024)
    assert res.status == 127 and "cannot execute" in res.stderr
    (tmp_path / "noexec.py").write_text("print(1)\n")
    res = await run_script([str(tmp_path / "noexec.py")], cwd=tmp_path, env=None, timeout=5, max_output=1024)
    assert res.status == 126 and "cannot execute" in res.stderr


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = tmp_path / "hang.sh"
    script.write_text(f"sleep 300 &\necho $! > {tmp_path}/child.pid\ntrap '' TERM\nsleep 300\n")
    started = time.monotonic()
    res = await run_script(["/bin/bash", str(script)], cwd=tmp_path, env=None, timeout=1, max_output=1024,
                           kill_grace=0.3)
    assert time.monotonic() - started < 60     # the time-out, not the script's 300 s (margin for a slow machine)
    assert res.timed_out and res.status == 124
    assert "timed out after 1 s" in res.stderr
    child = int((tmp_path / "child.pid").read_text())
    await gone(child)


async def test_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    script = tmp_path / "hang.sh"
    script.write_text(f"echo $$ > {tmp_path}/pid\nsleep 300\n")
    task = asyncio.create_task(run_script(["/bin/bash", str(script)], cwd=tmp_path, env=None, timeout=60,
                                          max_output=1024))
    await until(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip())
    pid = int((tmp_path / "pid").read_text())
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await gone(pid)


async def test_huge_output_is_bounded_streamed_and_keeps_the_tail(tmp_path: Path) -> None:
    script = "head -c 100000000 /dev/zero | tr '\\0' 'x'; echo; echo END-OF-OUTPUT"
    tracemalloc.start()
    try:
        res = await run_script(["/bin/bash", "-c", script], cwd=tmp_path, env=None, timeout=60,
                               max_output=64 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.status == 0
    assert res.stdout_bytes == 100_000_000 + 1 + len("END-OF-OUTPUT\n")
    assert res.stdout.endswith("xxx\nEND-OF-OUTPUT\n")
    cut = res.stdout_bytes - 64 * 1024
    assert res.stdout.startswith(f"[... {cut} bytes cut ...]\n")
    assert len(res.stdout) < 64 * 1024 + 100
    assert peak < 16 * 1024 * 1024, f"peak Python memory {peak} bytes while reading 100 MB"


async def test_background_daemon_does_not_hold_the_reply(tmp_path: Path) -> None:
    # A lifecycle script that starts a service keeping stdout open must be answered when it exits. With
    # a spool (every EXECUTE the VNFM sends has one), the service writes into the spool's file: it keeps
    # running and the agent reads nothing more of it.
    script = tmp_path / "start.sh"
    script.write_text(f"(while true; do echo tick; sleep 0.1; done) &\necho $! > {tmp_path}/d.pid\necho started\n")
    spool = journal.Spool(tmp_path / "spool", "k")
    token = journal.CURRENT.set(spool)
    try:
        res = await run_script(["/bin/bash", str(script)], cwd=tmp_path, env=None, timeout=30, max_output=1024,
                               drain_grace=0.3)
    finally:
        journal.CURRENT.reset(token)
    assert res.status == 0 and "started" in res.stdout
    pid = int((tmp_path / "d.pid").read_text())
    try:
        size = spool.out.stat().st_size
        await until(lambda: spool.out.stat().st_size > size or not alive(pid))   # it writes on
        assert alive(pid), "the daemon died after the script was answered"
    finally:
        os.kill(pid, 9)


async def test_without_a_spool_a_daemons_pipes_are_closed_after_the_grace(tmp_path: Path) -> None:
    # The agent stops reading the pipes of a finished script after drain_grace: a daemon holding them
    # no longer keeps it busy (its writes fail, as to a closed terminal).
    script = tmp_path / "start.sh"
    script.write_text(f"(trap '' PIPE; while echo tick 2>/dev/null; do sleep 0.05; done; echo gone > {tmp_path}/gone) &"
                      "\necho started\n")
    res = await run_script(["/bin/bash", str(script)], cwd=tmp_path, env=None, timeout=30, max_output=1024,
                           drain_grace=0.3)
    assert res.status == 0 and "started" in res.stdout
    for _ in range(400):   # hang guard only: the daemon's next write fails once the pipe is closed
        if (tmp_path / "gone").exists():
            break
        await asyncio.sleep(0.05)
    assert (tmp_path / "gone").read_text() == "gone\n"


async def test_exit_seen_without_pidfds_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # where pidfds are missing, a thread waits for the exit instead
    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(runner.os, "pidfd_open", no_pidfd)
    res = await run_script(["/bin/bash", "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path, env=None,
                           timeout=10, max_output=1024)
    assert (res.status, res.stdout, res.stderr) == (3, "out\n", "err\n")
    # long scripts do not hold up the exit of a short one (each has a waiting thread of its own): the
    # long ones run until the test releases them, after the short one was answered
    release = tmp_path / "release"
    long = [asyncio.ensure_future(run_script(
        ["/bin/bash", "-c", f"touch {tmp_path}/long{i}; while [ ! -e {release} ]; do sleep 0.05; done"],
        cwd=tmp_path, env=None, timeout=120, max_output=1024)) for i in range(12)]
    await until(lambda: all((tmp_path / f"long{i}").exists() for i in range(12)))
    quick = await run_script(["/bin/true"], cwd=tmp_path, env=None, timeout=60, max_output=1024)
    assert quick.status == 0 and not quick.timed_out
    assert not any(task.done() for task in long)
    release.touch()
    assert [r.status for r in await asyncio.gather(*long)] == [0] * 12


async def test_no_descriptor_leaks_when_the_pipes_cannot_be_made(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real_pipe, calls = os.pipe, []

    def second_fails() -> tuple[int, int]:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(24, "Too many open files")
        return real_pipe()

    before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(runner.os, "pipe", second_fails)
    res = await run_script(["/bin/true"], cwd=tmp_path, env=None, timeout=10, max_output=1024)
    assert res.status == 126 and "Too many open files" in res.stderr
    assert len(os.listdir("/proc/self/fd")) == before


async def test_no_file_descriptor_outlives_its_script(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    await run_script(["/bin/true"], cwd=tmp_path, env=None, timeout=10, max_output=1024)   # warm-up
    before = open_fds()
    results = await asyncio.gather(*(run_script(["/bin/bash", "-c", f"echo {i}; exit {i % 3}"], cwd=tmp_path,
                                                env=None, timeout=10, max_output=1024) for i in range(50)))
    assert [r.status for r in results] == [i % 3 for i in range(50)]
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(50)]
    assert open_fds() == before
