"""Every record and message survives parse → dump unchanged, unknown fields included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gvnfm.catalogue.messages import (
    NFVO_TO_VNFM,
    VNFM_TO_NFVO,
    MessageError,
    OrVnfmGenericMessage,
    OrVnfmInstantiateMessage,
    error_message,
    parse_nfvo_message,
    parse_vnfm_message,
    vnfr_of,
)
from gvnfm.catalogue.records import VirtualNetworkFunctionRecord, VNFRecordDependency
from gvnfm.catalogue.scripts import Script

FIXTURES = Path(__file__).parent.parent / "fixtures"
VNFR = json.loads((FIXTURES / "vnfr_iperf_client.json").read_text())
DEP = json.loads((FIXTURES / "dependency_server_client.json").read_text())
VNFC = VNFR["vdu"][0]["vnfc_instance"][0]
VNFD = json.loads((FIXTURES / "vnfd_iperf_server.json").read_text())
SCRIPT = {"id": "s-1", "name": "install.sh", "payload": [35, 33, 47, 98, 105, 110, 47, 98, 97, 115, 104, 10, -61, -87]}

NFVO_MESSAGES = {
    "INSTANTIATE": {"action": "INSTANTIATE", "vnfd": VNFD, "vnfdf": {"flavour_key": "m1.small", "id": "df"},
                    "vnfInstanceName": "iperf-server", "vlrs": [{"id": "vlr-1", "name": "private", "extId": "net-1"}],
                    "extension": {"nsr-id": "nsr-1", "brokerIp": "10.0.0.1", "brokerPort": "5672",
                                  "monitoringIp": "", "timezone": "CET"},
                    "vimInstances": {"vdud-1": [{"id": "vim-1", "name": "vim-1", "type": "openstack"}]},
                    "vnfPackage": {"id": "pkg-1", "name": "iperf", "scripts": [SCRIPT]}, "vnfr": None, "keys": []},
    "GRANT_OPERATION": {"action": "GRANT_OPERATION", "grantAllowed": True, "vduVim": {"vdu-1": {"name": "vim-1"}},
                        "virtualNetworkFunctionRecord": VNFR},
    "ALLOCATE_RESOURCES": {"action": "ALLOCATE_RESOURCES", "vnfr": VNFR, "vnfrd": None},
    "MODIFY": {"action": "MODIFY", "vnfr": VNFR, "vnfrd": DEP},
    "RELEASE_RESOURCES": {"action": "RELEASE_RESOURCES", "vnfr": VNFR},
    "CONFIGURE": {"action": "CONFIGURE", "vnfr": VNFR},
    "RESUME": {"action": "RESUME", "vnfr": VNFR, "vnfrd": DEP},
    "UPDATEVNFR": {"action": "UPDATEVNFR", "vnfr": VNFR},
    "START": {"action": "START", "virtualNetworkFunctionRecord": VNFR, "vnfcInstance": VNFC},
    "STOP": {"action": "STOP", "virtualNetworkFunctionRecord": VNFR, "vnfcInstance": None, "vnfrDependency": DEP},
    "SCALE_OUT": {"action": "SCALE_OUT", "component": {"id": "c1", "connection_point": []},
                  "virtualNetworkFunctionRecord": VNFR,
                  "vnfPackage": {"scriptsLink": "file:///tmp/repo.git"}, "dependency": DEP, "mode": "standby",
                  "extension": {"nsr-id": "nsr-1"}, "vimInstance": {"name": "vim-1"}},
    "SCALE_IN": {"action": "SCALE_IN", "virtualNetworkFunctionRecord": VNFR, "vnfcInstance": VNFC},
    "SCALING": {"action": "SCALING", "virtualNetworkFunctionRecord": VNFR},
    "HEAL": {"action": "HEAL", "virtualNetworkFunctionRecord": VNFR, "vnfcInstance": VNFC,
             "cause": "switchToStandby"},
    "UPDATE": {"action": "UPDATE", "script": SCRIPT, "vnfr": VNFR},
    "ERROR": {"action": "ERROR", "vnfr": VNFR, "message": "Not enough resources for deploying VNFR iperf-client"},
    "LOG_REQUEST": {"action": "LOG_REQUEST", "vnfrName": "iperf-client", "hostname": "iperf-client-3333333"},
    "EXECUTE": {"action": "EXECUTE", "script": SCRIPT, "vnfr": VNFR},
    # ScalingTask: new OrVnfmGenericMessage(vnfr, Action.SCALED), as Gson writes it (vnfrd null)
    "SCALED": {"action": "SCALED", "vnfr": VNFR, "vnfrd": None},
}

VNFM_MESSAGES = {
    "GRANT_OPERATION": {"action": "GRANT_OPERATION", "virtualNetworkFunctionRecord": VNFR},
    "ALLOCATE_RESOURCES": {"action": "ALLOCATE_RESOURCES", "virtualNetworkFunctionRecord": VNFR,
                           "vimInstances": {"vdu-1": {"name": "vim-1"}}, "userdata": "#!/bin/bash\n", "keyPairs": []},
    "SCALING": {"action": "SCALING", "virtualNetworkFunctionRecord": VNFR, "userData": "x",
                "vimInstance": {"name": "v"}},
    "INSTANTIATE": {"action": "INSTANTIATE", "virtualNetworkFunctionRecord": VNFR},
    "START": {"action": "START", "virtualNetworkFunctionRecord": VNFR, "vnfcInstance": VNFC},
    "STOP": {"action": "STOP", "virtualNetworkFunctionRecord": VNFR},
    "SCALED": {"action": "SCALED", "virtualNetworkFunctionRecord": VNFR, "vnfcInstance": VNFC},
    "HEAL": {"action": "HEAL", "virtualNetworkFunctionRecord": VNFR, "vnfcInstance": VNFC, "cause": "disk"},
    "LOG_REQUEST": {"action": "LOG_REQUEST", "outputLog": ["a", "b"], "errorLog": []},
    "ERROR": {"action": "ERROR", "nsrId": "nsr-1", "virtualNetworkFunctionRecord": VNFR,
              "exception": {"detailMessage": "boom", "cause": {"detailMessage": "stderr"}}},
    "MODIFY": {"action": "MODIFY", "virtualNetworkFunctionRecord": VNFR, "vnfRecordDependency": DEP},
    "RELEASE_RESOURCES": {"action": "RELEASE_RESOURCES", "virtualNetworkFunctionRecord": VNFR},
}


def test_vnfr_round_trips_unchanged() -> None:
    vnfr = VirtualNetworkFunctionRecord.model_validate(VNFR)
    assert vnfr.to_wire() == VNFR
    assert vnfr.hbVersion == 3 and vnfr.vdu and vnfr.vdu[0].vnfc_instance
    # unknown fields are kept at every depth
    assert vnfr.to_wire()["vdu"][0]["high_availability"]["redundancyScheme"] == "1:N"
    assert vnfr.to_wire()["virtual_link"][0]["connectivity_type"] == []


def test_vnfr_survives_modification_of_modelled_fields() -> None:
    vnfr = VirtualNetworkFunctionRecord.model_validate(VNFR)
    vnfr.vnfc_instances()[0].state = "error"
    out = vnfr.to_wire()
    assert out["vdu"][0]["vnfc_instance"][0]["state"] == "error"
    assert out["vdu"][0]["vnfc_instance"][0]["hbVersion"] == 2
    assert out["createdAt"] == VNFR["createdAt"]


def test_dependency_round_trips() -> None:
    assert VNFRecordDependency.model_validate(DEP).to_wire() == DEP


@pytest.mark.parametrize("action", sorted(NFVO_MESSAGES))
def test_every_nfvo_message_round_trips(action: str) -> None:
    data = NFVO_MESSAGES[action]
    msg = parse_nfvo_message(json.dumps(data))
    assert type(msg) is NFVO_TO_VNFM[action]
    assert msg.to_wire() == data


@pytest.mark.parametrize("action", sorted(VNFM_MESSAGES))
def test_every_vnfm_message_round_trips(action: str) -> None:
    data = VNFM_MESSAGES[action]
    msg = parse_vnfm_message(json.dumps(data).encode())
    assert type(msg) is VNFM_TO_NFVO.get(action, VNFM_TO_NFVO["GRANT_OPERATION"])
    assert msg.to_wire() == data


def test_every_nfvo_action_has_a_class() -> None:
    assert set(NFVO_MESSAGES) == set(NFVO_TO_VNFM)


def test_script_payload_is_java_signed_bytes() -> None:
    script = Script.model_validate(SCRIPT)
    assert script.payload == "#!/bin/bash\né".encode()
    assert script.to_wire()["payload"] == SCRIPT["payload"]
    assert Script.model_validate({"name": "a", "payload": script.payload_base64()}).payload == script.payload


def test_instantiate_carries_the_package_scripts() -> None:
    msg = parse_nfvo_message(json.dumps(NFVO_MESSAGES["INSTANTIATE"]))
    assert isinstance(msg, OrVnfmInstantiateMessage)
    assert msg.vnfPackage is not None and msg.vnfPackage.scripts
    assert msg.vnfPackage.scripts[0].payload.startswith(b"#!/bin/bash")


@pytest.mark.parametrize("action", ["INSTANTIATE_FINISH", "RELEASE_RESOURCES_FINISH", "UPDATEVNFR", "SCALED"])
def test_an_action_without_a_class_of_its_own_is_a_generic_message(action: str) -> None:
    msg = parse_nfvo_message(json.dumps({"action": action, "vnfr": VNFR}))
    assert type(msg) is OrVnfmGenericMessage and msg.action == action
    assert vnfr_of(msg) is not None and vnfr_of(msg).name == VNFR["name"]  # type: ignore[union-attr]


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "not valid JSON"),
    (b"[1,2]", "JSON object"),
    (b'{"vnfr": {}}', "no 'action'"),
    (b'{"action": "DANCE"}', "unknown action"),
    (b'{"action": "MODIFY", "vnfr": {"name": 5, "vdu": "x"}}', "malformed MODIFY"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_bad_messages_are_refused_with_a_reason(body: bytes, needle: str) -> None:
    with pytest.raises(MessageError, match=needle):
        parse_nfvo_message(body)


def test_error_message_names_the_nsr_and_cause() -> None:
    vnfr = VirtualNetworkFunctionRecord.model_validate(VNFR)
    out = error_message(vnfr, "script failed", "stderr text").to_wire()
    assert out["action"] == "ERROR" and out["nsrId"] == VNFR["parent_ns_id"]
    assert out["exception"] == {"detailMessage": "script failed", "cause": {"detailMessage": "stderr text"}}
