"""Scripts and VNF packages as they travel from the NFVO.

A Script's ``payload`` is a Java ``byte[]`` serialised by Gson without an adapter: a JSON array of
signed 8-bit integers. gvnfm accepts that and a base64 string, and writes the Java form back.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import field_serializer, field_validator

from gvnfm.catalogue.base import WireModel


def bytes_from_wire(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, list):
        try:
            return bytes((int(b) & 0xFF) for b in value)
        except (TypeError, ValueError) as exc:
            raise ValueError("script payload list must hold integers") from exc
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("script payload string is not valid base64") from exc
    raise ValueError(f"unsupported script payload type {type(value).__name__}")


def bytes_to_java(data: bytes) -> list[int]:
    return [b - 256 if b > 127 else b for b in data]


class Script(WireModel):
    id: str | None = None
    name: str
    payload: bytes = b""

    @field_validator("payload", mode="before")
    @classmethod
    def _decode(cls, v: Any) -> bytes:
        return bytes_from_wire(v)

    @field_serializer("payload")
    def _encode(self, v: bytes) -> list[int]:
        return bytes_to_java(v)

    def payload_base64(self) -> str:
        return base64.b64encode(self.payload).decode("ascii")


class VNFPackage(WireModel):
    id: str | None = None
    name: str | None = None
    scripts: list[Script] | None = None
    scriptsLink: str | None = None
