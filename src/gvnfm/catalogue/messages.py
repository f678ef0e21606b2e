"""NFVO <-> VNFM messages, keyed by their ``action`` (the NFVO's Gson deserialisers).

Two registries, one per direction: the same action name (GRANT_OPERATION, ERROR, ...) maps to
different classes depending on who sends it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from gvnfm.catalogue.base import WireModel, loads_wire
from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor
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


class VnfmOrGenericMessage(NfvMessage):
    virtualNetworkFunctionRecord: VirtualNetworkFunctionRecord | None = None
    vnfRecordDependency: VNFRecordDependency | None = None


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


def error_message(vnfr: VirtualNetworkFunctionRecord | None, text: str, cause: str | None = None) -> VnfmOrErrorMessage:
    exc = JavaException(detailMessage=text)
    if cause:
        exc.cause = JavaException(detailMessage=cause)
    return VnfmOrErrorMessage(action="ERROR", nsrId=vnfr.parent_ns_id if vnfr else None,
                              virtualNetworkFunctionRecord=vnfr, exception=exc)
