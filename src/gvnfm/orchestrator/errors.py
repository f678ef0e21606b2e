"""What the local orchestrator raises: bad descriptors, short resources, failed operations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gvnfm.orchestrator.records import NetworkServiceRecord


class OrchestratorError(Exception):
    """Base of every orchestrator error; the text is meant for the user."""


class DescriptorError(OrchestratorError):
    """The network service cannot be deployed as described. ``problems`` lists every problem found,
    each naming its place (``vnfd[1] "iperf-client": lifecycle_event[0].event ...``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = f"invalid network service: {self.problems[0]}"
        else:
            text = f"invalid network service ({len(self.problems)} problems):\n" + "\n".join(
                f"  - {p}" for p in self.problems)
        super().__init__(text)


class NotEnoughResources(OrchestratorError):
    """The VIM cannot host what is asked for; the text is the reference NFVO's message."""


class VnfmError(OrchestratorError):
    """A VNFM answered ERROR, did not answer in time, or answered something unusable."""

    def __init__(self, text: str, *, vnfr: str | None = None, action: str | None = None,
                 reply: Any = None) -> None:
        super().__init__(text)
        self.vnfr = vnfr
        self.action = action
        self.reply = reply          # the VNFM's ERROR answer (an ``NfvMessage``), when there was one


class Conflict(OrchestratorError):
    """The request does not fit the VNFR's current state (busy with another operation, a VNFC not in
    the state the request needs, ...): refused, nothing changed. The control API answers 409."""


class VnfmRefused(VnfmError, Conflict):
    """The VNFM answered ERROR to a day-2 request without having changed anything (no VNFC failed,
    no host created, no script reported running): the VNFR keeps its state."""


class DeployFailed(OrchestratorError):
    """A deployment stopped; ``nsr`` is the record (status ERROR), still to be torn down."""

    def __init__(self, text: str, nsr: NetworkServiceRecord) -> None:
        super().__init__(text)
        self.nsr = nsr
