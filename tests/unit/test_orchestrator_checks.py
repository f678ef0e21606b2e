"""`gvnfm validate`'s checks: every error and warning at once, each naming its place, with hints;
the shipped examples have none."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gvnfm.catalogue.descriptors import NetworkServiceDescriptor
from gvnfm.cli.main import app
from gvnfm.orchestrator.checks import Finding, check_service, unknown_fields
from gvnfm.orchestrator.loader import ServiceBundle, VnfPackageContent, load_service

ROOT = Path(__file__).parents[2]


def nsd() -> dict[str, Any]:
    def vnfd(name: str, type_: str, **extra: Any) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": name, "type": type_, "endpoint": "generic", "vendor": "acme", "version": "1",
            "configurations": {"name": "c", "configurationParameters": [{"confKey": "port", "value": "5001"}]},
            "vdu": [{"vm_image": ["ubuntu"], "scale_in_out": 2,
                     "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}],
            "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]}]}
        d.update(extra)
        return d

    client = vnfd("iperf-client", "client", requires={"iperf-server": {"parameters": ["private", "port"]}})
    client["lifecycle_event"].append({"event": "CONFIGURE", "lifecycle_events": ["server_configure.sh"]})
    return {"name": "svc", "vendor": "acme", "version": "1", "vld": [{"name": "private"}],
            "vnfd": [vnfd("iperf-server", "server"), client]}


def findings(data: dict[str, Any], *, vim: str = "process", link: str | None = None) -> list[Finding]:
    descriptor = NetworkServiceDescriptor.model_validate(data)
    packages = {v.name: VnfPackageContent(name=v.name, script_names={"install.sh", "server_configure.sh",
                                                                      "configure.sh", "terminate.sh"},
                                          scripts_link=link)
                for v in descriptor.vnfd if v.name}
    return check_service(ServiceBundle(nsd=descriptor, packages=packages), image_exists=lambda _i: True, vim=vim)


def messages(found: list[Finding], level: str) -> list[str]:
    return [f.message for f in found if f.level == level]


def test_a_good_service_has_no_finding() -> None:
    assert findings(nsd()) == []


@pytest.mark.parametrize("example", ["iperf", "chain"])
def test_the_examples_have_no_finding(example: str, tmp_path: Path) -> None:
    bundle = load_service(ROOT / "examples" / example, tmp_path)
    assert check_service(bundle) == []


def test_every_problem_at_once_with_places_and_hints() -> None:
    data = nsd()
    server, client = data["vnfd"]
    server["vdu"][0]["vm_imag"] = ["ubuntu"]                                # typo: did you mean
    server["lifecycle_event"].append({"event": "RELEASE_RESOURCES", "lifecycle_events": ["terminate.sh"]})
    server["lifecycle_event"].append({"event": "RELEASE", "lifecycle_events": ["terminate.sh"]})
    server["lifecycle_event"].append({"event": "CONFIGURE", "lifecycle_events": ["configure.sh"]})
    client["lifecycle_event"][1]["lifecycle_events"].append("configure.sh")  # no "server_" prefix
    client["requires"]["iperf-server"]["parameters"] += ["secret", "prot"]
    server["provides"] = ["secret"]
    data["vnf_dependecy"] = []
    found = findings(data)
    errors, warnings = messages(found, "error"), messages(found, "warning")
    assert errors == ['vnfd[0] "iperf-server": lifecycle_event[1].event "RELEASE_RESOURCES" is not a lifecycle '
                      "event (one of GRANTED, ALLOCATE, SCALE, RELEASE, ERROR, INSTANTIATE, TERMINATE, CONFIGURE, "
                      "START, STOP, HEAL, SCALE_OUT, SCALE_IN, SCALE_UP, SCALE_DOWN, UPDATE, UPDATE_ROLLBACK, "
                      "UPGRADE, UPGRADE_ROLLBACK, RESET); scripts that run before the VMs are released go under "
                      "TERMINATE"]
    text = "\n".join(warnings)
    assert 'unknown field nsd.vnf_dependecy (did you mean "vnf_dependency"?) (ignored)' in text
    assert 'vnfd[0] "iperf-server": unknown field vdu[0].vm_imag (did you mean "vm_image"?) (ignored)' in text
    assert ("lifecycle_event[2] RELEASE: the Generic VNFM never runs scripts under RELEASE" in text
            and "go under TERMINATE" in text)
    assert 'vnfd[0] "iperf-server": its CONFIGURE scripts never run' in text
    assert ('vnfd[1] "iperf-client": CONFIGURE script "configure.sh" starts with no source type ("server_")'
            in text and '"server_configure.sh" to run it once per server VNFC' in text)
    assert "server_configure.sh\" starts" not in text
    assert ('dependency parameter "secret" from "iperf-server" has no value' in text
            and "only in provides" in text)
    assert 'parameter "prot" from "iperf-server" has no value' in text and 'did you mean "port"?' in text
    assert not any('"private"' in w or '"port"' in w.split("did you mean")[0] for w in warnings), warnings
    assert len(warnings) == 7, warnings


def test_a_scripts_repository_the_netns_hosts_cannot_read() -> None:
    found = findings(nsd(), vim="netns", link="file:///tmp/me/scripts.git")
    assert [f.level for f in found] == ["error", "error"]
    assert "scripts repository /tmp/me/scripts.git is under /tmp, which every netns host mounts afresh" in \
        found[0].message
    assert findings(nsd(), vim="process", link="file:///tmp/me/scripts.git") == []
    assert findings(nsd(), vim="netns", link="file:///srv/scripts.git") == []


def test_unknown_fields_ignore_what_the_java_classes_have() -> None:
    vnfd = copy.deepcopy(nsd()["vnfd"][0]) | {"monitoring_parameter": [], "auto_scale_policy": [], "id": "x"}
    assert unknown_fields(vnfd, "vnfd", "") == []


def test_validate_command(tmp_path: Path) -> None:
    good = tmp_path / "good"
    (good / "scripts").mkdir(parents=True)
    for name in ("install.sh", "server_configure.sh"):
        (good / "scripts" / name).write_text("#!/bin/sh\n")
    data = nsd()
    for v in data["vnfd"]:
        v["vdu"][0]["vm_image"] = ["default"]
    (good / "nsd.json").write_text(json.dumps(data))
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0 and "no problem" in result.output, result.output
    data["vnfd"][0]["vdu"][0]["vm_imag"] = ["x"]
    (good / "nsd.json").write_text(json.dumps(data))
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0 and "warning:" in result.output and "vm_imag" in result.output, result.output
    data["vnfd"][0]["lifecycle_event"][0]["event"] = "INSTALL"
    (good / "nsd.json").write_text(json.dumps(data))
    result = runner.invoke(app, ["validate", str(good), "-o", "json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["ok"] is False and len(out["errors"]) == 1 and len(out["warnings"]) == 1
    assert "install scripts go under INSTANTIATE" in out["errors"][0]
    result = runner.invoke(app, ["validate", str(tmp_path / "missing")])
    assert result.exit_code == 2
