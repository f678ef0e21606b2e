"""Check a loaded network service before anything is deployed (the NFVO's onboarding checks,
descriptors.md §1.10, plus what a local deployment needs: known images, scripts present).

``validate`` raises ``DescriptorError`` listing every problem, each naming its place, e.g.
``vnfd[1] "iperf-client": lifecycle_event[0].event "INSTALL" is not a lifecycle event``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor
from gvnfm.catalogue.records import EVENTS
from gvnfm.orchestrator.dependencies import merge_dependencies
from gvnfm.orchestrator.errors import DescriptorError
from gvnfm.orchestrator.loader import ServiceBundle, VnfPackageContent

_FLOATING = re.compile(r"^(random|((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d))?$")


def script_file(entry: str) -> str:
    """The file of a lifecycle entry (``"start.sh arg1 arg2"`` runs ``start.sh``)."""
    parts = entry.split()
    return parts[0] if parts else ""


def _known_images() -> str:
    """``; known: <the local images>`` for the unknown-image message."""
    try:
        from gvnfm.vim.images import known_images_text
    except ImportError:
        return ""
    return f"; known: {known_images_text()}"


def _check_vnfd(vnfd: VirtualNetworkFunctionDescriptor, place: str, package: VnfPackageContent | None,
                links: set[str], image_exists: Callable[[str], bool], problems: list[str]) -> None:
    def bad(text: str) -> None:
        problems.append(f"{place}: {text}")

    for attr in ("name", "type", "endpoint"):
        if not (getattr(vnfd, attr) or "").strip():
            bad(f"{attr} is missing or empty")
    own_links = {vl.name for vl in vnfd.virtual_link or [] if vl.name}
    known_links = links | own_links
    if not vnfd.vdu:
        bad("has no vdu (at least one VDU is required)")
    for j, vdu in enumerate(vnfd.vdu or []):
        where = f"vdu[{j}]"
        if not vdu.vm_image:
            bad(f"{where}.vm_image is empty (at least one image is required)")
        for image in vdu.vm_image or []:
            if not image_exists(image):
                bad(f'{where}.vm_image "{image}" is not an image of this VIM{_known_images()}')
        if vdu.scale_in_out is not None and vdu.scale_in_out < 1:
            bad(f"{where}.scale_in_out is {vdu.scale_in_out} (must be at least 1)")
        if not vdu.vnfc:
            bad(f"{where} has no vnfc (one entry per VNFC instance to create)")
        for k, vnfc in enumerate(vdu.vnfc or []):
            for m, cp in enumerate(vnfc.connection_point or []):
                at = f"{where}.vnfc[{k}].connection_point[{m}]"
                ref = (cp.virtual_link_reference or "").strip()
                if not ref:
                    bad(f"{at}.virtual_link_reference is missing or empty")
                elif known_links and ref not in known_links:
                    bad(f'{at}.virtual_link_reference "{ref}" is not a virtual link of the NSD (vld) or the VNFD '
                        f"(virtual_link); known: {', '.join(sorted(known_links))}")
                if cp.floatingIp is not None and not _FLOATING.match(cp.floatingIp):
                    bad(f'{at}.floatingIp "{cp.floatingIp}" must be an IPv4 address, "random" or empty')
    for j, le in enumerate(vnfd.lifecycle_event or []):
        if le.event not in EVENTS:
            bad(f'lifecycle_event[{j}].event "{le.event}" is not a lifecycle event '
                f"(one of {', '.join(EVENTS)})")
        names = package.script_names if package is not None else None
        for k, entry in enumerate(le.lifecycle_events or []):
            name = script_file(entry)
            if not name:
                bad(f"lifecycle_event[{j}].lifecycle_events[{k}] is empty")
            elif names is not None and name not in names:
                where = f" ({package.origin})" if package is not None and package.origin else ""
                bad(f'lifecycle_event[{j}].lifecycle_events[{k}]: script "{name}" is not in the VNF package'
                    f"{where}")


def validate(bundle: ServiceBundle, image_exists: Callable[[str], bool] | None = None) -> None:
    """Raise ``DescriptorError`` with every problem of the service (none: return)."""
    exists = image_exists or (lambda _image: True)
    problems: list[str] = list(bundle.problems)
    nsd = bundle.nsd
    if not nsd.vnfd and not problems:
        problems.append("nsd.vnfd is empty (a network service needs at least one VNFD)")
    vld_names = {v.name for v in nsd.vld or [] if v.name}
    for i, vld in enumerate(nsd.vld or []):
        if not (vld.name or "").strip():
            problems.append(f"nsd.vld[{i}].name is missing or empty")

    names: dict[str, int] = {}
    types: dict[str, str] = {}
    for i, vnfd in enumerate(nsd.vnfd):
        place = bundle.place(i)
        if vnfd.name:
            if vnfd.name in names:
                problems.append(f'{place}: duplicate VNFD name "{vnfd.name}" (also {bundle.place(names[vnfd.name])})')
            else:
                names[vnfd.name] = i
            if vnfd.type:
                types[vnfd.name] = vnfd.type
        _check_vnfd(vnfd, place, bundle.packages.get(vnfd.name or ""), vld_names, exists, problems)

    type_owner = {t: n for n, t in types.items()}
    for i, vnfd in enumerate(nsd.vnfd):
        for key in vnfd.requires or {}:
            if key not in names:
                hint = (f' ("{key}" is the type of "{type_owner[key]}": requires keys are VNFD names)'
                        if key in type_owner else "")
                problems.append(f'{bundle.place(i)}: requires "{key}" is not a VNFD of this service{hint}')
            elif key == vnfd.name:
                problems.append(f'{bundle.place(i)}: requires itself ("{key}")')
    for i, dep in enumerate(nsd.vnf_dependency or []):
        where = f"nsd.vnf_dependency[{i}]"
        for role in ("source", "target"):
            value = getattr(dep, role)
            if not value:
                problems.append(f"{where}.{role} is missing or empty")
            elif value not in names:
                problems.append(f'{where}.{role} "{value}" is not a VNFD of this service')
        if dep.source and dep.source == dep.target:
            problems.append(f'{where}: "{dep.source}" depends on itself')
        if not dep.parameters:
            problems.append(f"{where} has no parameters (at least one is required)")

    # Two sources of one target must differ in type: the dependency is keyed by source type.
    if not problems:
        edges = merge_dependencies(nsd.vnfd, nsd.vnf_dependency or [])
        by_target: dict[str, dict[str, str]] = {}
        for edge in edges:
            seen = by_target.setdefault(edge.target, {})
            src_type = types.get(edge.source, "")
            if src_type in seen and seen[src_type] != edge.source:
                problems.append(f'vnfd "{edge.target}": its sources "{seen[src_type]}" and "{edge.source}" have the '
                                f'same type "{src_type}" (dependency parameters are keyed by source type)')
            seen.setdefault(src_type, edge.source)
    if problems:
        raise DescriptorError(problems)
