"""The result cache: one execution per key, bounded LRU, state file that survives restarts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gvnfm.catalogue.ems import EmsReply
from gvnfm.ems.dedupe import ResultCache, command_key


def test_key_needs_a_correlation_id_and_covers_the_body() -> None:
    assert command_key(None, b"x") is None and command_key("", b"x") is None
    assert command_key("c", b"x") == command_key("c", b"x")
    assert command_key("c", b"x") != command_key("c", b"y")


async def test_one_execution_per_key_and_none_without_key() -> None:
    cache = ResultCache()
    runs = 0
    gate = asyncio.Event()

    async def work() -> EmsReply:
        nonlocal runs
        runs += 1
        await gate.wait()
        return EmsReply(output=f"run {runs}")

    tasks = [asyncio.create_task(cache.run("k", work)) for _ in range(3)]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert runs == 1
    assert [r[0].output for r in results] == ["run 1"] * 3
    assert sorted(r[1] for r in results) == ["inflight", "inflight", "new"]
    assert (await cache.run("k", work)) == (EmsReply(output="run 1"), "done")
    await cache.run(None, work)
    await cache.run(None, work)
    assert runs == 3


async def test_cancelled_requester_does_not_cancel_the_execution() -> None:
    cache = ResultCache()
    gate = asyncio.Event()

    async def work() -> EmsReply:
        await gate.wait()
        return EmsReply(output="done")

    first = asyncio.create_task(cache.run("k", work))
    await asyncio.sleep(0.02)
    first.cancel()   # e.g. the delivery's connection went away
    await asyncio.sleep(0.02)
    second = asyncio.create_task(cache.run("k", work))
    gate.set()
    assert (await second) == (EmsReply(output="done"), "inflight")


async def test_cancel_all_forgets_the_running_key() -> None:
    cache = ResultCache()

    async def hang() -> EmsReply:
        await asyncio.sleep(60)
        return EmsReply()

    task = asyncio.create_task(cache.run("k", hang))
    await asyncio.sleep(0.02)
    await cache.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cache.running == 0 and "k" not in cache

    async def quick() -> EmsReply:
        return EmsReply(output="again")

    assert (await cache.run("k", quick))[1] == "new"


async def test_lru_bounds_entries_and_bytes() -> None:
    cache = ResultCache(max_entries=3, max_bytes=10_000)
    for i in range(5):
        await cache.run(f"k{i}", lambda i=i: _reply(f"r{i}"))
    assert len(cache) == 3 and "k0" not in cache and "k4" in cache
    await cache.run("big", lambda: _reply("x" * 9_990))
    assert len(cache) == 1 and "big" in cache
    await cache.run("huge", lambda: _reply("x" * 20_000))   # the newest stays even when over budget
    assert len(cache) == 1 and "huge" in cache


def append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


async def _reply(text: str, err: str = "") -> EmsReply:
    return EmsReply(output=text, err=err)


async def test_state_file_persists_compacts_and_skips_bad_lines(tmp_path: Path) -> None:
    state = tmp_path / "state" / "results.jsonl"
    cache = ResultCache(max_entries=2, state_file=state)
    for i in range(6):
        await cache.run(f"k{i}", lambda i=i: _reply(f"r{i}"))
    lines = state.read_text().splitlines()
    assert len(lines) <= 4  # compacted when it grew beyond twice the LRU
    assert state.stat().st_mode & 0o777 == 0o600
    append(state, "not json\n" + json.dumps({"k": "x"}) + "\n")
    again = ResultCache(max_entries=2, state_file=state)
    assert again.load() == 2
    assert again.get("k5") == EmsReply(output="r5") and again.get("k4") == EmsReply(output="r4")
    assert again.get("k0") is None


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_results_older_than_max_age_are_not_returned(tmp_path: Path) -> None:
    clock = Clock()
    cache = ResultCache(max_age=3600, clock=clock, state_file=tmp_path / "results.jsonl")
    runs = 0

    async def work() -> EmsReply:
        nonlocal runs
        runs += 1
        return EmsReply(output=f"run {runs}")

    assert await cache.run("k", work) == (EmsReply(output="run 1"), "new")
    clock.now += 3599
    assert await cache.run("k", work) == (EmsReply(output="run 1"), "done")
    clock.now += 2
    assert "k" not in cache
    assert await cache.run("k", work) == (EmsReply(output="run 2"), "new")   # executed again, not stale
    assert [json.loads(line)["t"] for line in (tmp_path / "results.jsonl").read_text().splitlines()] == [
        1_700_000_000.0, clock.now]


async def test_expired_and_undated_lines_are_dropped_on_load_and_from_the_file(tmp_path: Path) -> None:
    state = tmp_path / "results.jsonl"
    now = 1_700_000_000.0
    lines = [{"k": "old", "t": now - 90_000, "r": {"output": "stale"}},
             {"k": "undated", "r": {"output": "unknown age"}},
             {"k": "fresh", "t": now - 60, "r": {"output": "recent"}},
             {"k": "bad-stamp", "t": "yesterday", "r": {"output": "x"}}]
    append(state, "".join(json.dumps(item) + "\n" for item in lines))
    cache = ResultCache(state_file=state, clock=Clock(now))   # default max age: 24 h
    assert cache.max_age == 24 * 3600
    assert cache.load() == 1
    assert cache.get("fresh") == EmsReply(output="recent")
    assert cache.get("old") is None and cache.get("undated") is None
    kept = [json.loads(line) for line in state.read_text().splitlines()]
    assert kept == [{"k": "fresh", "t": now - 60, "r": {"output": "recent", "err": "", "status": 0}}]
    assert state.stat().st_mode & 0o777 == 0o600


async def test_compaction_keeps_the_time_stamps(tmp_path: Path) -> None:
    clock = Clock()
    state = tmp_path / "results.jsonl"
    cache = ResultCache(max_entries=2, state_file=state, clock=clock, max_age=100)
    for i in range(5):
        clock.now += 10
        await cache.run(f"k{i}", lambda i=i: _reply(f"r{i}"))
    assert all("t" in json.loads(line) for line in state.read_text().splitlines())
    clock.now += 75   # k3 was stored 85 s ago, k4 75 s ago
    again = ResultCache(max_entries=2, state_file=state, clock=clock, max_age=80)
    assert again.load() == 1 and again.get("k4") == EmsReply(output="r4")


async def test_state_file_is_bounded_by_bytes_whatever_the_output(tmp_path: Path) -> None:
    # binary output (replacement characters once decoded) of 64 KiB per stream, far fewer results than
    # the entry bound: the file stays within max_file_bytes (plus the line being appended)
    state = tmp_path / "results.jsonl"
    noise = bytes(range(128, 256)).decode("utf-8", "replace") * 512
    cache = ResultCache(max_entries=1024, max_bytes=256 * 1024, max_file_bytes=512 * 1024, state_file=state)
    line_bytes = 0
    for i in range(40):
        await cache.run(f"k{i}", lambda i=i: _reply(noise + str(i), err=noise))
        assert state.stat().st_size <= cache.max_file_bytes, i
        line_bytes = max(line_bytes, len(state.read_bytes().splitlines()[-1]))
    again = ResultCache(max_entries=1024, max_bytes=256 * 1024, max_file_bytes=512 * 1024, state_file=state)
    again.load()
    assert again.get("k39") is not None and again.get("k39").output.endswith("39")  # type: ignore[union-attr]
    assert again.get("k0") is None   # the oldest went with a compaction
    assert line_bytes < 3 * 2 * len(noise) + 200   # not ASCII-escaped: 3 bytes per replacement character
