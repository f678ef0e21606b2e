"""LogCache: a version per hostname, a cached answer given again only when it can be trusted."""

from __future__ import annotations

from gvnfm.orchestrator.logcache import LogCache

LOGS = {"outputLog": ["ok"], "errorLog": []}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_versions_change_with_the_log() -> None:
    cache = LogCache(clock=Clock())
    assert cache.version("h1") == 0
    cache.changed(["h1", "h2"])
    cache.changed(["h1"])
    assert (cache.version("h1"), cache.version("h2"), cache.version("h3")) == (2, 1, 0)


def test_an_answer_is_given_again_once_settled_and_while_young() -> None:
    clock = Clock()
    cache = LogCache(settle=1.0, max_age=60.0, clock=clock)
    cache.changed(["h1"])
    version = cache.version("h1")
    cache.keep("h1", version, clock.now + 0.5, LOGS)       # fetched too soon after the change
    assert cache.cached("h1", version) is None
    cache.keep("h1", version, clock.now + 1.0, LOGS)
    assert cache.cached("h1", None) is None                 # a first read always asks
    assert cache.cached("h1", version - 1) is None          # the reader saw an older version
    assert cache.cached("h1", version) == LOGS
    clock.now += 61.0
    assert cache.cached("h1", version) is None              # too old


def test_an_answer_fetched_while_the_log_changed_is_not_kept() -> None:
    clock = Clock()
    cache = LogCache(settle=0.0, clock=clock)
    version = cache.version("h1")
    cache.changed(["h1"])
    cache.keep("h1", version, clock.now, LOGS)
    assert cache.cached("h1", version) is None and cache.cached("h1", cache.version("h1")) is None
