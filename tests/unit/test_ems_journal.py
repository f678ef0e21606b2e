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


def gone(spool: journal.Spool) -> bool:
    return not any(path.exists() for path in (spool.record, spool.out, spool.err, spool.status))


def test_a_spool_is_adopted_only_if_its_wrapper_ran_or_holds_its_status_file(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    started, forked, never = j.spool("op:a"), j.spool("op:c"), j.spool("op:b")
    for spool in (started, forked, never):
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
    assert gone(never)                         # never started: gone, the command runs on a resend
    assert sorted(p.name for p in j.root.iterdir()) == sorted(
        p.name for s in (started, forked) for p in (s.record, s.status))


def test_files_of_a_spool_without_a_readable_record_are_removed(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    cut, torn = j.spool("op:cut"), j.spool("op:torn")
    j.root.mkdir(parents=True)
    cut.out.write_text("x")                    # its record was removed first (or never written)
    cut.status.write_text("1\n0\n")
    torn.record.write_text('{"key": "op:to')   # a kill cut the record
    assert j.pending() == [] and gone(cut) and gone(torn) and list(j.root.iterdir()) == []


async def test_a_spool_folder_of_the_earlier_version_is_adopted_with_its_pid_then_removed(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    old = journal.Spool(j.spool("op:old").base, "op:old", legacy=True)   # running/<digest>/command.json, ...
    old.base.mkdir(parents=True)               # written with the process id after the fork; no status line yet
    old.record.write_text(json.dumps({"key": "op:old", "pid": 4242, "started": 1.0, "timeout": None}))
    old.status.write_text("")
    old.out.write_text("so far")
    cut = journal.Spool(j.root / ("0" * 32), "op:cut", legacy=True)
    (cut.base / "command.tmp").mkdir(parents=True)   # no record, something else inside: the whole tree goes
    [(found, record)] = j.pending()
    assert found == old and record["pid"] == 4242 and not cut.base.exists()
    j.discard("op:old")                        # its result stored: the folder goes
    for _ in range(200):
        if not old.base.exists():
            break
        await asyncio.sleep(0.01)
    assert not old.base.exists() and list(j.root.iterdir()) == []


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
    # bash's descriptors listed by a child writing to a file: a pipeline or $(...) would show the pipe
    # bash itself holds meanwhile (seen as fd 4 under load)
    script.write_text("read -r line && echo \"stdin: $line\"\nls /proc/$$/fd > \"$0.fds\"\n"
                      "sort -n \"$0.fds\" | tr '\\n' ' '\n"
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
    assert gone(spool) and list(j.root.iterdir()) == []
    spool.remove()                              # gone already: nothing to do, no error
    cut = journal.Spool(j.root / "cut", "op:cut", legacy=True)   # an earlier version's folder
    (cut.base / "extra").mkdir(parents=True)    # no record, something else inside: the whole tree goes
    cut.remove()
    assert not cut.base.exists()


def test_a_stored_results_spool_is_removed_at_once_and_a_new_run_of_its_key_starts_clean(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    j.discard("op:never-spooled")               # a command without a spool (SAVE_SCRIPTS): nothing to do
    spool = j.open("op:x")
    spool.write_record(30)
    spool.out.write_text("old output")
    spool.status.write_text("4242\n0\n")
    j.discard("op:x")
    assert gone(spool) and list(j.root.iterdir()) == []
    j.discard("op:x")                           # stored twice (a resend answered from the cache): nothing left
    fresh = j.open("op:x")                      # the key runs again: nothing of the old run is read as new
    assert fresh == spool and gone(fresh)
