"""Hostile NFVO and EMS input to the VNFM: non-finite and absurd numbers get a clear ERROR reply, a
refused message is logged by size, action and digest (never its body), and the service keeps serving."""

from __future__ import annotations

import json
import logging

import pytest

from gvnfm.catalogue.base import WireNumberError, loads_wire
from gvnfm.catalogue.ems import EmsReply
from gvnfm.redact import body_summary, mask_urls
from tests.support.harness import Harness, h, instantiate_msg  # noqa: F401  (h: the fixture)

SECRET = "s3cr3t-config-value"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "123456789012345678901234567890"])
async def test_a_non_finite_number_from_the_nfvo_is_refused_with_an_error_reply(
        h: Harness, caplog: pytest.LogCaptureFixture, number: str) -> None:  # noqa: F811
    caplog.set_level(logging.INFO)
    msg = instantiate_msg(1)
    msg["vnfd"]["configurations"] = {"configurationParameters": [{"confKey": "pw", "value": SECRET}]}
    body = json.dumps(msg).replace('"action": "INSTANTIATE"', f'"action": "INSTANTIATE", "hbVersion": {number}')
    reply = await h.call(body.encode())
    # answered (the NFVO waits for every answer): an INSTANTIATE has no VNFR to put in an ERROR, and an
    # ERROR without one makes the NFVO's ErrorTask fail, so the answer is null, as the Java VNFM's
    assert reply is None
    refused = [r.getMessage() for r in caplog.records if "event=message_refused" in r.getMessage()]
    assert refused and "action=INSTANTIATE" in refused[0] and "sha256=" in refused[0]
    assert "is not accepted" in refused[0]
    assert SECRET not in caplog.text
    assert (await h.call(instantiate_msg(1)))["action"] == "INSTANTIATE"


@pytest.mark.parametrize("raw", ['{"output": "", "err": "", "status": Infinity}', '{"status": 1e400}',
                                 '{"status": 99999999999}', '{"status": NaN}'])
def test_an_ems_reply_with_an_absurd_status_is_a_failure_not_a_crash(raw: str) -> None:
    assert EmsReply.parse(raw.encode()).status == -1


def test_wire_numbers() -> None:
    assert loads_wire('{"a": 1.5, "b": -9223372036854775808, "c": 1e308}') == {"a": 1.5, "b": -2**63, "c": 1e308}
    for raw in ("NaN", "[Infinity]", "-Infinity", "1e309", "9223372036854775808"):
        with pytest.raises(WireNumberError):
            loads_wire(raw)


@pytest.mark.parametrize(("text", "shown"), [
    ("event=runtime_started broker=amqp://admin:pa%40ss@host:5672/vh", "event=runtime_started broker=amqp://admin:***@host:5672/vh"),
    ("x amqps://u:p@h/ and http://tok@h/", "x amqps://u:***@h/ and http://***@h/"),
    ("no url here", "no url here"),
])
def test_one_masking_function(text: str, shown: str) -> None:
    assert mask_urls(text) == shown


def test_body_summary_never_shows_the_body() -> None:
    body = json.dumps({"action": "START", "secret": SECRET}).encode()
    summary = body_summary(body)
    assert SECRET not in summary and "action=START" in summary and f"bytes={len(body)}" in summary
    assert "action=?" in body_summary(b"\xff not json " + SECRET.encode())
