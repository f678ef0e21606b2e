"""A third-party VNFM built on Open Baton's python-vnfm-sdk 6.0.0: the SDK does the protocol (registration,
GRANT_OPERATION, ALLOCATE_RESOURCES, SCALING, the answers); this VNFM only records what it is asked to
do, one JSON line per call, and returns the VNFR as the SDK expects. It runs in the SDK's own venv
(``sdk_venv``) and imports nothing of gvnfm.

    python sdk_vnfm_app.py CONFIG VIRTUAL_HOST PORT EVENTS_FILE

The SDK connects to the broker's default virtual host on port 5672 only (``ConnectionParameters(host=,
credentials=, heartbeat_interval=)``): the wrapper below adds the test's virtual host and port to every
connection it opens, and changes nothing else of the SDK.
"""

import json
import logging
import sys
import threading

import pika
from openbaton.vnfm import AbstractVnfm, start_vnfm_instances

CONFIG, VIRTUAL_HOST, PORT, EVENTS = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
_parameters = pika.ConnectionParameters
_lock = threading.Lock()


def _on_test_vhost(*args, **kwargs):
    kwargs.setdefault("virtual_host", VIRTUAL_HOST)
    kwargs.setdefault("port", PORT)
    return _parameters(*args, **kwargs)


pika.ConnectionParameters = _on_test_vhost


def _instances(vnfr):
    return [{"hostname": i.get("hostname"), "component": (i.get("vnfComponent") or {}).get("id"),
             "ips": [ip.get("ip") for ip in i.get("ips") or []]}
            for vdu in (vnfr or {}).get("vdu") or [] for i in vdu.get("vnfc_instance") or []]


def record(action, vnfr, **extra):
    line = {"action": action, "vnfr": (vnfr or {}).get("name"), "instances": _instances(vnfr), **extra}
    with _lock, open(EVENTS, "a") as fh:
        fh.write(json.dumps(line) + "\n")


class RecordingVnfm(AbstractVnfm):
    def instantiate(self, vnf_record, scripts, vim_instances):
        record("INSTANTIATE", vnf_record, scripts=sorted(s.get("name") for s in scripts or []))
        return vnf_record

    def modify(self, vnf_record, dependency):
        record("MODIFY", vnf_record, sources=sorted((dependency or {}).get("idType") or {}))
        return vnf_record

    def start_vnfr(self, vnf_record):
        record("START", vnf_record)
        return vnf_record

    def stop_vnfr(self, vnf_record):
        record("STOP", vnf_record)
        return vnf_record

    def scale_out(self, vnf_record, vnfc_instance, scripts, dependency):
        record("SCALE_OUT", vnf_record, new=vnfc_instance.get("hostname"),
               new_component=(vnfc_instance.get("vnfComponent") or {}).get("id"))
        return vnf_record

    def scale_in(self, vnf_record, vnfc_instance):
        record("SCALE_IN", vnf_record, removed=(vnfc_instance or {}).get("hostname"))
        return vnf_record

    def terminate(self, vnf_record):
        record("RELEASE_RESOURCES", vnf_record)
        return vnf_record

    def heal(self, vnf_record, vnfc_instance, cause):
        record("HEAL", vnf_record, cause=cause)
        return vnf_record

    def handle_error(self, vnf_record):
        record("ERROR", vnf_record)
        return vnf_record

    def query(self):
        return None

    def check_instantiation_feasibility(self):
        return None

    def update_software(self, script, vnf_record):
        return vnf_record

    def upgrade_software(self):
        return None

    def notify_change(self):
        return None

    def resume(self, vnf_record, vnfc_instance, dependency):
        return vnf_record

    def get_resumed_action(self, vnf_record, vnfc_instance):
        return None

    def execute_script(self, vnf_record, script):
        return vnf_record

    def start_vnfci(self, vnf_record, vnfc_instance):
        record("START", vnf_record, vnfc=vnfc_instance.get("hostname"))
        return vnf_record

    def stop_vnfci(self, vnf_record, vnfc_instance):
        record("STOP", vnf_record, vnfc=vnfc_instance.get("hostname"))
        return vnf_record

    def configure(self, vnf_record):
        return vnf_record


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    record("REGISTERING", None)
    start_vnfm_instances(RecordingVnfm, CONFIG, instances=1)
