"""Where messages go: the exchange, the queue names and the routing keys of the Open Baton wire, and
gvnfm's own (``gvnfm.<endpoint>.*``), each defined here once.

No pydantic and nothing but ``re`` from the standard library: the EMS agent on every VM imports this
module (docs/performance.md, *A light EMS*).

Open Baton's (protocol reference §1):

- ``openbaton-exchange``: the topic exchange of every role;
- ``nfvo.manager.handling``: VNFM registration (RPC) and unregistration;
- ``vnfm.nfvo.actions.reply``: a VNFM's requests the NFVO answers (GRANT_OPERATION, ALLOCATE_RESOURCES,
  SCALING), and the reference's INSTANTIATE answer when the NFVO's reply queue is gone;
- ``vnfm.nfvo.actions``: what a VNFM tells the NFVO without a request (an ERROR notice);
- ``vnfm.<hostname>.actions``: one EMS's commands (routing key = queue name);
- ``ems.<vnfm type>.register``: the EMS registrations of one VNFM endpoint.

gvnfm's own, between the workers of one endpoint:

- ``gvnfm.<endpoint>.nfvo-answers``: the NFVO's answers to the workers' requests (durable, shared);
- ``gvnfm.<endpoint>.ems-registered``: the routing key on which a registration is re-published to
  every worker;
- ``gvnfm.<endpoint>.worker.<tag>``: one worker's exclusive inbox bound to that key.
"""

from __future__ import annotations

import re

EXCHANGE = "openbaton-exchange"

NFVO_REGISTRATION_QUEUE = "nfvo.manager.handling"
NFVO_REQUEST_QUEUE = "vnfm.nfvo.actions.reply"
NFVO_NOTICE_QUEUE = "vnfm.nfvo.actions"

_EMS_ACTIONS_PREFIX, _EMS_ACTIONS_SUFFIX = "vnfm.", ".actions"


def ems_actions_queue(hostname: str) -> str:
    """The queue (and routing key) of the commands to the EMS of ``hostname``."""
    return f"{_EMS_ACTIONS_PREFIX}{hostname}{_EMS_ACTIONS_SUFFIX}"


def ems_actions_pattern(hosts: str) -> str:
    """A regex of the EMS command queues of the hostnames the regex ``hosts`` matches."""
    return re.escape(_EMS_ACTIONS_PREFIX) + hosts + re.escape(_EMS_ACTIONS_SUFFIX)


def ems_register_queue(vnfm_type: str) -> str:
    """The queue (and routing key) of the registrations of the EMSs of a VNFM endpoint (type)."""
    return f"ems.{vnfm_type}.register"


def nfvo_answers_queue(endpoint: str) -> str:
    return f"gvnfm.{endpoint}.nfvo-answers"


def ems_registered_key(endpoint: str) -> str:
    return f"gvnfm.{endpoint}.ems-registered"


def worker_inbox(endpoint: str, tag: str) -> str:
    return f"gvnfm.{endpoint}.worker.{tag}"
