"""One meter's checkpoint as one compact row: registers, engine state and the newest profile and
analysis intervals, JSON compressed with zlib and a preset dictionary.

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
# zlib's preset dictionary: the row of a three-phase 382L with every feature on, every value
# blanked (zeros, one date), so a row's register names, units and engine-state keys compress to
# back-references from its first byte instead of being spelled out once in every row (a bench
# meter's row: 1,049 -> about 620 bytes, so ten meters' rows take two pages instead of four).
# Never edit it: a row names its dictionary by Adler-32 (zlib's FDICT header), and one written
# with a dictionary this gateway no longer has could not be read. A better one is added beside
# it in _DICTIONARIES and used from then on. Rows without one (older gateways') read as before.
_DICTIONARY_V1 = (
    b'[0,[["1-0:1.7.0","d","0","W",0],["1-0:2.7.0","d","0","W",0],["1-0:3.7.0","d","0",'
    b'"var",0],["1-0:4.7.0","d","0","var",0],["1-0:14.7.0","d","0","Hz",0],["1-0:13.7.0",'
    b'"d","0",null,0],["1-0:21.7.0","d","0","W",0],["1-0:22.7.0","d","0","W",0],'
    b'["1-0:32.7.0","d","0","V",0],["1-0:31.7.0","d","0","A",0],["1-0:41.7.0","d","0","W",'
    b'0],["1-0:42.7.0","d","0","W",0],["1-0:52.7.0","d","0","V",0],["1-0:51.7.0","d","0",'
    b'"A",0],["1-0:61.7.0","d","0","W",0],["1-0:62.7.0","d","0","W",0],["1-0:72.7.0","d",'
    b'"0","V",0],["1-0:71.7.0","d","0","A",0],["1-0:1.8.1","d","0","kWh",0],["1-0:1.8.2",'
    b'"d","0","kWh",0],["1-0:1.8.3","d","0","kWh",0],["1-0:1.8.4","d","0","kWh",0],'
    b'["1-0:3.8.1","d","0","kvarh",0],["1-0:3.8.2","d","0","kvarh",0],["1-0:3.8.3","d","0",'
    b'"kvarh",0],["1-0:3.8.4","d","0","kvarh",0],["1-0:1.8.0","d","0","kWh",0],["1-0:2.8.0",'
    b'"d","0","kWh",0],["1-0:3.8.0","d","0","kvarh",0],["1-0:4.8.0","d","0","kvarh",0],'
    b'["quadrant","i","0",null,0],["0-0:96.14.0","i","0",null,0],["breaker_state","s",'
    b'"connected",null,0],["breaker_actuator","s","confirmed",null,0],["credit","d","0",'
    b'"kWh",0],["0-0:96.8.0","d","0","h",0],["1-0:1.6.0","d","0","W",0],["1-0:1.6.1","d",'
    b'"0","W",0],["1-0:1.6.2","d","0","W",0]],{"last_at":"2026-01-01T00:00:00Z",'
    b'"last":{"1-0:1.8.1":"0","1-0:1.8.2":"0","1-0:1.8.3":"0","1-0:1.8.4":"0",'
    b'"1-0:3.8.1":"0","1-0:3.8.2":"0","1-0:3.8.3":"0","1-0:3.8.4":"0","1-0:1.8.0":"0",'
    b'"1-0:2.8.0":"0","1-0:3.8.0":"0","1-0:4.8.0":"0","0-0:96.8.0":"0"},'
    b'"demand_start":"2026-01-01T00:00:00Z","demand_energy":"0","demand_tariff":0,'
    b'"profile_start":"2026-01-01T00:00:00Z","profile_values":{"1-0:1.8.0":"0",'
    b'"1-0:2.8.0":"0","1-0:3.8.0":"0","1-0:4.8.0":"0"},"profile_flags":0,'
    b'"analysis_start":"2026-01-01T00:00:00Z","analysis_sums":{"1-0:32.7.0":0,'
    b'"1-0:52.7.0":0,"1-0:72.7.0":0,"1-0:31.7.0":0,"1-0:51.7.0":0,"1-0:71.7.0":0,'
    b'"1-0:21.7.0":0,"1-0:41.7.0":0,"1-0:61.7.0":0,"1-0:22.7.0":0,"1-0:42.7.0":0,'
    b'"1-0:62.7.0":0,"1-0:14.7.0":0,"1-0:13.7.0":0},"analysis_counts":{"1-0:32.7.0":0,'
    b'"1-0:52.7.0":0,"1-0:72.7.0":0,"1-0:31.7.0":0,"1-0:51.7.0":0,"1-0:71.7.0":0,'
    b'"1-0:21.7.0":0,"1-0:41.7.0":0,"1-0:61.7.0":0,"1-0:22.7.0":0,"1-0:42.7.0":0,'
    b'"1-0:62.7.0":0,"1-0:14.7.0":0,"1-0:13.7.0":0},"next_debiting":"2026-01-01T00:00:00Z",'
    b'"external_tariff":null,"operating_s":0,"rejecting":{},"rebase":false,'
    b'"display_mode":"auto","display_index":0,"display_last_push":null,"display_lists":{},'
    b'"breaker":{"state":"connected","causes":[],"actuator":"confirmed","target":null,'
    b'"pending_since":null,"over_limit_since":null,"under_limit_since":null},'
    b'"prepayment":{"balance":"0","emergency_in_use":false,"exhausted":false,"warned":[],'
    b'"last_sequence":0,"recent_ids":[],"charged_through":null,"deferred":false},'
    b'"limit_overrides":{}},[],[]]'
)
_DICTIONARIES = {zlib.adler32(_DICTIONARY_V1): _DICTIONARY_V1}
_DICTIONARY = _DICTIONARY_V1  # the one new rows are written with
# zlib's header: its second byte's FDICT bit says a preset dictionary's Adler-32 follows in the
# next four.
_FLAGS_AT, _FDICT, _DICTID = 1, 0x20, slice(2, 6)
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
    packer = zlib.compressobj(_COMPRESSION_LEVEL, zdict=_DICTIONARY)
    return packer.compress(msgspec.json.encode(wire)) + packer.flush()


def decode_row(meter: str, body: bytes) -> MeterRow:
    """A meter's row from its stored bytes; StoreError names the meter when they are bad."""
    try:
        wire = msgspec.json.decode(_inflate(meter, body), type=_Wire)
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


def _inflate(meter: str, body: bytes) -> bytes:
    """A row's JSON, with the preset dictionary its zlib header names (or none)."""
    if len(body) <= _FLAGS_AT or not body[_FLAGS_AT] & _FDICT:
        return zlib.decompress(body)
    dictionary = _DICTIONARIES.get(int.from_bytes(body[_DICTID], "big"))
    if dictionary is None:
        raise StoreError(
            f"the checkpoint of meter {meter} was compressed with a dictionary this gateway does"
            " not have; upgrade meter-gateway"
        )
    unpacker = zlib.decompressobj(zdict=dictionary)
    text = unpacker.decompress(body) + unpacker.flush()
    if not unpacker.eof:
        raise zlib.error("the compressed row is cut short")
    return text


def _value(kind: str, text: str) -> Value:
    result: Value = _FROM_KIND[kind](text)
    return result


def _micros(at: datetime) -> int:
    # Integer microseconds: exact (what the old text column held), and shorter than ISO text.
    delta = at.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
