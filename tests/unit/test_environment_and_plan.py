"""Environment rules (§6) and plan order, with the worked example of §6.10: a client VNFC configured
against two server instances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gvnfm.catalogue.records import LifecycleEvent, VirtualNetworkFunctionRecord, VNFCInstance, VNFRecordDependency
from gvnfm.catalogue.scripts import Script
from gvnfm.vnfm import environment as envs
from gvnfm.vnfm import plan as plans

FIXTURES = Path(__file__).parent.parent / "fixtures"
DEP = VNFRecordDependency.model_validate(json.loads((FIXTURES / "dependency_server_client.json").read_text()))


def client_vnfr(n_vnfc: int = 1) -> VirtualNetworkFunctionRecord:
    instances = [
        {"id": f"client-{i}", "hostname": f"iperf-client-333333{i}",
         "ips": [{"netName": "private", "ip": f"192.168.1.{20 + i}"}], "floatingIps": []}
        for i in range(n_vnfc)
    ]
    return VirtualNetworkFunctionRecord.model_validate({
        "id": "vnfr-c", "name": "iperf-client", "type": "client",
        "configurations": {"configurationParameters": [{"confKey": "mode", "value": "tcp"}]},
        "provides": {"configurationParameters": []},
        "lifecycle_event": [
            {"event": "INSTANTIATE", "lifecycle_events": ["install.sh", "tune.sh"]},
            {"event": "CONFIGURE", "lifecycle_events": ["server_configure.sh", "client_setup.sh"]},
        ],
        "vdu": [{"vnfc_instance": instances}],
    })


def test_sanitize() -> None:
    assert envs.sanitize("private-net.v2") == "private_net_v2"
    assert envs.sanitize("ok_Name9") == "ok_Name9"


def test_base_env_configurations_win_over_provides_and_nulls_are_dropped() -> None:
    vnfr = VirtualNetworkFunctionRecord.model_validate({
        "name": "x",
        "provides": {"configurationParameters": [{"confKey": "port", "value": "1"}, {"confKey": "nil"}]},
        "configurations": {"configurationParameters": [{"confKey": "port", "value": "2"},
                                                       {"confKey": "my-key", "value": ""}]},
    })
    assert envs.base_env(vnfr) == {"port": "2", "my_key": ""}


def test_base_env_is_empty_without_both_blocks_as_the_reference() -> None:
    vnfr = VirtualNetworkFunctionRecord.model_validate(
        {"name": "x", "configurations": {"configurationParameters": [{"confKey": "a", "value": "1"}]}})
    assert envs.base_env(vnfr) == {}


def test_vnfc_env_networks_floating_ips_and_hostname() -> None:
    inst = VNFCInstance.model_validate({"hostname": "iperf-server-1111111",
                                        "ips": [{"netName": "private", "ip": "192.168.1.10"},
                                                {"netName": "mgmt-net", "ip": "10.1.1.1"}],
                                        "floatingIps": [{"netName": "private", "ip": "172.24.4.10"}]})
    assert envs.vnfc_env(inst) == {"private": "192.168.1.10", "mgmt_net": "10.1.1.1",
                                   "private_floatingIp": "172.24.4.10", "hostname": "iperf-server-1111111"}


def test_worked_example_configure_runs_once_per_source_vnfc() -> None:
    vnfr = client_vnfr()
    plan = plans.plan_configure(vnfr, DEP, plans.all_targets(vnfr))
    steps = plan.steps()
    assert [s.action for s in steps] == ["EXECUTE", "EXECUTE", "SAVE_VNFR_DEPENDENCY", "EXECUTE"]
    first, second, save, setup = steps
    assert first.command["env"] == {
        "mode": "tcp", "private": "192.168.1.20", "hostname": "iperf-client-3333330",
        "server_private": "192.168.1.10", "server_private_floatingIp": "172.24.4.10",
        "server_hostname": "iperf-server-1111111", "server_port": "5001"}
    assert second.command["env"] == {
        "mode": "tcp", "private": "192.168.1.20", "hostname": "iperf-client-3333330",
        "server_private": "192.168.1.11", "server_private_floatingIp": "",
        "server_hostname": "iperf-server-2222222", "server_port": "5001"}
    assert json.loads(save.command["payload"])["target"] == "iperf-client"
    assert save.command["script-path"] == "/opt/openbaton/scripts"
    assert setup.command == {"action": "EXECUTE", "payload": "client_setup.sh",
                             "env": {"mode": "tcp", "private": "192.168.1.20", "hostname": "iperf-client-3333330"}}
    # distinct stable ids: the per-source runs are separate steps
    assert len({s.step_id for s in steps}) == 4


def test_configure_is_script_major_across_vnfcs_and_stages_are_parallel_groups() -> None:
    vnfr = client_vnfr(3)
    plan = plans.plan_configure(vnfr, DEP, plans.all_targets(vnfr))
    # per source instance a stage over the 3 VNFCs (runs on one VNFC never overlap), save, setup
    assert [len(st.steps) for st in plan.stages] == [3, 3, 3, 3]
    assert {s.script for s in plan.stages[0].steps + plan.stages[1].steps} == {"server_configure.sh"}
    for stage in plan.stages:
        assert len({s.hostname for s in stage.steps}) == len(stage.steps)
    assert {s.hostname for s in plan.stages[2].steps} == {f"iperf-client-333333{i}" for i in range(3)}


def test_prefixed_script_without_source_instances_runs_nowhere() -> None:
    dep = VNFRecordDependency.model_validate({"target": "c", "parameters": {"server": {"parameters": {}}},
                                              "vnfcParameters": {"server": {"parameters": {}}}})
    vnfr = client_vnfr()
    steps = plans.plan_configure(vnfr, dep, plans.all_targets(vnfr)).steps()
    assert [s.script for s in steps] == ["ob_parameters", "client_setup.sh"]


def test_prefix_that_is_not_a_source_type_runs_once_plainly() -> None:
    assert envs.dependency_runs("client_setup.sh", DEP) is None
    assert envs.dependency_runs("install.sh", DEP) is None
    runs = envs.dependency_runs("server_configure.sh 1 2", DEP)
    assert runs is not None and len(runs) == 2


def test_general_event_order_and_env() -> None:
    vnfr = client_vnfr(2)
    plan = plans.plan_event(vnfr, "INSTANTIATE", plans.all_targets(vnfr))
    assert [[s.script for s in st.steps] for st in plan.stages] == [["install.sh"] * 2, ["tune.sh"] * 2]
    assert plan.stages[0].steps[1].command["env"]["hostname"] == "iperf-client-3333331"
    assert plans.plan_event(vnfr, "START", plans.all_targets(vnfr)).stages == []


def test_heal_cause_and_scale_in_removing_vars() -> None:
    vnfr = client_vnfr(1)
    vnfr.lifecycle_event = [*(vnfr.lifecycle_event or []),
                            LifecycleEvent(event="SCALE_IN", lifecycle_events=["scale_in.sh"]),
                            LifecycleEvent(event="HEAL", lifecycle_events=["heal.sh"])]
    removed = VNFCInstance.model_validate({"hostname": "srv-9", "ips": [{"netName": "private-net", "ip": "1.2.3.4"}],
                                           "floatingIps": [{"netName": "private-net", "ip": "5.6.7.8"}]})
    step = plans.plan_event(vnfr, "SCALE_IN", plans.all_targets(vnfr), envs.removing_env(removed)).steps()[0]
    env = step.command["env"]
    assert step.script == "scale_in.sh"
    assert env["removing_private_net"] == "1.2.3.4" and "removing_private-net" not in env
    assert env["removing_private_net_floatingIp"] == "5.6.7.8"
    assert env["removing_hostname"] == "srv-9" and env["hostname"] == "iperf-client-3333330"
    heal = plans.plan_event(vnfr, "HEAL", plans.all_targets(vnfr), {"cause": "disk full"}).steps()[0]
    assert heal.command["env"]["cause"] == "disk full" and heal.command["env"]["mode"] == "tcp"


def test_plan_without_done_steps_is_what_resume_runs() -> None:
    vnfr = client_vnfr(3)
    plan = plans.plan_event(vnfr, "INSTANTIATE", plans.all_targets(vnfr))
    done = {s.step_id for s in plan.stages[0].steps} | {plan.stages[1].steps[0].step_id}
    rest = plan.without(done)
    assert [(s.script, s.hostname) for s in rest.steps()] == [
        ("tune.sh", "iperf-client-3333331"), ("tune.sh", "iperf-client-3333332")]
    # re-planning from the same records gives the same ids
    assert [s.step_id for s in plans.plan_event(vnfr, "INSTANTIATE", plans.all_targets(vnfr)).steps()] == \
        [s.step_id for s in plan.steps()]


def test_delivery_saves_every_script_or_clones_a_link() -> None:
    vnfr = client_vnfr(2)
    targets = plans.all_targets(vnfr)
    saves = plans.plan_delivery(targets, scripts=[Script(name="a.sh", payload=b"echo a"), Script(name="b.sh")],
                                scripts_link=None)
    assert len(saves.stages) == 1 and len(saves.steps()) == 4
    assert saves.steps()[0].command == {"action": "SAVE_SCRIPTS", "payload": "ZWNobyBh", "name": "a.sh",
                                        "script-path": "/opt/openbaton/scripts"}
    clones = plans.plan_delivery(targets, scripts=None, scripts_link="file:///r.git")
    assert [s.command["action"] for s in clones.steps()] == ["CLONE_SCRIPTS"] * 2


def test_targets_one_vnfc_and_errors() -> None:
    vnfr = client_vnfr(2)
    only = plans.named_target(vnfr, VNFCInstance(id="client-1"))
    assert only.hostname == "iperf-client-3333331"
    assert plans.named_target(vnfr, VNFCInstance(hostname="iperf-client-3333331")) is only
    with pytest.raises(plans.PlanError, match="not part of VNFR"):
        plans.named_target(vnfr, VNFCInstance(id="nope"))
    with pytest.raises(plans.PlanError, match="no VNFC instances"):
        plans.all_targets(VirtualNetworkFunctionRecord(name="empty", vdu=[]))


def test_adhoc_execute_gets_the_variables_of_a_lifecycle_script() -> None:
    vnfr = client_vnfr(2)
    targets = plans.all_targets(vnfr)
    plan = plans.plan_adhoc_execute(targets, Script(name="adhoc.sh", payload=b"env"), base=envs.base_env(vnfr))
    runs = [s for s in plan.steps() if s.is_script]
    lifecycle = [s for s in plans.plan_event(vnfr, "INSTANTIATE", targets).steps() if s.script == "install.sh"]
    assert [r.command["env"] for r in runs] == [s.command["env"] for s in lifecycle]
    assert runs[0].command["env"]["mode"] == "tcp" and runs[1].command["env"]["private"] == "192.168.1.21"
