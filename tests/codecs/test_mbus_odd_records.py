"""One odd record never costs the telegram: the records before it stay, the rest is kept raw."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from modules.codecs.errors import FrameError, IncompleteFrame, UnknownFormat
from modules.codecs.mbus import frames as mbus
from modules.codecs.mbus.encode import encode_long_header, encode_records, obis_record
from modules.codecs.mbus.frames import MbusDecoder
from modules.codecs.mbus.records import decode_records
from modules.codecs.wmbus import decode_telegram

LINK_HEADER = 7  # 68 L L 68 C A CI before the TPL header
HEADER = encode_long_header("14839120", "KAM", 1, 2, access_number=7)
GOOD = encode_records(
    [obis_record("1-0:1.8.0", Decimal("1234.56")), obis_record("1-0:32.7.0", 231.4)]
)


def telegram(records: bytes) -> bytes:
    return mbus.rsp_ud(120, mbus.CI_VARIABLE, HEADER + records)


@pytest.mark.parametrize("reserved_dif", [0x3F, 0x4F, 0x5F, 0x6F])
def test_a_reserved_dif_keeps_every_record_before_it(reserved_dif: int) -> None:
    tail = bytes([reserved_dif, 0x13, 0x37, 0x00])
    result = MbusDecoder().decode(telegram(GOOD + b"\x2f" + tail))
    good = [(r.obis, r.value) for r in result.records if r.name != "undecoded"]
    assert good == [("1-0:1.8.0", Decimal("1234.56")), ("1-0:32.7.0", Decimal("231.4"))]
    undecoded = [r for r in result.records if r.name == "undecoded"]
    assert len(undecoded) == 1
    # The fill byte before it belongs to the undecoded rest; the offset is where it starts.
    assert undecoded[0].value == ("2F" + tail.hex()).upper()
    start = LINK_HEADER + len(HEADER) + len(GOOD)
    assert undecoded[0].raw["offset"] == start
    assert f"0x{reserved_dif:02x}" in undecoded[0].raw["reason"]
    assert result.frame["warnings"] == [
        f"records from byte {start} on were kept raw: " + undecoded[0].raw["reason"]
    ]


def test_fill_bytes_between_records_are_skipped_without_a_warning() -> None:
    first_record = 10  # DIF 07 (64-bit integer), VIF 04, eight data bytes
    records = GOOD[:first_record] + b"\x2f\x2f" + GOOD[first_record:]
    result = MbusDecoder().decode(telegram(records))
    assert [r.obis for r in result.records] == ["1-0:1.8.0", "1-0:32.7.0"]
    assert "warnings" not in result.frame


def test_a_reserved_dif_first_is_still_an_error_with_its_offset() -> None:
    with pytest.raises(UnknownFormat) as caught:
        decode_records(b"\x3f\x01\x02", offset=19, keep_going=True)
    assert (caught.value.code, caught.value.offset) == ("bad_frame", 19)


def test_without_keep_going_the_reserved_dif_fails_as_before() -> None:
    with pytest.raises(FrameError):
        decode_records(GOOD + b"\x3f\x01", keep_going=False)


def test_a_record_that_runs_past_the_end_is_a_corrupted_frame_not_an_odd_record() -> None:
    # 0x04 = 32-bit integer, but only two data bytes follow: structural damage, refused.
    with pytest.raises(IncompleteFrame):
        decode_records(GOOD + b"\x04\x03\x01\x02", keep_going=True)


def _bfw_vectors() -> list[dict[str, object]]:
    path = Path(__file__).resolve().parents[1] / "fixtures" / "vectors" / "wmbus_all.json"
    return [v for v in json.loads(path.read_text()) if v.get("driver") == "bfw240radio"]


def test_three_bfw_telegrams_end_in_a_damaged_record() -> None:
    tails = [
        any(r.name == "undecoded" for r in decode_telegram(bytes.fromhex(str(v["hex"]))).records)
        for v in _bfw_vectors()
    ]
    assert sum(tails) == 3


@pytest.mark.parametrize("vector", _bfw_vectors(), ids=lambda v: str(v["source"]).split(":")[-1])
def test_a_wireless_telegram_with_a_damaged_record_keeps_its_header_and_good_records(
    vector: dict[str, object],
) -> None:
    decoded = decode_telegram(bytes.fromhex(str(vector["hex"])))
    assert decoded.meter["id"] == vector["id"]
    assert decoded.meter["manufacturer"] == "BFW"
    undecoded = [r for r in decoded.records if r.name == "undecoded"]
    if undecoded:  # the telegrams whose records all decode carry no warning
        [rest] = undecoded
        assert decoded.frame["warnings"] == [
            f"records from byte {rest.raw['offset']} on were kept raw: {rest.raw['reason']}"
        ]
