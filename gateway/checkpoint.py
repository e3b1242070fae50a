"""One meter's checkpoint as one compact row: registers, engine state and the newest profile and
analysis intervals, JSON compressed with zlib.

Why one row: SQLite writes every page a commit touches (WAL frame plus wal-index), so what a
checkpoint costs the SD card is counted in pages, not bytes. A meter's registers and engine
cursor fit a quarter of a page together (about 1 KB compressed for a three-phase meter with every
feature on, against 4.3 KB of JSON), so a checkpoint of one meter writes one page where the old
tables (a row per register, a state blob) wrote three or four. The row is rewritten whole, but it
is smaller than the page it lives in: a partial rewrite would not write fewer bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from gateway.engine import AnalysisRow, ProfileFlag, ProfileRow, Register
from gateway.errors import StoreError
from gateway.model import Value

__all__ = ["MeterRow", "decode_row", "encode_row"]

# Bumped when the row's layout changes; a row of an unknown format is refused, never guessed.
ROW_FORMAT = 1
# zlib's best level: a checkpoint compresses a few KB every few minutes, so the CPU is nothing
# and every byte saved keeps more meters in one page.
_COMPRESSION_LEVEL = 9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS: dict[type, str] = {Decimal: "d", int: "i", float: "f", str: "s"}
_FROM_KIND: dict[str, Any] = {"d": Decimal, "i": int, "f": float, "s": str}


@dataclass(frozen=True, slots=True)
class MeterRow:
    """What one meter's checkpoint holds."""

    registers: tuple[Register, ...] = ()
    state: bytes | None = None  # the engine's cursor (EngineState JSON)
    # Intervals closed since they were last filed (gateway/store.py's interval log). The log's
    # blobs are rows of this shape too, holding only intervals of one kind.
    profile: tuple[ProfileRow, ...] = field(default=())
    analysis: tuple[AnalysisRow, ...] = field(default=())


class _Wire(msgspec.Struct, array_like=True):
    """The row on disk, before compression: arrays, not objects, so no key is repeated."""

    format: int
    # obis, kind (d/i/f/s), value as text, unit, measured at (µs since the epoch, UTC)
    registers: list[tuple[str, str, str, str | None, int]]
    state: msgspec.Raw  # the engine's own JSON, embedded as it is; null when none
    # start (µs), length (s), flags, {obis: kWh as text}
    profile: list[tuple[int, int, int, dict[str, str]]]
    # start (µs), length (s), {obis: mean}
    analysis: list[tuple[int, int, dict[str, float]]]


def encode_row(row: MeterRow) -> bytes:
    """The compressed bytes stored for a meter."""
    wire = _Wire(
        ROW_FORMAT,
        [
            (reg.obis, _KINDS[type(reg.value)], str(reg.value), reg.unit, _micros(reg.at))
            for reg in row.registers
        ],
        msgspec.Raw(row.state or b"null"),
        [
            (
                _micros(p.start),
                int((p.end - p.start).total_seconds()),
                int(p.flags),
                {k: str(v) for k, v in p.values.items()},
            )
            for p in row.profile
        ],
        [
            (_micros(a.start), int((a.end - a.start).total_seconds()), dict(a.values))
            for a in row.analysis
        ],
    )
    return zlib.compress(msgspec.json.encode(wire), _COMPRESSION_LEVEL)


def decode_row(meter: str, body: bytes) -> MeterRow:
    """A meter's row from its stored bytes; StoreError names the meter when they are bad."""
    try:
        wire = msgspec.json.decode(zlib.decompress(body), type=_Wire)
    except (zlib.error, msgspec.DecodeError) as err:
        raise StoreError(f"the checkpoint of meter {meter} cannot be read: {err}") from err
    if wire.format != ROW_FORMAT:
        raise StoreError(
            f"the checkpoint of meter {meter} has format {wire.format}, this gateway reads"
            f" {ROW_FORMAT}; upgrade meter-gateway"
        )
    registers = tuple(
        Register(obis, _value(kind, text), unit, _time(at))
        for obis, kind, text, unit, at in wire.registers
    )
    profile = tuple(
        ProfileRow(
            _time(start),
            _time(start) + timedelta(seconds=length),
            {k: Decimal(v) for k, v in values.items()},
            ProfileFlag(flags),
        )
        for start, length, flags, values in wire.profile
    )
    analysis = tuple(
        AnalysisRow(_time(start), _time(start) + timedelta(seconds=length), values)
        for start, length, values in wire.analysis
    )
    state = bytes(wire.state)
    return MeterRow(registers, None if state == b"null" else state, profile, analysis)


def _value(kind: str, text: str) -> Value:
    result: Value = _FROM_KIND[kind](text)
    return result


def _micros(at: datetime) -> int:
    # Integer microseconds: exact (what the old text column held), and shorter than ISO text.
    delta = at.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
