"""Which EMS commands run, on which VNFC instances, in which order, with which environment.

A ``Plan`` is computed from the records alone (no broker, no store, no clock): an ordered list of
``Stage``s; the steps of one stage may run in parallel, a stage starts when the previous one has
finished everywhere (script-major order, as the reference). Every step has a stable ``step_id``
derived from the records, so an interrupted or failed operation can be re-planned and the steps
already done skipped (crash recovery and RESUME).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gvnfm.catalogue import ems
from gvnfm.catalogue.ems import DEFAULT_SCRIPTS_PATH, EmsCommand
from gvnfm.catalogue.records import VirtualNetworkFunctionRecord, VNFCInstance, VNFRecordDependency
from gvnfm.catalogue.scripts import Script
from gvnfm.vnfm import environment as envs


class PlanError(ValueError):
    """The records do not allow a plan (e.g. a VNFR without VNFC instances)."""


@dataclass(frozen=True)
class Step:
    step_id: str
    hostname: str
    action: str                      # EMS command: EXECUTE, SAVE_SCRIPTS, CLONE_SCRIPTS, ...
    command: EmsCommand              # the JSON sent to the EMS (without timeout)
    event: str = ""                  # lifecycle event, or the delivery kind
    script_index: int = -1
    script: str = ""                 # lifecycle entry (script name and arguments) or file name
    vnfc_id: str | None = None

    @property
    def is_script(self) -> bool:
        return self.action == ems.EXECUTE


@dataclass
class Stage:
    steps: list[Step] = field(default_factory=list)


@dataclass
class Plan:
    stages: list[Stage] = field(default_factory=list)

    def steps(self) -> list[Step]:
        return [s for st in self.stages for s in st.steps]

    def without(self, done: Iterable[str]) -> Plan:
        """The same plan minus the steps whose ids are in ``done``."""
        done_set = set(done)
        stages = [Stage([s for s in st.steps if s.step_id not in done_set]) for st in self.stages]
        return Plan([st for st in stages if st.steps])

    def then(self, other: Plan) -> Plan:
        return Plan(self.stages + other.stages)


def _require_hostname(inst: VNFCInstance, where: str = "") -> str:
    if not inst.hostname or not inst.hostname.strip():
        got = "null" if inst.hostname is None else repr(inst.hostname)
        raise PlanError(f"VNFC instance {inst.id or '?'}{where} has no usable hostname (hostname is {got}): the "
                        "EMS of a VNFC is addressed by its hostname")
    return inst.hostname


def all_targets(vnfr: VirtualNetworkFunctionRecord) -> list[VNFCInstance]:
    """Every VNFC instance of the VNFR, in VDU order; a VNFR without any, or with one without a
    hostname, is refused (:class:`PlanError`)."""
    instances = vnfr.vnfc_instances()
    if not instances:
        vdus = [f"{vdu.name or vdu.id or '?'!r}" for vdu in vnfr.vdu or []]
        where = (f"none of its VDUs ({', '.join(vdus)}) has a VNFC instance" if vdus else "it has no VDU")
        raise PlanError(f"VNFR {vnfr.name!r} has no VNFC instances: {where} (nothing was allocated for it)")
    for vdu in vnfr.vdu or []:
        for inst in vdu.vnfc_instance or []:
            _require_hostname(inst, f" of VDU {vdu.name or vdu.id or '?'!r} in VNFR {vnfr.name!r}")
    return instances


def named_target(vnfr: VirtualNetworkFunctionRecord, only: VNFCInstance) -> VNFCInstance:
    """The VNFC instance of the VNFR that ``only`` names (matched by id, else hostname), as the VNFR
    holds it, so its IPs are current; one the VNFR does not hold is refused (:class:`PlanError`)."""
    for inst in vnfr.vnfc_instances():
        if (only.id and inst.id == only.id) or (only.hostname and inst.hostname == only.hostname):
            return inst
    raise PlanError(f"VNFC instance {only.id or only.hostname!r} is not part of VNFR {vnfr.name!r}")


def _execute(event: str, index: int, script: str, inst: VNFCInstance, env: envs.Env, run: str = "") -> Step:
    host = _require_hostname(inst)
    return Step(
        step_id=f"{event}/{index}/{host}/{run}",
        hostname=host,
        action=ems.EXECUTE,
        command=ems.execute(script, env),
        event=event,
        script_index=index,
        script=script,
        vnfc_id=inst.id,
    )


def event_scripts(vnfr: VirtualNetworkFunctionRecord, event: str) -> list[str]:
    """The scripts of a VNFR-level lifecycle event ([] when the event or its list is absent)."""
    return list(vnfr.scripts_of(event) or [])


def plan_event(vnfr: VirtualNetworkFunctionRecord, event: str, targets: list[VNFCInstance],
               extra: envs.Env | None = None, *, start_index: int = 0) -> Plan:
    """The General executor: for each script, one stage with the script on every target VNFC.
    ``extra`` adds event variables (HEAL's ``cause``, SCALE_IN's ``removing_*``)."""
    base = envs.base_env(vnfr)
    plan = Plan()
    for index, script in enumerate(event_scripts(vnfr, event)):
        if index < start_index:
            continue
        stage = Stage([_execute(event, index, script, inst, envs.compose(base, envs.vnfc_env(inst), extra or {}))
                       for inst in targets])
        plan.stages.append(stage)
    return plan


def plan_configure(vnfr: VirtualNetworkFunctionRecord, dependency: VNFRecordDependency | None,
                   targets: list[VNFCInstance], *, save_dependency_file: bool = True,
                   scripts_path: str = DEFAULT_SCRIPTS_PATH, start_index: int = 0) -> Plan:
    """The Configure executor (§6.5): a script prefixed with a source type runs once per source VNFC
    instance with ``<type>_<key>`` variables; others run once, and before the first of those the
    dependency is saved on the VNFC (SAVE_VNFR_DEPENDENCY → ob_parameters.*)."""
    base = envs.base_env(vnfr)
    plan = Plan()
    saved = False
    for index, script in enumerate(event_scripts(vnfr, "CONFIGURE")):
        runs = envs.dependency_runs(script, dependency)
        if runs is None and not saved and save_dependency_file and dependency is not None:
            saved = True
            if index >= start_index:
                payload = dependency.model_dump_json(by_alias=True, exclude_unset=True, indent=2)
                plan.stages.append(Stage([
                    Step(step_id=f"CONFIGURE/{index}/{_require_hostname(inst)}/dependency",
                         hostname=_require_hostname(inst), action=ems.SAVE_VNFR_DEPENDENCY,
                         command=ems.save_vnfr_dependency(payload, scripts_path),
                         event="CONFIGURE", script_index=index, script="ob_parameters", vnfc_id=inst.id)
                    for inst in targets]))
        if index < start_index:
            continue
        if runs is None:
            plan.stages.append(Stage([_execute("CONFIGURE", index, script, inst,
                                               envs.compose(base, envs.vnfc_env(inst))) for inst in targets]))
            continue
        # One run per source VNFC instance. The runs on one VNFC must not overlap (they edit the same
        # files), so run j of every target VNFC forms a stage: parallel across VNFCs, serial on each.
        for src_id, dep_env in runs:
            plan.stages.append(Stage([_execute("CONFIGURE", index, script, inst,
                                               envs.compose(base, envs.vnfc_env(inst), dep_env), src_id)
                                      for inst in targets]))
    return plan


def plan_delivery(targets: list[VNFCInstance], *, scripts: list[Script] | None, scripts_link: str | None,
                  scripts_path: str = DEFAULT_SCRIPTS_PATH) -> Plan:
    """Put the package's scripts on the VNFCs: CLONE_SCRIPTS for a ``scriptsLink``, else one
    SAVE_SCRIPTS per script and VNFC. All in one stage (no script runs before all are delivered)."""
    stage = Stage()
    for inst in targets:
        host = _require_hostname(inst)
        if scripts_link:
            stage.steps.append(Step(step_id=f"DELIVER/clone/{host}", hostname=host, action=ems.CLONE_SCRIPTS,
                                    command=ems.clone_scripts(scripts_link, scripts_path),
                                    event="DELIVER", script=scripts_link, vnfc_id=inst.id))
            continue
        for script in scripts or []:
            stage.steps.append(Step(step_id=f"DELIVER/{script.name}/{host}", hostname=host, action=ems.SAVE_SCRIPTS,
                                    command=ems.save_scripts(script.name, script.payload_base64(), scripts_path),
                                    event="DELIVER", script=script.name, vnfc_id=inst.id))
    return Plan([stage] if stage.steps else [])


def plan_script_update(targets: list[VNFCInstance], script: Script,
                       scripts_path: str = DEFAULT_SCRIPTS_PATH) -> Plan:
    return Plan([Stage([
        Step(step_id=f"UPDATE_SCRIPT/{script.name}/{_require_hostname(inst)}", hostname=_require_hostname(inst),
             action=ems.SCRIPTS_UPDATE,
             command=ems.save_scripts(script.name, script.payload_base64(), scripts_path, action=ems.SCRIPTS_UPDATE),
             event="UPDATE", script=script.name, vnfc_id=inst.id)
        for inst in targets])])


def plan_adhoc_execute(targets: list[VNFCInstance], script: Script,
                       scripts_path: str = DEFAULT_SCRIPTS_PATH, base: envs.Env | None = None) -> Plan:
    """EXECUTE of the NFVO: save the script on every VNFC once (not N² times as the reference), then
    run it everywhere with the variables a lifecycle script gets there: ``base`` (the VNFR's
    configurations and provides, ``envs.base_env``) overlaid with the VNFC's own."""
    payload = script.payload_base64()
    save = Stage([
        Step(step_id=f"EXECUTE_SAVE/{_require_hostname(inst)}", hostname=_require_hostname(inst),
             action=ems.SAVE_SCRIPTS, command=ems.save_scripts(script.name, payload, scripts_path), event="EXECUTE",
             script=script.name, vnfc_id=inst.id)
        for inst in targets])
    run = Stage([
        Step(step_id=f"EXECUTE/0/{_require_hostname(inst)}/", hostname=_require_hostname(inst), action=ems.EXECUTE,
             command=ems.execute(script.name, envs.compose(base or {}, envs.vnfc_env(inst))),
             event="EXECUTE", script_index=0, script=script.name, vnfc_id=inst.id)
        for inst in targets])
    return Plan([save, run])
