"""The NFVO's messages the bench sends: an INSTANTIATE of one VDU with ``n`` VNFC components and
an INSTANTIATE event of empty scripts, with the package that holds them (plain JSON, as an NFVO
writes it)."""

from __future__ import annotations

from typing import Any

#: An empty script: the EMS runs it with /bin/bash, which exits 0 at once.
EMPTY_SCRIPT = b""


def script_names(count: int) -> list[str]:
    width = max(3, len(str(count - 1)))
    return [f"s{i:0{width}d}.sh" for i in range(count)]


def instantiate(name: str, n_vnfc: int, scripts: list[str], *, broker_ip: str = "127.0.0.1",
                broker_port: int = 5672, payload: bytes = EMPTY_SCRIPT) -> dict[str, Any]:
    """INSTANTIATE of VNF ``name``: ``n_vnfc`` VNFCs, event INSTANTIATE = ``scripts`` (each a file of
    the package holding ``payload``, empty by default, delivered once per VNFC)."""
    vnfd = {
        "id": f"{name}-vnfd", "name": name, "vendor": "gvnfm-bench", "version": "1.0", "type": name,
        "endpoint": "generic",
        "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": list(scripts)}],
        "configurations": {"name": f"{name}-conf", "configurationParameters": []},
        "virtual_link": [{"id": "vl-private", "name": "private"}],
        "vdu": [{"id": f"{name}-vdu", "vm_image": ["bench"], "scale_in_out": n_vnfc,
                 "vnfc": [{"id": f"{name}-vnfc-{i}",
                           "connection_point": [{"virtual_link_reference": "private", "interfaceId": 0}]}
                          for i in range(n_vnfc)]}],
        "deployment_flavour": [{"flavour_key": "m1.small"}],
        "provides": [], "requires": {},
    }
    files = sorted(set(scripts))
    return {
        "action": "INSTANTIATE", "vnfd": vnfd, "vnfdf": {"flavour_key": "m1.small"},
        "vnfInstanceName": name, "vlrs": [{"id": "net-private", "name": "private"}],
        "extension": {"nsr-id": f"{name}-nsr", "brokerIp": broker_ip, "brokerPort": str(broker_port)},
        "vimInstances": {}, "keys": [],
        "vnfPackage": {"id": f"{name}-pkg", "name": name,
                       "scripts": [{"name": f, "payload": list(payload)} for f in files]},
    }
