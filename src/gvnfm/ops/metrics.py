"""Prometheus metrics of the VNFM and the EMS (``prometheus_client``'s default registry).

Every process has one registry: the VNFM's ``--http`` endpoint, ``gvnfm up``'s API and the EMS's
``--http`` endpoint all serve :func:`exposition`. Counters only go up; tests compare before and after.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

OPERATIONS = Counter("gvnfm_operations", "NFVO operations finished, by action and outcome (DONE/FAILED)",
                     ["action", "outcome"])
OPERATION_SECONDS = Histogram("gvnfm_operation_duration_seconds", "duration of an NFVO operation",
                              ["action"], buckets=_SECONDS)
STEP_SECONDS = Histogram("gvnfm_step_duration_seconds", "duration of one EMS step (script or file)",
                         ["event"], buckets=_SECONDS)
STEPS_IN_FLIGHT = Gauge("gvnfm_steps_in_flight", "EMS steps sent and not answered yet")
EMS_REGISTRATIONS = Counter("gvnfm_ems_registrations", "EMS registrations received")
EMS_WAITS = Counter("gvnfm_ems_waits", "waits for EMS registrations, by outcome (registered/timeout)", ["outcome"])
EMS_WAIT_SECONDS = Histogram("gvnfm_ems_wait_seconds", "time spent waiting for EMSs to register", buckets=_SECONDS)
EMS_COMMAND_TIMEOUTS = Counter("gvnfm_ems_command_timeouts", "EMS commands not answered in time")
BROKER_RECONNECTS = Counter("gvnfm_broker_reconnects", "broker connections re-established")
STORE_COMMIT_SECONDS = Histogram("gvnfm_store_commit_seconds", "latency of a store write transaction",
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
REPLIES = Counter("gvnfm_replies_sent", "answers sent to the NFVO, by action", ["action"])
# EMS agent
EMS_SCRIPTS = Counter("gvnfm_ems_scripts", "scripts run by the EMS agent, by outcome (ok/failed/timeout)",
                      ["outcome"])
EMS_COMMANDS = Counter("gvnfm_ems_commands", "commands handled by the EMS agent, by action", ["action"])


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric of this process and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
