"""The VNFM's own queues (the endpoint queue, ``ems.<endpoint>.register``) and what to do when the
broker already holds one declared with other flags.

RabbitMQ refuses a declaration whose ``durable``/``auto_delete`` differ from the existing queue's
(``PRECONDITION_FAILED - inequivalent arg 'auto_delete' ... received 'true' but current is 'false'``).
Such a queue is left by another VNFM of the same endpoint (the reference, or gvnfm configured
otherwise). gvnfm then uses the queue as it is and says so in one log line: which flags it has, which
were configured, and how to delete it so that the configured ones apply.
"""

from __future__ import annotations

import logging
import re

from gvnfm.transport import Transport, TransportError

log = logging.getLogger(__name__)

_INEQUIVALENT = re.compile(r"inequivalent arg '(durable|auto_delete)'.*?received '(\w+)' but current is '(\w+)'")


def differing_flag(error: str) -> tuple[str, bool] | None:
    """The flag (``durable`` / ``auto_delete``) and the existing queue's value that a broker error names."""
    m = _INEQUIVALENT.search(error)
    return (m.group(1), m.group(3) == "true") if m else None


async def declare_own_queue(transport: Transport, name: str, *, durable: bool, auto_delete: bool, vhost: str = "",
                            bind: bool = True) -> tuple[bool, bool]:
    """Declare ``name`` with the configured flags, or, when the broker holds it with other flags, with
    the existing ones (logged once). Returns the flags in use."""
    flags = {"durable": durable, "auto_delete": auto_delete}
    for _ in range(3):      # at most one refusal per flag
        try:
            await transport.declare_queue(name, durable=flags["durable"], auto_delete=flags["auto_delete"], bind=bind)
            break
        except TransportError as exc:
            found = differing_flag(str(exc))
            if found is None or flags[found[0]] == found[1]:
                raise
            flags[found[0]] = found[1]
    else:
        raise TransportError(f"cannot declare queue {name!r} with any flags the broker accepts")
    if (flags["durable"], flags["auto_delete"]) != (durable, auto_delete):
        log.warning("event=queue_flags_differ queue=%s existing=durable:%s,auto_delete:%s configured=durable:%s,"
                    "auto_delete:%s; using it as it is. To get the configured flags, stop every VNFM of this "
                    "endpoint and delete it: rabbitmqctl delete_queue %s -p %s (configured with "
                    "vnfm.rabbitmq.durable / vnfm.rabbitmq.autodelete)", name, _b(flags["durable"]),
                    _b(flags["auto_delete"]), _b(durable), _b(auto_delete), name, vhost or "/")
    return flags["durable"], flags["auto_delete"]


def _b(value: bool) -> str:
    return "true" if value else "false"
