"""One operation at a time per VNFR.

Every action the orchestrator sends about a VNFR (INSTANTIATE, MODIFY, START, STOP, SCALE_OUT, HEAL,
UPDATE, EXECUTE, RESUME) runs while it *holds* that VNFR, from its checks to the record update. An
operation that reconfigures other VNFRs (SCALE_OUT / SCALE_IN / switchToStandby reconfigure the
dependency targets) holds them too, for its whole run. A hold takes all its VNFRs at once or none,
so two operations never wait for each other (no deadlock, mutual dependencies included).

A second request on a held VNFR either waits (``wait=True``, the orchestrator's own follow-ups such as
the MODIFY/START after a RESUME) or is refused at once with ``Busy`` (``wait=False``: the control API,
which answers 409 Conflict).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from gvnfm.orchestrator.errors import Conflict
from gvnfm.orchestrator.records import now

Key = tuple[str, str]   # (NSR id, VNFR name)


class Busy(Conflict):
    """The VNFR is held by another operation; nothing was sent, nothing changed."""


@dataclass
class Hold:
    vnfr: str                 # the VNFR the operation is about
    action: str
    since: str = field(default_factory=now)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def describe(self, name: str) -> str:
        about = "" if name == self.vnfr else f" of VNFR {self.vnfr} (whose dependants it reconfigures)"
        return f"VNFR {name} is busy with {self.action}{about}, running since {self.since}"


class VnfrLocks:
    def __init__(self) -> None:
        self._held: dict[Key, Hold] = {}

    def holder(self, nsr_id: str, name: str) -> Hold | None:
        return self._held.get((nsr_id, name))

    @contextlib.asynccontextmanager
    async def hold(self, nsr_id: str, vnfr: str, action: str, *, others: Iterable[str] = (),
                   wait: bool = True) -> AsyncIterator[Hold]:
        """Hold ``vnfr`` and ``others`` (all of them or none) for the block."""
        names = list(dict.fromkeys([vnfr, *others]))
        keys = [(nsr_id, n) for n in names]
        while True:
            busy = [(k[1], self._held[k]) for k in keys if k in self._held]
            if not busy:
                break
            if not wait:
                name, other = busy[0]
                raise Busy(f"{other.describe(name)}: {action} refused, try again when it has finished")
            await busy[0][1].released.wait()
        hold = Hold(vnfr=vnfr, action=action)
        for k in keys:                       # no await between the check and here: atomic
            self._held[k] = hold
        try:
            yield hold
        finally:
            for k in keys:
                if self._held.get(k) is hold:
                    del self._held[k]
            hold.released.set()
