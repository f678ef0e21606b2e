"""NFVO <-> VNFM messages, keyed by their ``action`` (the NFVO's Gson deserialisers).

Two registries, one per direction: the same action name (GRANT_OPERATION, ERROR, ...) maps to
different classes depending on who sends it.

gvnfm's VNFM adds two fields of its own to what it sends (a Java NFVO reads every VNFM message with
Gson's reflective adapter, which skips fields its class does not have): ``scriptResults`` on the
answers to an ad-hoc EXECUTE (:class:`ScriptResult`), ``failedStep`` on the ERROR of a failed EMS
command (:class:`FailedStep`). The English text of the ERROR stays as it always was; reading it is
only the fallback for VNFMs that do not send those fields.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationError, field_validator

from gvnfm.catalogue.base import WireModel, loads_wire
from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor
from gvnfm.catalogue.ems import EXECUTE
from gvnfm.catalogue.records import (
    VirtualNetworkFunctionRecord,
    VNFCInstance,
    VNFComponent,
    VNFRecordDependency,
)
from gvnfm.catalogue.scripts import Script, VNFPackage

#: Every Action enum name.
ACTIONS = (
    "GRANT_OPERATION", "ALLOCATE_RESOURCES", "SCALE_IN", "SCALE_OUT", "SCALING", "ERROR",
    "RELEASE_RESOURCES", "INSTANTIATE", "MODIFY", "HEAL", "UPDATEVNFR", "UPDATE", "SCALED",
    "RELEASE_RESOURCES_FINISH", "INSTANTIATE_FINISH", "CONFIGURE", "START", "STOP", "LOG_REQUEST",
    "RESUME", "EXECUTE",
)


class MessageError(ValueError):
    """A message that cannot be understood: bad JSON, no/unknown action, wrong shape."""


class NfvMessage(WireModel):
    action: str


# --- NFVO -> VNFM ------------------------------------------------------------------------------


class OrVnfmInstantiateMessage(NfvMessage):
    vnfd: VirtualNetworkFunctionDescriptor | None = None
    vnfdf: dict[str, Any] | None = None
    vnfInstanceName: str | None = None
    vlrs: list[dict[str, Any]] | None = None
    extension: dict[str, Any] | None = None
    vimInstances: dict[str, list[dict[str, Any]]] | None = None
    vnfPackage: VNFPackage | None = None
    vnfr: VirtualNetworkFunctionRecord | None = None
    keys: list[Any] | None = None


class OrVnfmGrantLifecycleOperationMessage(NfvMessage):
    grantAllowed: bool | None = None
    vduVim: dict[str, Any] | None = None
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None


class OrVnfmGenericMessage(NfvMessage):
    vnfr: VirtualNetworkFunctionRecord | None = None
    vnfrd: VNFRecordDependency | None = None


class OrVnfmStartStopMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    vnfcInstance: VNFCInstance | None = None
    vnfrDependency: VNFRecordDependency | None = None


class OrVnfmScalingMessage(NfvMessage):
    component: VNFComponent | None = None
    vnfcInstance: VNFCInstance | None = None
    vimInstance: dict[str, Any] | None = None
    vnfPackage: VNFPackage | None = None
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    dependency: VNFRecordDependency | None = None
    mode: str | None = None
    extension: dict[str, Any] | None = None


class OrVnfmHealVNFRequestMessage(NfvMessage):
    vnfcInstance: VNFCInstance | None = None
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    cause: str | None = None


class OrVnfmUpdateMessage(NfvMessage):
    script: Script | None = None
    vnfr: VirtualNetworkFunctionRecord | None = None


class OrVnfmErrorMessage(NfvMessage):
    vnfr: VirtualNetworkFunctionRecord | None = None
    message: str | None = None


class OrVnfmLogMessage(NfvMessage):
    vnfrName: str | None = None
    hostname: str | None = None


class OrVnfmExecuteScriptMessage(NfvMessage):
    script: Script | None = None
    vnfr: VirtualNetworkFunctionRecord | None = None


NFVO_TO_VNFM: dict[str, type[NfvMessage]] = {
    "INSTANTIATE": OrVnfmInstantiateMessage,
    "GRANT_OPERATION": OrVnfmGrantLifecycleOperationMessage,
    "ALLOCATE_RESOURCES": OrVnfmGenericMessage,
    "MODIFY": OrVnfmGenericMessage,
    "RELEASE_RESOURCES": OrVnfmGenericMessage,
    "CONFIGURE": OrVnfmGenericMessage,
    "RESUME": OrVnfmGenericMessage,
    "UPDATEVNFR": OrVnfmGenericMessage,
    "START": OrVnfmStartStopMessage,
    "STOP": OrVnfmStartStopMessage,
    "SCALE_OUT": OrVnfmScalingMessage,
    "SCALE_IN": OrVnfmScalingMessage,
    "SCALING": OrVnfmScalingMessage,
    "HEAL": OrVnfmHealVNFRequestMessage,
    "UPDATE": OrVnfmUpdateMessage,
    "ERROR": OrVnfmErrorMessage,
    "LOG_REQUEST": OrVnfmLogMessage,
    "EXECUTE": OrVnfmExecuteScriptMessage,
    # the NFVO's answer to the VNFM's SCALING request (``ScalingTask``): the VNFR, new VNFC included, is
    # under ``vnfr``
    "SCALED": OrVnfmGenericMessage,
}


# --- VNFM -> NFVO ------------------------------------------------------------------------------


class ScriptResult(WireModel):
    """One VNFC's entry in gvnfm's ``scriptResults``: the last EMS command of an ad-hoc EXECUTE there
    (``SAVE_SCRIPTS`` when the script could not be saved on it, else ``EXECUTE``) and its reply."""

    hostname: str | None = None
    action: str | None = None
    status: int | None = None
    output: str | None = None
    err: str | None = None


def _script_results(value: Any) -> Any:
    """``scriptResults`` as far as it is usable: not a list is no results, an entry that is not a
    :class:`ScriptResult` is left out (a VNFM's odd field never makes its whole answer unreadable)."""
    if not isinstance(value, list):
        return None
    kept = []
    for entry in value:
        try:
            kept.append(ScriptResult.model_validate(entry))
        except ValidationError:
            continue
    return kept


#: gvnfm's phrase of a failed lifecycle script (``FailedStep.describe``), read back by ``from_text``
_STEP_FAILED = re.compile(r"EMS \((?P<host>[^)]*)\) had the following error: script '(?P<script>[^']*)' of event "
                          r"(?P<event>[A-Z_]+)")
_EXIT_STATUS = re.compile(r"exited with status (-?\d+)")


def exit_status_in(text: str) -> int | None:
    """The exit status an ERROR's text names (``exited with status N``, gvnfm's phrase), if any: the
    fallback for an answer without ``failedStep`` or ``scriptResults``."""
    match = _EXIT_STATUS.search(text)
    return int(match[1]) if match else None


class FailedStep(WireModel):
    """gvnfm's ``failedStep`` on an ERROR answer: the EMS command whose failure ended the operation."""

    hostname: str | None = None
    action: str | None = None       # the EMS command: EXECUTE, SAVE_SCRIPTS, CLONE_SCRIPTS, ...
    event: str | None = None        # the lifecycle event (DELIVER: the delivery of the scripts)
    script: str | None = None       # the lifecycle entry (script and arguments), or the file or link delivered
    status: int | None = None       # the EMS's reply status

    @property
    def is_script(self) -> bool:
        """A lifecycle script's run (not a delivery or a dependency file)."""
        return self.action == EXECUTE

    def describe(self, err: str) -> str:
        """The ERROR's ``detailMessage`` for this step (``err``: the EMS's stderr), as gvnfm has always
        written it; its start is the reference's (``EMS (<hostname>) had the following error:``)."""
        what = f"script {self.script!r} of event {self.event}" if self.is_script else f"{self.action} {self.script!r}"
        return (f"EMS ({self.hostname}) had the following error: {what} exited with status {self.status}: "
                f"{err.strip() or '(no stderr)'}")

    @classmethod
    def from_text(cls, text: str) -> FailedStep | None:
        """The failed script a :meth:`describe` text names (the fallback for an ERROR without
        ``failedStep``); None for any other text."""
        match = _STEP_FAILED.search(text)
        if match is None:
            return None
        return cls(hostname=match["host"], action=EXECUTE, event=match["event"], script=match["script"],
                   status=exit_status_in(text))


class VnfmOrGenericMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    vnfRecordDependency: VNFRecordDependency | None = None
    #: gvnfm: per VNFC, the results of an ad-hoc EXECUTE (its EXECUTE answer)
    scriptResults: list[ScriptResult] | None = None

    usable_script_results = field_validator("scriptResults", mode="before")(_script_results)


class VnfmOrAllocateResourcesMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    vimInstances: dict[str, Any] | None = None
    userdata: str | None = None
    keyPairs: list[Any] | None = None


class VnfmOrScalingMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    userData: str | None = None
    vimInstance: dict[str, Any] | None = None


class VnfmOrInstantiateMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None


class VnfmOrStartStopMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    vnfcInstance: VNFCInstance | None = None
    vnfrDependency: VNFRecordDependency | None = None


class VnfmOrScaledMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    vnfcInstance: VNFCInstance | None = None


class VnfmOrHealedMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    vnfcInstance: VNFCInstance | None = None
    cause: str | None = None


class VnfmOrLogMessage(NfvMessage):
    outputLog: list[str] = Field(default_factory=list)
    errorLog: list[str] = Field(default_factory=list)


class JavaException(WireModel):
    detailMessage: str | None = None
    cause: JavaException | None = None


class VnfmOrErrorMessage(NfvMessage):
    nsrId: str | None = None
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    exception: JavaException | None = None
    #: gvnfm: per VNFC, the results of a failed ad-hoc EXECUTE
    scriptResults: list[ScriptResult] | None = None
    #: gvnfm: the EMS command whose failure ended the operation (its text is in ``exception``)
    failedStep: FailedStep | None = None

    usable_script_results = field_validator("scriptResults", mode="before")(_script_results)


VNFM_TO_NFVO: dict[str, type[NfvMessage]] = {
    "GRANT_OPERATION": VnfmOrGenericMessage,
    "ALLOCATE_RESOURCES": VnfmOrAllocateResourcesMessage,
    "SCALING": VnfmOrScalingMessage,
    "INSTANTIATE": VnfmOrInstantiateMessage,
    "START": VnfmOrStartStopMessage,
    "STOP": VnfmOrStartStopMessage,
    "SCALED": VnfmOrScaledMessage,
    "HEAL": VnfmOrHealedMessage,
    "LOG_REQUEST": VnfmOrLogMessage,
    "ERROR": VnfmOrErrorMessage,
}


def _parse(body: bytes | str | dict[str, Any], registry: dict[str, type[NfvMessage]],
           default: type[NfvMessage] | None) -> NfvMessage:
    if isinstance(body, dict):
        data: Any = body
    else:
        try:
            data = loads_wire(body)   # NaN, Infinity, overflowing numbers refused
        except (UnicodeDecodeError, ValueError) as exc:
            raise MessageError(f"message is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MessageError(f"message must be a JSON object, got {type(data).__name__}")
    action = data.get("action")
    if not isinstance(action, str) or not action:
        raise MessageError("message has no 'action'")
    cls = registry.get(action, default)
    if cls is None or action not in ACTIONS:
        raise MessageError(f"unknown action {action!r}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise MessageError(f"malformed {action} message: {exc.error_count()} error(s): "
                           f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc


def parse_nfvo_message(body: bytes | str | dict[str, Any]) -> NfvMessage:
    """Parse what the NFVO sends to a VNFM. As the reference VNFM's deserialiser, an action of the
    ``Action`` enum without a class of its own is a generic message (``vnfr``, ``vnfrd``); a name outside
    the enum is refused."""
    return _parse(body, NFVO_TO_VNFM, OrVnfmGenericMessage)


def parse_vnfm_message(body: bytes | str | dict[str, Any]) -> NfvMessage:
    """Parse what a VNFM sends to the NFVO (everything not listed is a generic message)."""
    return _parse(body, VNFM_TO_NFVO, VnfmOrGenericMessage)


def vnfr_of(msg: NfvMessage) -> VirtualNetworkFunctionRecord | None:
    """The VNFR a message carries, whichever field name its class uses for it."""
    for attr in ("virtualNetworkFunctionRecord", "vnfr"):
        value = getattr(msg, attr, None)
        if isinstance(value, VirtualNetworkFunctionRecord):
            return value
    return None


#: The body of an answer without a message: Gson's ``toJson(null)``. The reference VNFM answers every
#: command in a ``finally`` block, so ERROR, SCALE_IN and a command it could not parse get these bytes.
NULL_BODY = b"null"
#: NFVO commands that have no answer message (§5.1): the VNFM answers them with :data:`NULL_BODY` (the
#: NFVO waits for an answer to every command, with no timeout).
NO_ANSWER = frozenset({"ERROR", "SCALE_IN"})


def salvage_vnfr(body: bytes | str) -> VirtualNetworkFunctionRecord | None:
    """The VNFR of a message that could not be parsed as a whole, if one can be read from it (an ERROR
    answer is only useful to the NFVO with a VNFR: its ErrorTask fails on a null one)."""
    try:
        data = loads_wire(body)
    except (UnicodeDecodeError, ValueError, TypeError):   # JSONDecodeError and WireNumberError too
        return None
    if not isinstance(data, dict):
        return None
    for key in ("vnfr", "virtualNetworkFunctionRecord"):
        try:
            return VirtualNetworkFunctionRecord.model_validate(data[key])
        except (KeyError, ValidationError):
            continue
    return None


def error_message(vnfr: VirtualNetworkFunctionRecord | None, text: str, cause: str | None = None, *,
                  failed_step: FailedStep | None = None,
                  script_results: list[ScriptResult] | None = None) -> VnfmOrErrorMessage:
    """The VNFM's ERROR: ``text`` (and ``cause``) as the Java exception; gvnfm's own fields only when given."""
    exc = JavaException(detailMessage=text)
    if cause:
        exc.cause = JavaException(detailMessage=cause)
    extra: dict[str, Any] = {}
    if failed_step is not None:
        extra["failedStep"] = failed_step
    if script_results is not None:
        extra["scriptResults"] = script_results
    return VnfmOrErrorMessage(action="ERROR", nsrId=vnfr.parent_ns_id if vnfr else None,
                              virtualNetworkFunctionRecord=vnfr, exception=exc, **extra)
