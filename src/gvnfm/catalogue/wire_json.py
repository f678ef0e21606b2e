"""JSON as it comes from the wire, read the way a Java peer would (no pydantic here: the EMS agent on
every VM imports this module and stays light)."""

from __future__ import annotations

import json
import math
from typing import Any

#: Java's ``long`` range: no Java peer sends an integer outside it, and a Java peer cannot read one.
JAVA_LONG_MIN, JAVA_LONG_MAX = -(2**63), 2**63 - 1


class WireNumberError(ValueError):
    """A number on the wire that no Java peer can write or read: NaN, ±Infinity, a float that overflows,
    an integer outside Java's ``long``."""


def _refuse_constant(name: str) -> Any:
    raise WireNumberError(f"the number {name} is not accepted (not finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise WireNumberError(f"the number {text[:40]} is not accepted (not finite)")
    return value


def _long_int(text: str) -> int:
    if len(text) > 20:   # checked before int(): no work on a huge literal
        raise WireNumberError(f"the number {text[:24]}... is not accepted (outside Java's long)")
    value = int(text)
    if not JAVA_LONG_MIN <= value <= JAVA_LONG_MAX:
        raise WireNumberError(f"the number {text} is not accepted (outside Java's long)")
    return value


def loads_wire(body: str | bytes | bytearray) -> Any:
    """``json.loads`` for everything that arrives from the wire (NFVO, VNFM, EMS): refuses NaN,
    ±Infinity, floats that overflow to infinity and integers outside Java's ``long``
    (``WireNumberError``, a ``ValueError``), so a non-finite number never reaches a timer, a
    comparison, the store (PostgreSQL refuses NaN in JSON) or a reply a Java peer would choke on."""
    return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_long_int)
