"""Environment of a lifecycle script, exactly as the reference builds it (§6 of the behaviour
reference), computed from the records alone.

Deliberate differences (docs/compatibility.md): keys that a per-VNFC value overrode are *restored*
for the next VNFC instead of deleted; ``removing_*`` keys are sanitised like every other name (every
name sent is a shell identifier: gvnfm's EMS refuses any other).
"""

from __future__ import annotations

import re

from gvnfm.catalogue.records import VirtualNetworkFunctionRecord, VNFCInstance, VNFRecordDependency

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")

Env = dict[str, str]


def sanitize(key: str) -> str:
    """``[^A-Za-z0-9_]`` becomes ``_`` (``EnvMapUtils.modifyUnsafeEnvVarNames``)."""
    return _UNSAFE.sub("_", key)


def _sanitized(env: dict[str, str | None]) -> Env:
    # null values are dropped (Gson omits them), "" values are kept
    return {sanitize(k): v for k, v in env.items() if v is not None}


def base_env(vnfr: VirtualNetworkFunctionRecord) -> Env:
    """Configurations and provides of the VNF (configurations win). As in the reference, a VNFR
    without both blocks yields no variables at all."""
    provides, conf = vnfr.provides, vnfr.configurations
    if provides is None or provides.configurationParameters is None:
        return {}
    if conf is None or conf.configurationParameters is None:
        return {}
    merged: dict[str, str | None] = {}
    merged.update(provides.as_dict())
    merged.update(conf.as_dict())
    return _sanitized(merged)


def vnfc_env(inst: VNFCInstance) -> Env:
    """``<network>`` = IP, ``<network>_floatingIp`` = floating IP, ``hostname``."""
    env: dict[str, str | None] = {}
    for ip in inst.ips or []:
        env[ip.netName] = ip.ip
    for fip in inst.floatingIps or []:
        env[f"{fip.netName}_floatingIp"] = fip.ip
    env["hostname"] = inst.hostname
    return _sanitized(env)


def removing_env(removed: VNFCInstance) -> Env:
    """SCALE_IN variables describing the removed VNFC: ``removing_<net>``, ``removing_<net>_floatingIp``,
    ``removing_hostname``. The reference sends the names unsanitised (``removing_private-net``, which
    bash cannot read); gvnfm sends the sanitised name only."""
    raw: dict[str, str | None] = {}
    for ip in removed.ips or []:
        raw[f"removing_{ip.netName}"] = ip.ip
    for fip in removed.floatingIps or []:
        raw[f"removing_{fip.netName}_floatingIp"] = fip.ip
    raw["removing_hostname"] = removed.hostname
    env: Env = {}
    for key, value in raw.items():
        if value is None:
            continue
        env[sanitize(key)] = value
    return env


def script_type_prefix(script: str) -> str | None:
    """The text before the first ``_`` of a script entry (the source VNF *type* it consumes)."""
    name = script.split()[0] if script.split() else script
    return name[: name.index("_")] if "_" in name else None


def dependency_runs(script: str, dependency: VNFRecordDependency | None) -> list[tuple[str, Env]] | None:
    """For a CONFIGURE script whose prefix is a source type of the dependency: one
    ``(source VNFC id, variables)`` per source VNFC instance, named ``<type>_<key>`` (VNF-level values
    first, VNFC-level values override). ``None`` when the script is not such a script (it then runs
    once, without foreign variables). An empty list means: prefixed, but no source instance (the
    reference then runs nothing)."""
    if dependency is None:
        return None
    src_type = script_type_prefix(script)
    if src_type is None:
        return None
    vnfc_params = dependency.vnfcParameters.get(src_type)
    if vnfc_params is None:
        return None
    vnf_level = dependency.parameters.get(src_type)
    runs: list[tuple[str, Env]] = []
    for src_vnfc_id, params in vnfc_params.parameters.items():
        dep: dict[str, str | None] = {}
        for key, value in (vnf_level.parameters if vnf_level else {}).items():
            dep[f"{src_type}_{key}"] = value
        for key, value in params.parameters.items():
            dep[f"{src_type}_{key}"] = value
        runs.append((src_vnfc_id, _sanitized(dep)))
    return runs


def compose(*layers: Env) -> Env:
    """Later layers win: base < per-VNFC < event extras (cause, removing_*) < dependency."""
    env: Env = {}
    for layer in layers:
        env.update(layer)
    return env
