"""The decode contract shared by every protocol codec and ``meter-gateway decode``.

A codec exposes a ``Decoder``: bytes in, a ``Decoded`` out, or a ``FrameError`` whose ``code``
says what was wrong. ``to_json`` gives the one JSON object ``meter-gateway decode`` prints.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from modules.codecs.errors import FrameError

__all__ = ["Decoded", "Decoder", "Record", "error_result", "to_json"]

RecordValue = Decimal | int | float | str | None


class Record(msgspec.Struct, frozen=True):
    """One decoded quantity in the units Home Assistant uses (or the protocol's own)."""

    name: str
    value: RecordValue
    unit: str | None = None
    obis: str | None = None
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    function: str = "instantaneous"
    raw: dict[str, Any] = msgspec.field(default_factory=dict)


class Decoded(msgspec.Struct):
    """What one frame or telegram says: who sent it, its protocol facts and its records."""

    protocol: str
    meter: dict[str, Any] = msgspec.field(default_factory=dict)
    frame: dict[str, Any] = msgspec.field(default_factory=dict)
    records: list[Record] = msgspec.field(default_factory=list)


class Decoder(Protocol):
    """A stateful decoder for one protocol (state: e.g. learned wM-Bus compact formats)."""

    input_kind: ClassVar[Literal["hex", "text"]]

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode one frame; raise FrameError (with its code) when it cannot."""
        ...


_ENCODER = msgspec.json.Encoder(decimal_format="number")


def _result(decoded: Decoded) -> dict[str, Any]:
    return {
        "protocol": decoded.protocol,
        "ok": True,
        "meter": decoded.meter,
        "frame": decoded.frame,
        "records": decoded.records,
        "error": None,
    }


def error_result(protocol: str, error: FrameError) -> dict[str, Any]:
    """The JSON object for a frame that could not be decoded."""
    return {
        "protocol": protocol,
        "ok": False,
        "meter": {},
        "frame": {},
        "records": [],
        "error": {"code": error.code, "message": str(error), "offset": error.offset},
    }


def to_json(result: Decoded | dict[str, Any]) -> bytes:
    """One JSON line for a decode result; Decimals stay exact numbers, bytes become hex."""
    body = _result(result) if isinstance(result, Decoded) else result
    return _ENCODER.encode(body)
