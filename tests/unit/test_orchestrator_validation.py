"""Validation: every bad descriptor fails before deployment, with a message naming its place."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from gvnfm.catalogue.descriptors import NetworkServiceDescriptor
from gvnfm.orchestrator.errors import DescriptorError
from gvnfm.orchestrator.loader import ServiceBundle, VnfPackageContent
from gvnfm.orchestrator.validation import validate

IMAGES = {"ubuntu", "default"}


def image_exists(name: str) -> bool:
    return name in IMAGES


def base_nsd() -> dict[str, Any]:
    def vnfd(name: str, type_: str, **extra: Any) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": name, "type": type_, "endpoint": "generic", "vendor": "acme", "version": "1",
            "vdu": [{"vm_image": ["ubuntu"], "scale_in_out": 2,
                     "vnfc": [{"connection_point": [{"virtual_link_reference": "private", "floatingIp": "random"}]}]}],
            "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]},
                                {"event": "CONFIGURE", "lifecycle_events": ["server_configure.sh arg1"]}]}
        d.update(extra)
        return d

    return {"name": "svc", "vld": [{"name": "private"}],
            "vnfd": [vnfd("iperf-server", "server"),
                     vnfd("iperf-client", "client", requires={"iperf-server": {"parameters": ["private"]}})],
            "vnf_dependency": [{"source": "iperf-server", "target": "iperf-client", "parameters": ["hostname"]}]}


def bundle_of(nsd: dict[str, Any], scripts: set[str] | None = None) -> ServiceBundle:
    model = NetworkServiceDescriptor.model_validate(nsd)
    names = scripts if scripts is not None else {"install.sh", "server_configure.sh"}
    packages = {v.name: VnfPackageContent(name=v.name, script_names=set(names), origin="pkg/" + v.name)
                for v in model.vnfd if v.name}
    return ServiceBundle(nsd=model, packages=packages)


def problems_of(nsd: dict[str, Any], scripts: set[str] | None = None) -> list[str]:
    with pytest.raises(DescriptorError) as err:
        validate(bundle_of(nsd, scripts), image_exists)
    return err.value.problems


def accepted(bundle: ServiceBundle) -> bool:
    """``validate`` accepts the bundle: it returns (None), and leaves the descriptors and packages as they were."""
    before = (bundle.nsd.model_dump(), {n: (p.script_names, p.scripts_link) for n, p in bundle.packages.items()},
              list(bundle.problems))
    assert validate(bundle, image_exists) is None
    after = (bundle.nsd.model_dump(), {n: (p.script_names, p.scripts_link) for n, p in bundle.packages.items()},
             list(bundle.problems))
    assert after == before
    return True


def test_valid_service_passes() -> None:
    assert accepted(bundle_of(base_nsd()))
    # and the same service with one script missing from its package does not: the check ran
    assert problems_of(base_nsd(), scripts={"install.sh"}) != []


def mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    nsd = copy.deepcopy(base_nsd())
    fn(nsd)
    return nsd


CASES: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("unknown lifecycle event",
     lambda n: n["vnfd"][1]["lifecycle_event"].__setitem__(0, {"event": "INSTALL", "lifecycle_events": ["install.sh"]}),
     ['vnfd[1] "iperf-client": lifecycle_event[0].event "INSTALL" is not a lifecycle event']),
    ("missing script",
     lambda n: n["vnfd"][0]["lifecycle_event"][0]["lifecycle_events"].append("missing.sh --flag"),
     ['vnfd[0] "iperf-server": lifecycle_event[0].lifecycle_events[1]: script "missing.sh" is not in the VNF '
      "package (pkg/iperf-server)"]),
    ("unknown image",
     lambda n: n["vnfd"][0]["vdu"][0].__setitem__("vm_image", ["centos-9"]),
     ['vnfd[0] "iperf-server": vdu[0].vm_image "centos-9" is not an image of this VIM; known: '
      "default (default, ubuntu*, debian*, centos*), bare"]),
    ("empty image list",
     lambda n: n["vnfd"][0]["vdu"][0].__setitem__("vm_image", []),
     ['vnfd[0] "iperf-server": vdu[0].vm_image is empty (at least one image is required)']),
    ("no vdu",
     lambda n: n["vnfd"][0].pop("vdu"),
     ['vnfd[0] "iperf-server": has no vdu (at least one VDU is required)']),
    ("vdu without vnfc",
     lambda n: n["vnfd"][0]["vdu"][0].__setitem__("vnfc", []),
     ['vnfd[0] "iperf-server": vdu[0] has no vnfc (one entry per VNFC instance to create)']),
    ("no name",
     lambda n: n["vnfd"][1].pop("name"),
     ["vnfd[1]: name is missing or empty"]),
    ("no type",
     lambda n: n["vnfd"][0].__setitem__("type", ""),
     ['vnfd[0] "iperf-server": type is missing or empty']),
    ("no endpoint",
     lambda n: n["vnfd"][0].pop("endpoint"),
     ['vnfd[0] "iperf-server": endpoint is missing or empty']),
    ("duplicate names",
     lambda n: n["vnfd"][1].__setitem__("name", "iperf-server"),
     ['vnfd[1] "iperf-server": duplicate VNFD name "iperf-server" (also vnfd[0] "iperf-server")']),
    ("connection point to an unknown virtual link",
     lambda n: n["vnfd"][0]["vdu"][0]["vnfc"][0]["connection_point"][0].__setitem__("virtual_link_reference", "mgmt"),
     ['vnfd[0] "iperf-server": vdu[0].vnfc[0].connection_point[0].virtual_link_reference "mgmt" is not a virtual '
      "link of the NSD (vld) or the VNFD (virtual_link); known: private"]),
    ("bad floating ip",
     lambda n: n["vnfd"][0]["vdu"][0]["vnfc"][0]["connection_point"][0].__setitem__("floatingIp", "anything"),
     ['vnfd[0] "iperf-server": vdu[0].vnfc[0].connection_point[0].floatingIp "anything" must be an IPv4 address, '
      '"random" or empty']),
    ("scale_in_out below one",
     lambda n: n["vnfd"][0]["vdu"][0].__setitem__("scale_in_out", 0),
     ['vnfd[0] "iperf-server": vdu[0].scale_in_out is 0 (must be at least 1)']),
    ("dependency on an unknown VNF",
     lambda n: n["vnf_dependency"][0].__setitem__("source", {"name": "iperf-ghost"}),
     ['nsd.vnf_dependency[0].source "iperf-ghost" is not a VNFD of this service']),
    ("dependency to an unknown target",
     lambda n: n["vnf_dependency"][0].__setitem__("target", "nobody"),
     ['nsd.vnf_dependency[0].target "nobody" is not a VNFD of this service']),
    ("dependency without parameters",
     lambda n: n["vnf_dependency"][0].__setitem__("parameters", []),
     ["nsd.vnf_dependency[0] has no parameters (at least one is required)"]),
    ("dependency on itself",
     lambda n: n["vnf_dependency"][0].__setitem__("target", "iperf-server"),
     ['nsd.vnf_dependency[0]: "iperf-server" depends on itself']),
    ("requires keyed by type",
     lambda n: n["vnfd"][1].__setitem__("requires", {"server": {"parameters": ["private"]}}),
     ['vnfd[1] "iperf-client": requires "server" is not a VNFD of this service ("server" is the type of '
      '"iperf-server": requires keys are VNFD names)']),
    ("empty vld name",
     lambda n: n["vld"].append({"name": ""}),
     ["nsd.vld[1].name is missing or empty"]),
]


@pytest.mark.parametrize("label,change,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_descriptor_names_the_place(label: str, change: Callable[[dict[str, Any]], None],
                                        expected: list[str]) -> None:
    problems = problems_of(mutate(change))
    for text in expected:
        assert any(p.startswith(text) for p in problems), f"{label}: {text!r} not in {problems}"


def test_unknown_event_message_lists_the_valid_ones() -> None:
    problems = problems_of(mutate(CASES[0][1]))
    assert problems == ['vnfd[1] "iperf-client": lifecycle_event[0].event "INSTALL" is not a lifecycle event (one of '
                        "GRANTED, ALLOCATE, SCALE, RELEASE, ERROR, INSTANTIATE, TERMINATE, CONFIGURE, START, STOP, "
                        "HEAL, SCALE_OUT, SCALE_IN, SCALE_UP, SCALE_DOWN, UPDATE, UPDATE_ROLLBACK, UPGRADE, "
                        "UPGRADE_ROLLBACK, RESET)"]


def test_every_problem_is_listed_at_once() -> None:
    def many(n: dict[str, Any]) -> None:
        n["vnfd"][0]["vdu"][0]["vm_image"] = ["nope"]
        n["vnfd"][1]["lifecycle_event"][0]["event"] = "INSTALL"
        n["vnf_dependency"][0]["source"] = "ghost"

    problems = problems_of(mutate(many))
    assert len(problems) == 3
    with pytest.raises(DescriptorError) as err:
        validate(bundle_of(mutate(many)), image_exists)
    assert str(err.value).startswith("invalid network service (3 problems):\n  - ")


def test_two_sources_of_one_type_are_refused() -> None:
    def add_third(n: dict[str, Any]) -> None:
        third = copy.deepcopy(n["vnfd"][0])
        third["name"] = "iperf-server-2"
        n["vnfd"].append(third)
        n["vnfd"][1]["requires"]["iperf-server-2"] = {"parameters": ["private"]}

    assert problems_of(mutate(add_third)) == [
        'vnfd "iperf-client": its sources "iperf-server" and "iperf-server-2" have the same type "server" '
        "(dependency parameters are keyed by source type)"]


def test_virtual_links_of_the_vnfd_count_and_none_defined_is_allowed() -> None:
    def own_link(n: dict[str, Any]) -> None:
        n["vnfd"][0]["virtual_link"] = [{"name": "mgmt"}]
        n["vnfd"][0]["vdu"][0]["vnfc"][0]["connection_point"][0]["virtual_link_reference"] = "mgmt"

    assert accepted(bundle_of(mutate(own_link)))

    def no_links(n: dict[str, Any]) -> None:
        n.pop("vld")
        n["vnfd"][0]["vdu"][0]["vnfc"][0]["connection_point"][0]["virtual_link_reference"] = "anything"

    assert accepted(bundle_of(mutate(no_links)))

    def unknown_link(n: dict[str, Any]) -> None:     # the control: with links defined, "anything" is refused
        n["vnfd"][0]["vdu"][0]["vnfc"][0]["connection_point"][0]["virtual_link_reference"] = "anything"

    assert any("anything" in p for p in problems_of(mutate(unknown_link)))


def test_unknown_scripts_when_served_by_link_are_not_checked() -> None:
    bundle = bundle_of(mutate(lambda n: None))
    for package in bundle.packages.values():
        package.script_names = None                     # a remote link: the file list is unknown
        package.scripts_link = "file:///somewhere.git"
    bundle.nsd.vnfd[0].lifecycle_event[0].lifecycle_events = ["whatever.sh"]  # type: ignore[index]
    assert accepted(bundle)
    # the control: the same script in a package whose file list is known is refused, naming it
    known = bundle_of(mutate(lambda n: None))
    known.nsd.vnfd[0].lifecycle_event[0].lifecycle_events = ["whatever.sh"]  # type: ignore[index]
    with pytest.raises(DescriptorError) as err:
        validate(known, image_exists)
    assert any("whatever.sh" in p for p in err.value.problems)


def test_empty_service_and_loader_problems() -> None:
    with pytest.raises(DescriptorError, match=r"nsd\.vnfd is empty"):
        validate(ServiceBundle(nsd=NetworkServiceDescriptor(name="x", vnfd=[])))
    bundle = bundle_of(base_nsd())
    bundle.problems.append("package p: no Metadata.yaml")
    with pytest.raises(DescriptorError) as err:
        validate(bundle, image_exists)
    assert err.value.problems == ["package p: no Metadata.yaml"]
