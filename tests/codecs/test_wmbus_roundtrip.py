"""Transmitter -> receiver round trips, and mutated real telegrams that must fail cleanly."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.codecs.errors import FrameError
from modules.codecs.mbus.encode import DataRecord
from modules.codecs.wmbus.compact import FormatCache
from modules.codecs.wmbus.telegrams import WmbusDecoder, decode_telegram
from modules.codecs.wmbus.tx import build_telegram, omnipower_records

VECTORS = Path(__file__).parent.parent / "fixtures" / "vectors"

# (VIB, coding) -> (value range, unit, scale from the wire number to the unit)
KINDS: dict[tuple[bytes, Any], tuple[tuple[int, int], str, Decimal]] = {
    (b"\x04", "int32"): ((-(2**31), 2**31 - 1), "kWh", Decimal("0.01")),
    (b"\x84\x3c", "int32"): ((0, 2**31 - 1), "kWh", Decimal("0.01")),
    (b"\x2b", "int32"): ((-(2**31), 2**31 - 1), "W", Decimal(1)),
    (b"\xab\x3c", "int32"): ((0, 2**31 - 1), "W", Decimal(1)),
    (b"\x13", "int32"): ((0, 2**31 - 1), "m³", Decimal("0.001")),
    (b"\x59", "int16"): ((-(2**15), 2**15 - 1), "°C", Decimal("0.01")),
    (b"\x13", "bcd8"): ((0, 10**8 - 1), "m³", Decimal("0.001")),
    (b"\x03", "bcd12"): ((0, 10**12 - 1), "kWh", Decimal("0.001")),
    (b"\x03", "int48"): ((0, 2**40), "kWh", Decimal("0.001")),
}


@st.composite
def data_records(draw: st.DrawFn) -> list[DataRecord]:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=8))
    return [
        DataRecord(
            vib,
            draw(st.integers(*KINDS[(vib, coding)][0])),
            coding,
            storage=draw(st.sampled_from([0, 0, 1, 5])),
            tariff=draw(st.sampled_from([0, 0, 1, 2])),
        )
        for vib, coding in kinds
    ]


def _expected(records: list[DataRecord]) -> list[tuple[Decimal, str]]:
    out = []
    for record in records:
        _, unit, scale = KINDS[(record.vib, record.coding)]
        assert isinstance(record.value, int)
        out.append((Decimal(record.value) * scale, unit))
    return out


def _got(decoder: WmbusDecoder, telegram: bytes, key: bytes | None) -> list[tuple[Decimal, str]]:
    decoded = decoder.decode(telegram, key=key, auth_key=None)
    out = []
    for record in decoded.records:
        assert isinstance(record.value, (int, Decimal)), record
        assert record.unit is not None
        out.append((Decimal(record.value), record.unit))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=data_records(),
    security=st.sampled_from(["none", "ell_aes_ctr", "tpl_mode5"]),
    key=st.binary(min_size=16, max_size=16),
    frame_format=st.sampled_from([None, "A", "B"]),
    access=st.integers(0, 255),
    session=st.integers(0, 2**29 - 1),
)
def test_encrypt_decrypt_decode(
    records: list[DataRecord],
    security: Any,
    key: bytes,
    frame_format: Any,
    access: int,
    session: int,
) -> None:
    options: dict[str, Any] = {
        "security": security,
        "key": key if security != "none" else None,
        "access_number": access,
        "session": session,
        "frame_format": frame_format,
        "meter_id": "76348799",
    }
    decoder = WmbusDecoder(FormatCache(seed=False))
    use_key = key if security != "none" else None
    full = build_telegram(records, **options)
    assert _got(decoder, full, use_key) == _expected(records)
    # The full frame taught the format: the compact frame decodes to the same values.
    compact = build_telegram(records, compact=True, **options)
    assert _got(decoder, compact, use_key) == _expected(records)


@settings(max_examples=30, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), other=st.binary(min_size=16, max_size=16))
def test_any_other_key_is_a_wrong_key(key: bytes, other: bytes) -> None:
    if key == other:
        return
    telegram = build_telegram(omnipower_records(7940, 0, 3, 0), key=key, compact=True)
    try:
        decode_telegram(telegram, key=other, cache=FormatCache())
    except FrameError as err:
        assert err.code == "wrong_key"
    else:
        raise AssertionError("a wrong key decoded")


def _real_telegrams() -> list[tuple[bytes, bytes | None]]:
    frames: list[tuple[bytes, bytes | None]] = []
    for name in ("wmbus.json", "wmbus_kamstrup_reencrypted.json"):
        items: list[dict[str, Any]] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
        for item in items:
            if item.get("frame_type", "wmbus") != "wmbus":
                continue
            key = bytes.fromhex(item["key"]) if item.get("key") else None
            frames.append((bytes.fromhex(item["hex"]), key))
    key = bytes(range(16))
    built = build_telegram(omnipower_records(123450, 10, 500, 0), key=key, frame_format="A")
    frames.append((built, key))
    return frames


REAL = _real_telegrams()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    frame, key = draw(st.sampled_from(REAL))
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at]
        else:
            data[0] = draw(st.integers(0, 255))
    return bytes(data), key


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated(), with_key=st.booleans())
def test_mutated_telegrams_raise_only_frame_errors(
    case: tuple[bytes, bytes | None], with_key: bool
) -> None:
    frame, key = case
    try:
        decode_telegram(frame, key=key if with_key else None, cache=FormatCache())
    except FrameError as err:
        assert err.code
