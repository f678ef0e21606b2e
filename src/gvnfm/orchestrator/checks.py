"""Every problem of a network service at once, errors and warnings, before anything is deployed
(``gvnfm validate`` and the start of ``gvnfm up``).

Errors are what ``validation.validate`` refuses (the NFVO's onboarding checks plus what a local
deployment needs), with hints, and ``file://`` scripts-links that the chosen VIM's hosts cannot read.
Warnings are silent traps the reference accepts but that do not do what the writer meant:

* unknown fields (ignored by the NFVO's reader), with "did you mean";
* events the Generic VNFM never runs (``RELEASE``, ...) and CONFIGURE scripts of a VNF that is no
  dependency target (CONFIGURE runs only on MODIFY, which only targets get);
* a CONFIGURE script of a target whose name starts with no source's ``<type>_``: it runs once, without
  the ``$<type>_<param>`` variables (the reference runs a script once per source VNFC only when it does),
  unless its text (when gvnfm sends it) reads ``ob_parameters``, where every source's values are;
* a dependency parameter that no source gives a value: not a configuration key, not a network of the
  source's VNFCs (``<net>``, ``<net>_floatingIp``), not ``hostname`` (``provides`` alone gives none).

Pure: works on a loaded ``ServiceBundle`` (the loader did the I/O); the image check is passed in.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gvnfm.catalogue.records import EVENTS
from gvnfm.orchestrator.dependencies import merge_dependencies
from gvnfm.orchestrator.errors import DescriptorError
from gvnfm.orchestrator.loader import ServiceBundle
from gvnfm.orchestrator.validation import script_file, validate

#: events whose scripts the Generic VNFM runs (descriptors.md §1.5)
RUN_EVENTS = ("INSTANTIATE", "CONFIGURE", "START", "STOP", "TERMINATE", "ERROR", "HEAL", "SCALE_IN", "UPDATE")
_BEFORE_RELEASE = "scripts that run before the VMs are released go under TERMINATE"
#: hints for event names writers reach for
EVENT_HINTS = {"RELEASE_RESOURCES": _BEFORE_RELEASE, "RELEASE": _BEFORE_RELEASE, "DELETE": _BEFORE_RELEASE,
               "INSTALL": "install scripts go under INSTANTIATE", "DEPLOY": "install scripts go under INSTANTIATE",
               "MODIFY": "scripts that read a dependency's values go under CONFIGURE",
               "SCALE_OUT": "a new VNFC runs INSTANTIATE, CONFIGURE and START; its dependants get CONFIGURE"}
#: folders every netns host mounts afresh (netns_kernel.FRESH_MOUNTS): a host cannot read them
HOST_PRIVATE = ("/tmp", "/run", "/dev", "/proc", "/sys")

_COMMON = {"id", "hbVersion", "projectId", "shared", "metadata", "createdAt", "updatedAt", "extId"}
#: per kind of object: the Java fields (descriptors.md §1-2), and which of them hold objects of which kind
_FIELDS: dict[str, tuple[set[str], dict[str, str]]] = {
    "nsd": ({"name", "vendor", "version", "vnfd", "vld", "vnf_dependency", "vnffgd", "pnfd", "nsd_security",
             "monitoring_parameter", "auto_scale_policy", "service_deployment_flavour", "connection_point",
             "enabled", "nfvo_version"}, {"vld": "vld", "vnf_dependency": "dependency"}),
    "vnfd": ({"name", "vendor", "version", "type", "endpoint", "vdu", "virtual_link", "lifecycle_event",
              "configurations", "deployment_flavour", "vnfPackageLocation", "requires", "provides",
              "monitoring_parameter", "auto_scale_policy", "connection_point", "vdu_dependency", "manifest_file",
              "manifest_file_security", "vld", "vnffgd", "service_deployment_flavour", "cyclicDependency",
              "nfvo_version", "descriptor_version", "vnf_address"},
             {"vdu": "vdu", "virtual_link": "virtual_link", "lifecycle_event": "lifecycle_event",
              "configurations": "configurations", "deployment_flavour": "deployment_flavour"}),
    "vdu": ({"name", "vm_image", "vimInstanceName", "scale_in_out", "vnfc", "high_availability",
             "fault_management_policy", "monitoring_parameter", "lifecycle_event", "computation_requirement",
             "virtual_memory_resource_element", "virtual_network_bandwidth_resource", "vdu_constraint",
             "parent_vdu", "hostname", "vnfc_instance"}, {"vnfc": "vnfc"}),
    "vnfc": ({"connection_point"}, {"connection_point": "connection_point"}),
    "connection_point": ({"virtual_link_reference", "floatingIp", "interfaceId", "fixedIp",
                          "virtual_link_reference_id", "chosenPool", "type"}, {}),
    "lifecycle_event": ({"event", "lifecycle_events"}, {}),
    "configurations": ({"name", "configurationParameters"}, {"configurationParameters": "parameter"}),
    "parameter": ({"confKey", "value", "description"}, {}),
    "deployment_flavour": ({"flavour_key", "df_constraint", "costituent_vdu", "ram", "disk", "vcpus"}, {}),
    "virtual_link": ({"name", "cidr", "qos", "connectivity_type", "connection_points_references",
                      "root_requirements", "leaf_requirement", "test_access", "dns", "poolName"}, {}),
    "vld": ({"name", "cidr", "poolName", "dns", "qos", "connectivity_type", "connection", "vld_security",
             "test_access", "root_requirements", "leaf_requirement", "vendor", "version", "descriptor_version",
             "number_of_endpoints", "access"}, {}),
    "dependency": ({"source", "target", "parameters", "source_id", "target_id"}, {}),
}
_UNKNOWN_EVENT = re.compile(r'event "([^"]*)" is not a lifecycle event')


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message}


def _did_you_mean(word: str, options: set[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def unknown_fields(data: Any, kind: str, where: str) -> list[str]:
    """Fields of ``data`` (the wire JSON of an object of ``kind``) that the NFVO does not know."""
    out: list[str] = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            out += unknown_fields(item, kind, f"{where}[{i}]")
        return out
    if not isinstance(data, dict):
        return out
    known, children = _FIELDS[kind]
    for key, value in data.items():
        at = f"{where}.{key}" if where else key
        if key not in known and key not in _COMMON:
            out.append(f"unknown field {at}{_did_you_mean(key, known)} (ignored)")
        elif key in children:
            out += unknown_fields(value, children[key], at)
    return out


def _event_hint(event: str) -> str:
    hint = EVENT_HINTS.get(event.upper())
    if hint:
        return f"; {hint}"
    close = _did_you_mean(event.upper(), EVENTS)
    return f";{close[1:-1]}" if close else ""


def _unreadable_link(link: str, vim: str, served: tuple[Path, Path] | None) -> str | None:
    """Why the hosts of ``vim`` cannot clone the ``file://`` repository ``link`` (None: they can)."""
    if vim != "netns" or not link.startswith("file:"):
        return None
    path = Path(re.sub(r"^file://", "", link))
    if served is not None and path.is_relative_to(served[0]):      # validate: where `up` will serve it
        path = served[1] / path.relative_to(served[0])
    for private in HOST_PRIVATE:
        if path == Path(private) or path.is_relative_to(private):
            return (f"scripts repository {path} is under {private}, which every netns host mounts afresh (git "
                    f'would say "does not appear to be a git repository"): move it, or pass a --state-dir '
                    f"outside {private} when gvnfm serves it")
    return None


def check_service(bundle: ServiceBundle, *, image_exists: Callable[[str], bool] | None = None,
                  vim: str = "process", served: tuple[Path, Path] | None = None) -> list[Finding]:
    """Every problem of ``bundle``: errors first, then warnings. ``served``: (the folder the loader
    served local repositories from, the folder ``gvnfm up`` will serve them from)."""
    errors: list[str] = []
    try:
        validate(bundle, image_exists)
    except DescriptorError as exc:
        for problem in exc.problems:
            m = _UNKNOWN_EVENT.search(problem)
            errors.append(problem + (_event_hint(m.group(1)) if m else ""))
    warnings: list[str] = unknown_fields(_wire(bundle.nsd), "nsd", "nsd")
    nsd = bundle.nsd
    for i, vnfd in enumerate(nsd.vnfd):
        wire = _wire(vnfd)
        warnings += [f"{bundle.place(i)}: {w}" for w in unknown_fields(wire, "vnfd", "")]
        package = bundle.packages.get(vnfd.name or "")
        reason = _unreadable_link(package.scripts_link or "", vim, served) if package is not None else None
        if reason:
            errors.append(f"{bundle.place(i)}: {reason}")

    by_name = {v.name: v for v in nsd.vnfd if v.name}
    try:
        edges = merge_dependencies(nsd.vnfd, nsd.vnf_dependency or [])
    except Exception:       # an invalid dependency is already an error above
        edges = []
    sources: dict[str, list[Any]] = {}
    for edge in edges:
        sources.setdefault(edge.target, []).append(edge)
    for i, vnfd in enumerate(nsd.vnfd):
        place = bundle.place(i)
        for j, le in enumerate(vnfd.lifecycle_event or []):
            if le.event in EVENTS and le.event not in RUN_EVENTS and le.lifecycle_events:
                hint = f"; {EVENT_HINTS[le.event]}" if le.event in EVENT_HINTS else ""
                warnings.append(f"{place}: lifecycle_event[{j}] {le.event}: the Generic VNFM never runs scripts "
                                f"under {le.event} (it runs {', '.join(RUN_EVENTS)}){hint}")
            if le.event != "CONFIGURE" or not le.lifecycle_events:
                continue
            mine = sources.get(vnfd.name or "", [])
            if not mine:
                warnings.append(f"{place}: its CONFIGURE scripts never run: CONFIGURE runs only on a VNF that "
                                "requires another (requires or nsd.vnf_dependency)")
                continue
            types = sorted({by_name[e.source].type or "" for e in mine
                            if e.source in by_name and by_name[e.source].type})
            package = bundle.packages.get(vnfd.name or "")
            texts = {sc.name: sc.payload for sc in package.scripts} if package is not None else {}
            for entry in le.lifecycle_events:
                name = script_file(entry)
                if b"ob_parameters" in (texts.get(name) or b""):
                    continue        # it reads every source's values from the file, as meant
                if name and types and not any(name.startswith(f"{t}_") for t in types):
                    prefixes = " or ".join(f'"{t}_"' for t in types)
                    warnings.append(f'{place}: CONFIGURE script "{name}" starts with no source type ({prefixes}): '
                                    f"it runs once, without the $<type>_<param> variables of its sources; name "
                                    f'it e.g. "{types[0]}_{name}" to run it once per {types[0]} VNFC')
        for edge in sources.get(vnfd.name or "", []):
            source = by_name.get(edge.source)
            if source is None:
                continue
            given = _values_of(source)
            for param in edge.parameters or []:
                if param in given:
                    continue
                why = (" (it is only in provides: the Generic VNFM never fills provides; give it a value in "
                       "configurations)" if param in (source.provides or []) else "")
                warnings.append(f'{place}: dependency parameter "{param}" from "{edge.source}" has no value: it is '
                                f"not a configuration key, a network of its VNFCs or hostname{why}; "
                                f"${source.type}_{param} will not be set{_did_you_mean(param, given)}")
    return [Finding("error", e) for e in errors] + [Finding("warning", w) for w in warnings]


def _wire(model: Any) -> Any:
    return model.to_wire() if hasattr(model, "to_wire") else model


def _values_of(vnfd: Any) -> set[str]:
    """Dependency parameters a source VNF gives values to (descriptors.md §2.4)."""
    keys = {"hostname"}
    config = vnfd.configurations
    for p in (config.configurationParameters or []) if config is not None else []:
        if getattr(p, "confKey", None):
            keys.add(p.confKey)
    for vdu in vnfd.vdu or []:
        for vnfc in vdu.vnfc or []:
            for cp in vnfc.connection_point or []:
                ref = (cp.virtual_link_reference or "").strip()
                if ref:
                    keys.add(ref)
                    keys.add(f"{ref}_floatingIp")
    return keys
