"""VNF dependencies, as the NFVO computes them (pure: descriptors and records in, records out).

- ``merge_dependencies``: every VNFD ``requires`` entry ``{<source VNFD name>: {parameters}}`` becomes an
  edge source → this VNFD (skipped when it has no parameters), then the NSD ``vnf_dependency`` list is
  merged in; edges with the same (source, target) are one edge with the union of the parameters
  (descriptors.md §2.4-§2.5, ``NSDUtils.fetchDependencies``).
- ``build_record_dependency``: the VNFRecordDependency sent with MODIFY to a target
  (``DependencyManagement``, protocol §6, vnfm-ems §6.5).
- ``build_scaled_dependency``: the one sent to the targets of a source that scaled out: only the new
  VNFC, with all its addresses and its hostname unfiltered (vnfm-ems §6.10, ``ScaledTask``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor, VNFDependency
from gvnfm.catalogue.records import (
    DependencyParameters,
    VirtualNetworkFunctionRecord,
    VNFCDependencyParameters,
    VNFCInstance,
    VNFRecordDependency,
)


@dataclass(frozen=True)
class Edge:
    """One merged dependency: ``target`` needs ``parameters`` of ``source`` (VNFD names)."""

    source: str
    target: str
    parameters: tuple[str, ...]


def merge_dependencies(vnfds: Iterable[VirtualNetworkFunctionDescriptor],
                       explicit: Iterable[VNFDependency] = ()) -> list[Edge]:
    merged: dict[tuple[str, str], list[str]] = {}

    def add(source: str, target: str, params: Iterable[str]) -> None:
        keys = merged.setdefault((source, target), [])
        for p in params:
            if p not in keys:
                keys.append(p)

    for vnfd in vnfds:
        for source, req in (vnfd.requires or {}).items():
            params = list(req.parameters or [])
            if params and vnfd.name:
                add(source, vnfd.name, params)
    for dep in explicit:
        add(dep.source, dep.target, dep.parameters)
    return [Edge(s, t, tuple(p)) for (s, t), p in merged.items()]


def sources_of(edges: Iterable[Edge], target: str) -> list[Edge]:
    return [e for e in edges if e.target == target]


def targets_of(edges: Iterable[Edge], source: str) -> list[Edge]:
    return [e for e in edges if e.source == source]


def is_target(edges: Iterable[Edge], name: str) -> bool:
    return any(e.target == name for e in edges)


def on_cycles(edges: Iterable[Edge]) -> set[str]:
    """Names of the VNFDs on a dependency cycle (the NFVO's ``cyclicDependency`` flag). Cycles are
    allowed: a target is configured as soon as all its sources are instantiated."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    result: set[str] = set()
    for start in graph:
        stack, seen = list(graph[start]), set()
        while stack:
            node = stack.pop()
            if node == start:
                result.add(start)
                break
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
    return result


def _vnf_level(params: Sequence[str], source: VirtualNetworkFunctionRecord) -> dict[str, str | None]:
    """Every key starts as ""; a provides value overwrites it, then a configurations value. Keys whose
    value ends up null are dropped (Gson drops nulls)."""
    provides = {p.confKey: p.value for p in (source.provides.configurationParameters or [])} \
        if source.provides is not None else {}
    confs = source.configurations.as_dict() if source.configurations is not None else {}
    values: dict[str, str | None] = {}
    for key in params:
        value: str | None = ""
        if key in provides:
            value = provides[key]
        if key in confs:
            value = confs[key]
        if value is not None:
            values[key] = value
    return values


def _vnfc_level(params: Sequence[str] | None, inst: VNFCInstance) -> dict[str, str | None]:
    """``<net>`` = IP, ``<net>_floatingIp`` = floating IP, ``hostname``: those requested (all when
    ``params`` is None)."""
    wanted = None if params is None else set(params)
    values: dict[str, str | None] = {}
    for ip in inst.ips or []:
        if ip.ip is not None and (wanted is None or ip.netName in wanted):
            values[ip.netName] = ip.ip
    for fip in inst.floatingIps or []:
        key = f"{fip.netName}_floatingIp"
        if fip.ip is not None and (wanted is None or key in wanted):
            values[key] = fip.ip
    if inst.hostname is not None and (wanted is None or "hostname" in wanted):
        values["hostname"] = inst.hostname
    return values


def _id(dependency_id: str | None) -> dict[str, Any]:
    return {"id": dependency_id} if dependency_id else {}


def _serving(inst: VNFCInstance) -> bool:
    """Standby VNFCs are not given to dependency targets until switched to active."""
    return (inst.state or "").upper() != "STANDBY"


def build_record_dependency(target_name: str,
                            sources: Sequence[tuple[Sequence[str], VirtualNetworkFunctionRecord]],
                            *, dependency_id: str | None = None) -> VNFRecordDependency:
    """The VNFRecordDependency of ``target_name`` from its sources: (requested parameter keys,
    source VNFR with its VNFC instances). Maps are keyed by source TYPE; ``idType`` maps source
    NAME → type."""
    parameters: dict[str, DependencyParameters] = {}
    vnfc_parameters: dict[str, VNFCDependencyParameters] = {}
    id_type: dict[str, str] = {}
    for params, source in sources:
        src_type = source.type or source.name
        id_type[source.name] = src_type
        level = parameters.setdefault(src_type, DependencyParameters(parameters={}))
        level.parameters.update(_vnf_level(params, source))
        vnfc = vnfc_parameters.setdefault(src_type, VNFCDependencyParameters(parameters={}))
        for inst in source.vnfc_instances():
            if not _serving(inst):
                continue
            key = inst.id or inst.hostname or ""
            vnfc.parameters[key] = DependencyParameters(parameters=_vnfc_level(params, inst))
    # every field passed explicitly: WireModel dumps only fields that were set
    return VNFRecordDependency(**_id(dependency_id), target=target_name, parameters=parameters,
                               vnfcParameters=vnfc_parameters, idType=id_type)


def build_scaled_dependency(target_name: str, params: Sequence[str], source: VirtualNetworkFunctionRecord,
                            new_instance: VNFCInstance, *, dependency_id: str | None = None) -> VNFRecordDependency:
    """After ``source`` scaled out with ``new_instance``: only that VNFC, with all its IPs, floating IPs
    and its hostname (not filtered by ``params``). VNF-level values are those of the full dependency,
    so type-prefixed CONFIGURE scripts see the same ``<type>_<key>`` variables as at deploy time."""
    src_type = source.type or source.name
    key = new_instance.id or new_instance.hostname or ""
    return VNFRecordDependency(
        **_id(dependency_id), target=target_name, idType={source.name: src_type},
        parameters={src_type: DependencyParameters(parameters=_vnf_level(params, source))},
        vnfcParameters={src_type: VNFCDependencyParameters(
            parameters={key: DependencyParameters(parameters=_vnfc_level(None, new_instance))})})
