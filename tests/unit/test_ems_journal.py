"""The EMS journal: what a restarted agent finds of the scripts a killed one started."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems import journal
from gvnfm.ems.runner import run_script


def test_a_record_without_pid_is_adopted_only_if_the_wrapper_ran(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, max_output=1024)
    started, never = j.spool("op:a"), j.spool("op:b")
    for spool in (started, never):
        spool.folder.mkdir(parents=True)
        spool.write_record(None, 30)          # the agent was killed during the fork
    started.status.write_text(f"{os.getpid()}\n")  # the wrapper of this one ran its first command
    never.status.write_text("")
    [(spool, record)] = j.pending()
    assert spool.key == "op:a" and record["pid"] == os.getpid()
    assert not never.folder.exists()           # never started: gone, the command runs on a resend


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
    assert json.loads(spool.record.read_text())["pid"] == record["pid"]
    reply = await asyncio.wait_for(j.adopt(found, record), 30)
    assert reply == EmsReply(output="out\n", err="err\n", status=4)
