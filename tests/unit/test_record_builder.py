"""build_vnfr: the VNFR the VNFM makes of an INSTANTIATE's VNFD (protocol §4 step 1, descriptors §1.12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gvnfm.catalogue.messages import OrVnfmInstantiateMessage
from gvnfm.catalogue.records import ConfigurationParameter
from gvnfm.vnfm.environment import base_env
from gvnfm.vnfm.record_builder import RecordError, build_vnfr

FIXTURES = Path(__file__).parent.parent / "fixtures"


def message(**changes: Any) -> dict[str, Any]:
    vnfd = json.loads((FIXTURES / "vnfd_iperf_server.json").read_text())
    vnfd["vdu"][0]["name"] = "server-vdu"
    vnfd["virtual_link"].append({"id": "vl-d2", "name": "mgmt"})
    vnfd["auto_scale_policy"] = [{"id": "asp-1", "name": "cpu", "threshold": 80, "alarms": [{"id": "al-1"}]}]
    msg = {"action": "INSTANTIATE", "vnfd": vnfd, "vnfdf": {"id": "df-1", "flavour_key": "m1.medium"},
           "vnfInstanceName": "iperf-server",
           "vlrs": [{"id": "vlr-77", "name": "private", "extId": "net-private-on-vim", "vim_id": "vim-1"},
                    {"id": "vlr-78", "name": "other", "extId": "net-other"},
                    {"id": "vlr-79", "name": "mgmt"}],                  # no network id known yet
           "extension": {"nsr-id": "nsr-9", "brokerIp": "10.0.0.1"},
           "vimInstances": {"vdud-1": [{"id": "vim-a", "name": "vim-east"}, {"id": "vim-b", "name": "vim-west"}]},
           "vnfPackage": {"id": "pkg-42", "scripts": []}, "keys": []}
    msg.update(changes)
    return msg


def build(**changes: Any) -> dict[str, Any]:
    return build_vnfr(OrVnfmInstantiateMessage.model_validate(message(**changes))).to_wire()


def test_the_vnfr_of_a_vnfd() -> None:
    vnfr = build()
    assert (vnfr["name"], vnfr["type"], vnfr["endpoint"], vnfr["vendor"], vnfr["version"]) == (
        "iperf-server", "server", "generic", "FOKUS", "1.0")
    assert vnfr["status"] == "NULL" and "id" not in vnfr and "hbVersion" not in vnfr
    assert vnfr["parent_ns_id"] == "nsr-9"
    assert vnfr["deployment_flavour_key"] == "m1.medium"
    assert vnfr["descriptor_reference"] == "vnfd-srv"
    assert vnfr["packageId"] == "pkg-42"
    assert vnfr["lifecycle_event_history"] == [] and vnfr["vnf_address"] == []
    # lifecycle events copied without their ids
    assert vnfr["lifecycle_event"] == [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh", "install-srv.sh"]}]


def test_vdus_are_copied_without_ids_and_point_at_their_descriptor() -> None:
    [vdu] = build()["vdu"]
    assert "id" not in vdu and vdu["parent_vdu"] == "vdud-1"
    assert vdu["vimInstanceName"] == ["vim-east", "vim-west"]          # names of vimInstances[vdu id]
    assert vdu["vnfc_instance"] == []
    assert all("id" not in c and all("id" not in cp for cp in c["connection_point"]) for c in vdu["vnfc"])
    assert vdu["vnfc"][0]["connection_point"][0]["virtual_link_reference"] == "private"
    # matched by VDU name too; the VDU's own names when the NFVO names none
    by_name = build(vimInstances={"server-vdu": [{"name": "vim-north"}]})
    assert by_name["vdu"][0]["vimInstanceName"] == ["vim-north"]
    vnfd = message()["vnfd"]
    vnfd["vdu"][0]["vimInstanceName"] = ["vim-own"]
    assert build(vnfd=vnfd, vimInstances={})["vdu"][0]["vimInstanceName"] == ["vim-own"]


def test_virtual_links_get_the_vim_network_id_of_their_record() -> None:
    links = {link["name"]: link for link in build()["virtual_link"]}
    # the Java field extId (Gson drops an exId), the VLR's extId, not the record's id
    assert links["private"] == {"name": "private", "extId": "net-private-on-vim"}
    assert links["mgmt"] == {"name": "mgmt"}                                       # a record without extId


def test_configurations_provides_requires() -> None:
    vnfr = build(vnfd={**message()["vnfd"], "requires": {"client": {"parameters": ["private"]},
                                                         "db": {"parameters": ["hostname", "port"]}}})
    assert vnfr["configurations"] == {"name": "server-conf",
                                      "configurationParameters": [{"confKey": "port", "value": "5001"}]}
    # provides: the keys, no values (as the Java SDK's VNFRUtils); they give no variable
    assert vnfr["provides"] == {"name": "provides", "configurationParameters": [{"confKey": "port"}]}
    # a Configuration, as VNFRUtils.setRequires makes it
    assert vnfr["requires"] == {"name": "requires", "configurationParameters": [
        {"confKey": "private"}, {"confKey": "hostname"}, {"confKey": "port"}]}
    assert vnfr["cyclicDependency"] is False
    assert vnfr["auto_scale_policy"] == [{"name": "cpu", "threshold": 80, "alarms": [{}]}]
    record = build_vnfr(OrVnfmInstantiateMessage.model_validate(message()))
    assert base_env(record) == {"port": "5001"}
    # values the NFVO fills into provides reach the scripts (they run with the NFVO's VNFR)
    assert record.provides is not None
    record.provides.configurationParameters = [ConfigurationParameter(confKey="port", value="6001"),
                                               ConfigurationParameter(confKey="realm", value="ims")]
    assert base_env(record) == {"port": "5001", "realm": "ims"}       # configurations win over provides
    no_conf = build(vnfd={k: v for k, v in message()["vnfd"].items() if k not in ("configurations", "provides")})
    assert no_conf["configurations"] == {"name": "iperf-server-configuration", "configurationParameters": []}
    assert no_conf["provides"] == {"name": "provides", "configurationParameters": []}


def test_package_location_when_no_package_id() -> None:
    assert build(vnfPackage=None)["packageId"] == "https://github.com/openbaton/vnf-scripts.git"


@pytest.mark.parametrize(("change", "needle"), [
    ({"vnfd": None}, "carries no 'vnfd'"),
    ({"vnfd": {"vdu": [{}]}}, "has no name"),
    ({"vnfd": {"name": "x", "vdu": []}}, "has no VDU"),
])
def test_unusable_vnfds_are_refused(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(RecordError, match=needle):
        build(**change)
