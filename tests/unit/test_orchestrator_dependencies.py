"""Dependency resolution: merging requires/vnf_dependency, and the VNFRecordDependency as the NFVO fills
it (worked example of vnfm-ems §6.10)."""

from __future__ import annotations

from typing import Any

from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor, VNFDependency
from gvnfm.catalogue.records import VirtualNetworkFunctionRecord, VNFCInstance
from gvnfm.orchestrator.dependencies import (
    Edge,
    build_record_dependency,
    build_scaled_dependency,
    is_target,
    merge_dependencies,
    on_cycles,
    sources_of,
    targets_of,
)


def server_vnfr(extra_instances: list[dict[str, Any]] | None = None) -> VirtualNetworkFunctionRecord:
    instances = [
        {"id": "id-A", "hostname": "iperf-server-1111111", "state": "ACTIVE",
         "ips": [{"netName": "private", "ip": "192.168.1.10"}],
         "floatingIps": [{"netName": "private", "ip": "172.24.4.10"}]},
        {"id": "id-B", "hostname": "iperf-server-2222222", "state": "ACTIVE",
         "ips": [{"netName": "private", "ip": "192.168.1.11"}], "floatingIps": []},
        *(extra_instances or []),
    ]
    return VirtualNetworkFunctionRecord.model_validate({
        "name": "iperf-server", "type": "server",
        "configurations": {"name": "c", "configurationParameters": [{"confKey": "port", "value": "5001"}]},
        "provides": {"configurationParameters": []},
        "vdu": [{"vnfc_instance": instances}]})


def test_worked_example_6_10() -> None:
    params = ["private", "private_floatingIp", "hostname", "port"]
    dep = build_record_dependency("iperf-client", [(params, server_vnfr())])
    assert dep.to_wire() == {
        "target": "iperf-client", "idType": {"iperf-server": "server"},
        "parameters": {"server": {"parameters": {"private": "", "private_floatingIp": "", "hostname": "",
                                                 "port": "5001"}}},
        "vnfcParameters": {"server": {"parameters": {
            "id-A": {"parameters": {"private": "192.168.1.10", "private_floatingIp": "172.24.4.10",
                                    "hostname": "iperf-server-1111111"}},
            "id-B": {"parameters": {"private": "192.168.1.11", "hostname": "iperf-server-2222222"}}}}}}


def test_only_requested_vnfc_values_and_provides_precedence() -> None:
    source = server_vnfr()
    source.provides = source.provides.model_validate(  # type: ignore[union-attr]
        {"configurationParameters": [{"confKey": "realm", "value": None}, {"confKey": "port", "value": "1"},
                                     {"confKey": "mode", "value": "fast"}]})
    dep = build_record_dependency("c", [(["private", "realm", "port", "mode", "unknown"], source)],
                                  dependency_id="dep-1")
    wire = dep.to_wire()
    assert wire["id"] == "dep-1"
    # realm: provides value null => dropped; port: configurations win over provides; mode: from provides
    assert wire["parameters"]["server"]["parameters"] == {"private": "", "port": "5001", "mode": "fast", "unknown": ""}
    assert wire["vnfcParameters"]["server"]["parameters"]["id-A"] == {"parameters": {"private": "192.168.1.10"}}


def test_vnf_level_only_parameters_still_list_every_source_vnfc() -> None:
    dep = build_record_dependency("c", [(["port"], server_vnfr())])
    assert dep.to_wire()["vnfcParameters"] == {"server": {"parameters": {"id-A": {"parameters": {}},
                                                                         "id-B": {"parameters": {}}}}}


def test_standby_vnfc_is_not_given_to_targets() -> None:
    standby = {"id": "id-S", "hostname": "iperf-server-5555555", "state": "STANDBY",
               "ips": [{"netName": "private", "ip": "192.168.1.15"}]}
    dep = build_record_dependency("c", [(["private"], server_vnfr([standby]))])
    assert set(dep.vnfcParameters["server"].parameters) == {"id-A", "id-B"}


def test_two_sources_keyed_by_type() -> None:
    db = VirtualNetworkFunctionRecord.model_validate({
        "name": "db", "type": "database", "configurations": {"configurationParameters": [{"confKey": "user",
                                                                                          "value": "u"}]},
        "vdu": [{"vnfc_instance": [{"id": "d1", "hostname": "db-1", "ips": [{"netName": "net", "ip": "10.0.0.5"}]}]}]})
    dep = build_record_dependency("web", [(["private"], server_vnfr()), (["net", "user"], db)])
    assert dep.idType == {"iperf-server": "server", "db": "database"}
    assert dep.parameters["database"].parameters == {"net": "", "user": "u"}
    assert dep.vnfcParameters["database"].parameters["d1"].parameters == {"net": "10.0.0.5"}


def test_scaled_dependency_has_only_the_new_vnfc_unfiltered() -> None:
    new = VNFCInstance.model_validate({
        "id": "id-C", "hostname": "iperf-server-4444444", "state": "ACTIVE",
        "ips": [{"netName": "private", "ip": "192.168.1.12"}, {"netName": "mgmt", "ip": "10.9.9.9"}],
        "floatingIps": [{"netName": "mgmt", "ip": "172.24.4.12"}]})
    source = server_vnfr([new.to_wire()])
    dep = build_scaled_dependency("iperf-client", ["private", "port"], source, new)
    assert dep.to_wire() == {
        "target": "iperf-client", "idType": {"iperf-server": "server"},
        "parameters": {"server": {"parameters": {"private": "", "port": "5001"}}},
        "vnfcParameters": {"server": {"parameters": {"id-C": {"parameters": {
            "private": "192.168.1.12", "mgmt": "10.9.9.9", "mgmt_floatingIp": "172.24.4.12",
            "hostname": "iperf-server-4444444"}}}}}}


def vnfd(name: str, requires: dict[str, list[str]] | None = None) -> VirtualNetworkFunctionDescriptor:
    return VirtualNetworkFunctionDescriptor.model_validate(
        {"name": name, "requires": {k: {"parameters": v} for k, v in (requires or {}).items()}})


def test_merge_requires_and_vnf_dependency() -> None:
    vnfds = [vnfd("db"), vnfd("app", {"db": ["private", "hostname"]}), vnfd("web", {"app": [], "db": ["port"]})]
    explicit = [VNFDependency.model_validate({"source": {"name": "db"}, "target": {"name": "app"},
                                              "parameters": ["hostname", "schema"]}),
                VNFDependency.model_validate({"source": "app", "target": "web", "parameters": ["private"]})]
    edges = merge_dependencies(vnfds, explicit)
    assert edges == [Edge("db", "app", ("private", "hostname", "schema")), Edge("db", "web", ("port",)),
                     Edge("app", "web", ("private",))]
    assert [e.source for e in sources_of(edges, "web")] == ["db", "app"]
    assert [e.target for e in targets_of(edges, "db")] == ["app", "web"]
    assert is_target(edges, "app") and not is_target(edges, "db")
    assert on_cycles(edges) == set()


def test_mutual_dependencies_are_cycles_not_errors() -> None:
    edges = merge_dependencies([vnfd("a", {"b": ["private"]}), vnfd("b", {"a": ["hostname"]}), vnfd("c", {"a": ["x"]})])
    assert on_cycles(edges) == {"a", "b"}
    assert [e.source for e in sources_of(edges, "a")] == ["b"]
    assert [e.source for e in sources_of(edges, "b")] == ["a"]
