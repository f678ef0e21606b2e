"""The VNFM's requests to the NFVO: registration on ``nfvo.manager.handling`` and the synchronous
GRANT_OPERATION / ALLOCATE_RESOURCES / SCALING requests on ``vnfm.nfvo.actions.reply``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from gvnfm.catalogue.messages import MessageError, NfvMessage, parse_nfvo_message
from gvnfm.catalogue.queues import NFVO_NOTICE_QUEUE, NFVO_REGISTRATION_QUEUE, NFVO_REQUEST_QUEUE
from gvnfm.transport import BrokerRefused, RpcTimeout, Transport, TransportError

if TYPE_CHECKING:
    from gvnfm.vnfm.nfvo_answers import NfvoAnswers

log = logging.getLogger(__name__)



class NfvoError(Exception):
    """The NFVO did not answer, or answered something unusable."""


class NfvoClient:
    def __init__(self, transport: Transport, *, timeout: float, answers: NfvoAnswers | None = None) -> None:
        self.transport = transport
        self.timeout = timeout
        #: the endpoint's shared answer queue: with a correlation id, the answer survives this worker
        self.answers = answers

    async def request(self, message: NfvMessage, *, correlation_id: str | None = None) -> NfvMessage:
        body = message.to_json().encode()
        if self.answers is not None and correlation_id:
            return await self._answer(message.action, self.answers.ask(
                self.transport, NFVO_REQUEST_QUEUE, body, action=message.action, correlation_id=correlation_id,
                timeout=self.timeout))
        return await self._answer(message.action, self.transport.rpc(
            NFVO_REQUEST_QUEUE, body, timeout=self.timeout, correlation_id=correlation_id))

    async def asked(self, correlation_id: str) -> bool:
        """Whether the request ``correlation_id`` was recorded by a worker before this one (it may have
        gone out, with what it carried: it is collected, never asked again). False without an answer queue."""
        return self.answers is not None and await self.answers.asked(correlation_id)

    async def collect(self, action: str, correlation_id: str) -> NfvMessage:
        """The NFVO's answer to the request ``correlation_id`` another worker asked (:meth:`asked`)."""
        if self.answers is None:
            raise NfvoError(f"no answer queue to collect the answer to {action} from")
        return await self._answer(action, self.answers.collect(correlation_id, action=action, timeout=self.timeout))

    async def _answer(self, action: str, asking: Awaitable[bytes]) -> NfvMessage:
        try:
            raw = await asking
        except RpcTimeout as exc:
            raise NfvoError(f"the NFVO did not answer {action} within {self.timeout:g} s") from exc
        except TransportError as exc:
            raise NfvoError(f"{action} to the NFVO failed: {exc}") from exc
        try:
            return parse_nfvo_message(raw)
        except MessageError as exc:
            raise NfvoError(f"the NFVO's answer to {action} is unusable: {exc}") from exc

    async def notify(self, message: NfvMessage) -> None:
        await self.transport.publish(NFVO_NOTICE_QUEUE, message.to_json().encode())


def endpoint_description(endpoint: str, type_: str, description: str) -> dict[str, Any]:
    return {"type": type_, "endpoint": endpoint, "endpointType": "RABBIT", "description": description,
            "enabled": True, "active": True}


async def register(transport: Transport, *, endpoint: str, type_: str, description: str, tries: int,
                   pause: float, timeout: float = 10.0) -> dict[str, Any] | None:
    """Register with the NFVO; returns its ``{"rabbitUsername", "rabbitPassword"}`` answer. A lost or
    unusable answer is asked again (``tries`` times, ``pause`` apart); a refusal for good fails at once."""
    body = json.dumps({"action": "register", "type": type_,
                       "vnfmManagerEndpoint": endpoint_description(endpoint, type_, description)}).encode()
    last: Exception | str | None = None
    for attempt in range(1, max(1, tries) + 1):
        try:
            raw = await transport.rpc(NFVO_REGISTRATION_QUEUE, body, timeout=timeout)
            answer = json.loads(raw) if raw and raw.strip() else None
        except BrokerRefused as exc:    # refused for good (permissions, a name too long): no retry
            raise NfvoError(f"the broker refused the registration with the NFVO: {exc}") from exc
        except (TransportError, json.JSONDecodeError) as exc:
            last = exc
        else:
            if isinstance(answer, dict) and answer.get("rabbitUsername"):
                log.info("event=registered_with_nfvo endpoint=%s attempt=%d", endpoint, attempt)
                return answer
            # as the reference: a null (or credential-less) answer is a failed registration, retried
            last = f"the NFVO answered {raw[:200]!r} instead of the manager credentials"
        log.warning("event=nfvo_registration_retry endpoint=%s attempt=%d of=%d in=%gs error=%r", endpoint,
                    attempt, tries, pause, str(last))
        if attempt < tries:
            await asyncio.sleep(pause)     # cancellable: a stop request ends the retries at once
    raise NfvoError(f"could not register with the NFVO after {tries} attempts: {last}")


async def unregister(transport: Transport, *, endpoint: str, type_: str, description: str,
                     credentials: dict[str, Any] | None) -> None:
    creds = credentials or {}
    body = json.dumps({"action": "unregister", "type": type_, "username": creds.get("rabbitUsername"),
                       "password": creds.get("rabbitPassword"),
                       "vnfmManagerEndpoint": endpoint_description(endpoint, type_, description)}).encode()
    try:
        await transport.publish(NFVO_REGISTRATION_QUEUE, body)
    except TransportError as exc:
        log.warning("event=nfvo_unregister_failed error=%r", str(exc))
