"""What the VNFM needs from its store. ``gvnfm.store.sql.SqlStore`` implements it on SQLAlchemy 2
(SQLite by default, PostgreSQL for several workers)."""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger("gvnfm.store")

# Operation states
RUNNING = "RUNNING"
DONE = "DONE"          # finished, reply committed (it may be an ERROR message to the NFVO)
FAILED = "FAILED"      # finished with an error reply; resumable when ``failed_step`` is set


class LeaseLost(Exception):
    """A write conditional on holding an operation's lease found it no longer RUNNING under that worker
    (another worker took it over, or it was finished): the writer must stop working on it."""


class OperationContext(BaseModel):
    """What a re-run of an operation needs (a takeover after a crash, RESUME), stored with it.

    Stored as the JSON object of the fields that differ from their default (:meth:`stored`), so an
    absent field reads as its default. Read back with :meth:`from_stored`, which ignores keys it
    does not know and drops (with a warning) a key whose value does not fit its field: an old row
    never stops an operation from being read."""

    model_config = ConfigDict(extra="ignore")

    #: INSTANTIATE: the VNFR of the NFVO's ALLOCATE_RESOURCES answer (wire JSON); set before any EMS
    #: command, so a re-run never allocates again
    allocated: dict[str, Any] | None = None
    #: SCALE_OUT: the VNFR of the NFVO's SCALING answer (wire JSON), the VNFC instance ids from before
    #: it and the id of the new VNFC instance: a re-run never scales out again
    scaled: dict[str, Any] | None = None
    scaled_before: list[str | None] | None = None
    scaled_vnfc: str | None = None
    #: RESUME: the id of the failed operation it continues, and that operation's original request
    resumes: str | None = None
    original_request: dict[str, Any] | None = None
    #: False: RESUME skips this operation (ad-hoc EXECUTE, SCRIPTS_UPDATE; the reference does not
    #: make them resumable either)
    resumable: bool = True
    #: the broker user of the user-data sent to the NFVO (``broker_users``), None: the shared credentials
    ems_user: str | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON object stored: the fields not at their default."""
        return self.model_dump(mode="json", exclude_defaults=True)

    @classmethod
    def from_stored(cls, data: Any) -> OperationContext:
        """The context of a stored JSON object (None or not an object: the empty context)."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            log.warning("event=operation_context_fields_dropped fields=%s", ",".join(sorted(bad)))
            return cls.model_validate({k: v for k, v in data.items() if k not in bad})


@dataclass
class Operation:
    id: str                         # the NFVO message's correlation_id + a digest of its body (service.operation_key)
    action: str
    vnfr_id: str | None
    vnfr_name: str | None
    state: str
    request: dict[str, Any]         # the NFVO message as received (JSON)
    reply: dict[str, Any] | None    # the reply that was / will be sent, once finished
    error: str | None
    worker: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime
    replied: bool = False
    context: OperationContext = field(default_factory=OperationContext)   # what a re-run needs
    created_by_claim: bool = False  # this claim_operation call created it: it has no steps yet


@dataclass
class StepResult:
    """One script run (or other EMS command) on one VNFC."""

    operation_id: str
    step_id: str                    # unique within the operation (plan step key)
    action: str                     # the EMS command: EXECUTE (a script run), SAVE_SCRIPTS, ...
    event: str
    script_index: int
    script: str
    hostname: str
    vnfr_name: str | None
    status: int                     # exit status; 0 = success
    output: str                     # bounded stdout
    error: str                      # bounded stderr
    started_at: datetime
    duration: float

    @property
    def is_script_run(self) -> bool:
        """A script execution (not a delivery, a script update or a saved dependency)."""
        return self.action == "EXECUTE"


@dataclass
class NfvoRequest:
    """A request to the NFVO recorded before it was sent; ``answer`` once a worker received it."""

    correlation_id: str
    action: str | None
    asked_at: datetime
    answer: bytes | None = None
    created: bool = False    # this record_nfvo_request call recorded it (nobody asked before)


class Store(abc.ABC):
    # -- lifecycle ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- operations -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim_operation(self, op_id: str, *, action: str, vnfr_id: str | None,
                              vnfr_name: str | None, request: dict[str, Any], worker: str,
                              lease_seconds: float) -> tuple[Operation, bool]:
        """Create the operation (state RUNNING, leased to ``worker``) or find it.

        Returns (operation, owned). ``owned`` is True when this worker may work on it now: it was
        created, or it is RUNNING and its lease expired or belongs to ``worker`` (the caller makes
        sure that it does not run one operation twice at once itself). A finished operation is
        returned with owned=False (its stored ``reply`` is the answer to resend).
        Atomic across processes (row lock / conditional update)."""

    @abc.abstractmethod
    async def renew_lease(self, op_id: str, worker: str, lease_seconds: float) -> bool:
        """Extend the lease; False when the operation is no longer RUNNING under ``worker``."""

    @abc.abstractmethod
    async def finish_operation(self, op_id: str, *, state: str, reply: dict[str, Any] | None,
                               error: str | None = None, vnfr_id: str | None = None,
                               vnfr_name: str | None = None, worker: str | None = None,
                               save_vnfr: dict[str, Any] | None = None) -> None:
        """Record the outcome; ``vnfr_id``/``vnfr_name`` fill in what the request did not know
        (an INSTANTIATE learns its VNFR id from the NFVO's grant). With ``worker``, only while the
        operation is RUNNING under that worker, else :class:`LeaseLost` (nothing written).
        ``save_vnfr``: the VNFR's data, saved as ``save_vnfr(vnfr_id, vnfr_name, data)`` would, in the
        same transaction (one commit less before the reply)."""

    @abc.abstractmethod
    async def mark_replied(self, op_id: str) -> None: ...

    @abc.abstractmethod
    async def get_operation(self, op_id: str) -> Operation | None: ...

    @abc.abstractmethod
    async def list_operations(self, *, vnfr_id: str | None = None, state: str | None = None,
                              limit: int = 100) -> list[Operation]: ...

    @abc.abstractmethod
    async def set_context(self, op_id: str, context: OperationContext, *, worker: str | None = None) -> None:
        """Replace the operation's context; with ``worker`` as :meth:`finish_operation`."""

    async def latest_operation(self, prefix: str) -> Operation | None:
        """The operation whose id starts with ``prefix`` that a redelivered message most likely
        started: RUNNING ones first, then those not replied to, then the newest."""
        return None

    # -- progress ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def record_step(self, result: StepResult) -> None:
        """Upsert the result of one step (unique on operation_id + step_id)."""

    async def record_steps(self, results: list[StepResult]) -> None:
        """Upsert several results at once (implementations make it one transaction)."""
        for result in results:
            await self.record_step(result)

    @abc.abstractmethod
    async def steps(self, op_id: str) -> list[StepResult]: ...

    # -- failures for RESUME ------------------------------------------------------------------------
    @abc.abstractmethod
    async def last_failed_operation(self, vnfr_id: str) -> Operation | None:
        """The most recent FAILED operation of this VNFR that has a failed step, if any."""

    # -- VNFRs -------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def save_vnfr(self, vnfr_id: str, name: str, data: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    async def get_vnfr(self, vnfr_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def delete_vnfr(self, vnfr_id: str) -> None: ...

    # -- EMS registrations ----------------------------------------------------------------------
    @abc.abstractmethod
    async def record_registration(self, hostname: str, endpoint: str) -> None: ...

    async def record_registrations(self, hostnames: list[str], endpoint: str) -> None:
        for hostname in hostnames:
            await self.record_registration(hostname, endpoint)

    @abc.abstractmethod
    async def registered_hostnames(self, hostnames: list[str]) -> set[str]: ...

    @abc.abstractmethod
    async def forget_registrations(self, hostnames: list[str]) -> None: ...

    # -- requests to the NFVO ---------------------------------------------------------------------
    @abc.abstractmethod
    async def record_nfvo_request(self, correlation_id: str, action: str) -> NfvoRequest:
        """Record that the request is about to be sent (kept as it is when already recorded); returns
        the record, which tells whether it was asked before and holds the answer if one came."""

    @abc.abstractmethod
    async def record_nfvo_answer(self, correlation_id: str, answer: bytes) -> None:
        """Store the NFVO's answer (the first one wins; an answer to an unrecorded request is kept too)."""

    @abc.abstractmethod
    async def nfvo_request(self, correlation_id: str) -> NfvoRequest | None: ...

    # -- live workers of an endpoint (who unregisters from the NFVO) -----------------------------------
    @abc.abstractmethod
    async def worker_alive(self, worker: str, endpoint: str, lease_seconds: float) -> None:
        """Record (or renew) that ``worker`` serves ``endpoint`` for the next ``lease_seconds``."""

    @abc.abstractmethod
    async def worker_leaving(self, worker: str, endpoint: str) -> int:
        """Remove ``worker``'s row and return how many other workers of ``endpoint`` are still live
        (lease not expired). Atomic across processes: of workers leaving at once, exactly the last one
        sees 0 (it unregisters from the NFVO); a crashed worker's row only counts until it expires."""

    # -- script logs ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def script_results(self, *, vnfr_name: str | None = None, hostname: str | None = None,
                             limit: int = 1000) -> list[StepResult]: ...

    @abc.abstractmethod
    async def prune_script_results(self, older_than: datetime) -> int: ...
