"""The EMS journal: what a restarted agent finds of the scripts a killed one started."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems import journal
from gvnfm.ems.runner import run_script


def test_a_spool_is_adopted_only_if_its_wrapper_ran_or_holds_its_status_file(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    started, forked, never = j.spool("op:a"), j.spool("op:c"), j.spool("op:b")
    for spool in (started, forked, never):
        spool.folder.mkdir(parents=True)
        spool.write_record(30)                 # the agent was killed during (or after) the fork
        spool.status.write_text("")
    started.status.write_text(f"{os.getpid()}\n")  # the wrapper of this one ran its first command
    # this one's child holds the status file (as the forked wrapper does) but has not written it yet
    with open(forked.status, "rb") as status:
        child = subprocess.Popen(["sleep", "30"], stdin=status)
    try:
        found = {spool.key: record for spool, record in j.pending()}
    finally:
        child.kill()
        child.wait()
    assert found["op:a"]["pid"] == os.getpid() and found["op:c"]["pid"] == child.pid
    assert set(found) == {"op:a", "op:c"}
    assert not never.folder.exists()           # never started: gone, the command runs on a resend


def test_a_record_of_the_earlier_version_keeps_its_pid(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    spool = j.spool("op:old")
    spool.folder.mkdir(parents=True)          # written with the process id after the fork; no status line yet
    spool.record.write_text(json.dumps({"key": "op:old", "pid": 4242, "started": 1.0, "timeout": None}))
    spool.status.write_text("")
    [(found, record)] = j.pending()
    assert found.key == "op:old" and record["pid"] == 4242


async def test_a_restarted_agent_reads_the_result_of_a_script_that_ended_while_it_was_down(tmp_path: Path) -> None:
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/bash\necho out\necho err >&2\nexit 4\n")
    script.chmod(0o755)
    j = journal.Journal(tmp_path / "state", max_output=1024)
    spool = j.spool("op:s")
    token = journal.CURRENT.set(spool)
    try:
        result = await run_script([str(script)], cwd=tmp_path, env=None, timeout=30, max_output=1024)
    finally:
        journal.CURRENT.reset(token)
    assert (result.status, result.stdout, result.stderr) == (4, "out\n", "err\n")
    [(found, record)] = j.pending()            # what a restart finds (the result was never stored)
    assert "pid" not in json.loads(spool.record.read_text()) and record["pid"] == journal.read_pid(spool)
    reply = await asyncio.wait_for(j.adopt(found, record), 30)
    assert reply == EmsReply(output="out\n", err="err\n", status=4)


async def test_a_spooled_script_reads_an_empty_stdin_holds_no_status_descriptor_and_its_spool_goes(
        tmp_path: Path) -> None:
    script = tmp_path / "s.sh"    # run by bash (no shebang): reads stdin, lists its descriptors
    script.write_text("read -r line && echo \"stdin: $line\"\nls /proc/$$/fd | sort -n | tr '\\n' ' '\n"
                      "echo \"$PPID $(cut -d' ' -f5 /proc/$$/stat)\" >&2\nexit 3\n")   # its parent, its group
    j = journal.Journal(tmp_path / "state", max_output=1024)
    spool = j.spool("op:fds")
    token = journal.CURRENT.set(spool)
    try:
        result = await run_script(["/bin/bash", str(script)], cwd=tmp_path, env=None, timeout=30, max_output=1024)
    finally:
        journal.CURRENT.reset(token)
    assert result.status == 3
    fds = result.stdout.split()
    assert "stdin:" not in result.stdout and fds[:3] == ["0", "1", "2"]
    assert set(fds) <= {"0", "1", "2", "255"}   # bash's own script descriptor (255) at most
    lines = spool.status.read_text().split("\n")
    # the wrapper's pid (the first line) is the script's parent and its process group (what is killed)
    assert lines[1:] == ["3", ""] and result.stderr.split() == [lines[0], lines[0]]
    spool.remove()
    assert not spool.folder.exists()
    spool.remove()                              # gone already: nothing to do, no error
    cut = j.spool("op:cut")
    (cut.folder / "extra").mkdir(parents=True)  # no record, something else inside: the whole tree goes
    cut.remove()
    assert not cut.folder.exists()


async def test_a_stored_results_spool_is_removed_off_the_loop_and_a_new_run_of_its_key_starts_clean(
        tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    j.discard("op:never-spooled")               # a command without a spool (SAVE_SCRIPTS): nothing to do
    spool = j.open("op:x")
    spool.folder.mkdir(parents=True)
    spool.write_record(30)
    spool.out.write_text("old output")
    j.discard("op:x")
    for _ in range(200):                        # the remover thread
        if not spool.folder.exists():
            break
        await asyncio.sleep(0.01)
    assert not spool.folder.exists()
    again = j.open("op:y")
    again.folder.mkdir(parents=True)
    again.out.write_text("old output")
    j._lock.acquire()                          # the remover has not come to it yet ...
    try:
        j._doomed.add("op:y")                  # ... when its result was stored and the key runs again
        j._live.discard("op:y")
    finally:
        j._lock.release()
    fresh = j.open("op:y")                      # the old spool goes first: nothing of it is read as new
    assert fresh.folder == again.folder and not fresh.folder.exists() and "op:y" not in j._doomed
