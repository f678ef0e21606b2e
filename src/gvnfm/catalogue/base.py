"""The base of every wire model: unknown fields are kept and sent back unchanged."""

from __future__ import annotations

import json
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from gvnfm.catalogue.wire_json import JAVA_LONG_MAX, JAVA_LONG_MIN, WireNumberError, loads_wire

#: the wire's JSON reader is re-exported
__all__ = ["JAVA_LONG_MAX", "JAVA_LONG_MIN", "WireModel", "WireNumberError", "loads_wire"]


class WireModel(BaseModel):
    """A JSON object as a Java peer writes it.

    Attribute names are the wire names (the Java field names, snake_case or camelCase as the NFVO
    writes them). Fields gvnfm does not model are kept (``extra="allow"``) and dumped again, and a
    field that was absent stays absent (``exclude_unset``), so a record round-trips byte-equivalently.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=False)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def to_json(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))

    @classmethod
    def from_wire(cls, data: dict[str, Any] | str | bytes) -> Self:
        if isinstance(data, (str, bytes)):
            data = loads_wire(data)
        return cls.model_validate(data)

    def copy_deep(self) -> Self:
        return type(self).model_validate(self.to_wire())
