"""The bench's own process kept out of the figures it times: its garbage collector is run before a
timed window and is off during it (timeit's rule), so that no collection of the harness (its NFVO, its
floor client, its report) lands inside a figure, gvnfm's or the floor's.

Measured (ninth round, docs/performance.md): the bench process's generation-2 collections took 16–64 ms,
and one landed in the 7th of 15 storm floors in each of four runs, which made that floor 40–70 ms instead
of 4–6 ms. The processes under test (the VNFM, the EMS fleet, the floor's server) keep their collectors:
what theirs cost is part of what is measured.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: open windows, and whether the collector was on when the first opened
_open = {"depth": 0, "enabled": True}


@contextlib.contextmanager
def timed_window() -> Iterator[None]:
    """Collect, then keep the collector off until the outermost window ends (windows may nest)."""
    if _open["depth"] == 0:
        gc.collect()
        _open["enabled"] = gc.isenabled()
        gc.disable()
    _open["depth"] += 1
    try:
        yield
    finally:
        _open["depth"] -= 1
        if _open["depth"] == 0 and _open["enabled"]:
            gc.enable()
