"""Value-only push lists: placed by a known layout named by the list's header, the meter or the
length and types, and still decoded (``layout: unknown``, raw positions) when none fits.

Lists are built from the layouts' public descriptions (the order and types of each position);
the numbers are ours."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal

from modules.codecs.dlms.apdu import encode_data_notification
from modules.codecs.dlms.axdr import (
    DOUBLE_LONG_UNSIGNED,
    ENUM,
    INTEGER,
    LONG_UNSIGNED,
    OCTET_STRING,
    STRUCTURE,
    Data,
)
from modules.codecs.dlms.decode import DlmsDecoder
from modules.codecs.dlms.lists import ListResult, interpret
from modules.codecs.records import Record
from tests.support.processes import GATEWAY


def _text(value: str) -> Data:
    return Data(OCTET_STRING, value.encode())


def _u32(value: int) -> Data:
    return Data(DOUBLE_LONG_UNSIGNED, value)


def _u16(value: int) -> Data:
    return Data(LONG_UNSIGNED, value)


def _values(*items: Data) -> Data:
    return Data(STRUCTURE, items)


def _by_obis(result: ListResult) -> dict[str, Record]:
    return {r.obis.split("*")[0]: r for r in result.records if r.obis}


def _kaifa_list2_3phase(list_id: str = "KFM_001") -> Data:
    return _values(
        _text(list_id),
        _text("6970631401234567"),
        _text("MA304H3E"),
        _u32(1850),  # P+ W
        _u32(0),
        _u32(120),
        _u32(0),
        _u32(3120),  # I1 mA
        _u32(2890),
        _u32(2100),
        _u32(2301),  # U1 0.1 V
        _u32(2298),
        _u32(2310),
    )


def test_kaifa_list_is_named_by_its_list_identifier() -> None:
    result = interpret(_kaifa_list2_3phase())
    assert result.layout == "kaifa-list2-3phase"
    assert result.placement is not None
    assert result.placement["identified_by"] == "list identifier"
    assert result.placement["header"] == "KFM_001"
    values = _by_obis(result)
    assert values["1-0:1.7.0"].value == 1850 and values["1-0:1.7.0"].unit == "W"
    assert values["1-0:31.7.0"].value == Decimal("3.120") and values["1-0:31.7.0"].unit == "A"
    assert values["1-0:32.7.0"].value == Decimal("230.1") and values["1-0:32.7.0"].unit == "V"
    assert result.meter["id"] == "6970631401234567"


def _iskra_1phase_export(header: str) -> Data:
    # Single-phase prosumer list: device name, meter id, P+ P- Q+ Q-, U1, A- T1, A- T2.
    return _values(
        _text(header),
        _text("85236301"),
        _u32(410),
        _u32(0),
        _u32(33),
        _u32(0),
        _u16(2327),
        _u32(1_234_567),
        _u32(765_432),
    )


def test_iskra_list_is_named_by_the_meter_device_name() -> None:
    result = interpret(_iskra_1phase_export("ISK1030775213859"))
    assert result.layout == "iskra-1phase-export"
    assert result.placement is not None and result.placement["identified_by"] == "meter id"
    values = _by_obis(result)
    assert values["1-0:32.7.0"].value == Decimal("232.7")
    assert values["1-0:2.8.1"].value == Decimal("1234.567")
    assert values["1-0:2.8.1"].unit == "kWh"
    assert result.vendor == "Iskra"


def test_a_header_naming_a_family_is_not_placed_by_another_family() -> None:
    # Kaifa's identifier over a list that has the length and types of Iskra's 1-phase list.
    result = interpret(_iskra_1phase_export("KFM_001"))
    assert result.layout == "unknown"
    assert result.placement is not None and result.placement["vendor"] == "Kaifa"


def _burgenland() -> Data:
    return _values(
        _u16(2301),
        _u16(2310),
        _u16(2295),
        _u16(312),
        _u16(289),
        _u16(210),
        _u32(1850),
        _u32(0),
        _u32(4_567_890),
        _u32(123_456),
        _u16(0),
        _u16(0),
        _u16(0),
        _text("1LGZ0012345678"),
    )


def test_a_list_without_header_is_named_by_the_system_title_or_its_shape() -> None:
    by_title = interpret(_burgenland(), system_title=bytes.fromhex("4C475A6772A9A111"))
    assert by_title.layout == "lgz-at-burgenland"
    assert by_title.placement is not None
    assert by_title.placement["identified_by"] == "system title"
    assert by_title.placement["unnamed_positions"] == [10, 11, 12]
    by_shape = interpret(_burgenland())
    assert by_shape.layout == "lgz-at-burgenland"
    assert by_shape.placement is not None
    assert by_shape.placement["identified_by"] == "length and types"
    assert _by_obis(by_shape)["1-0:1.8.0"].value == Decimal("4567.890")
    # Another meter's system title: the shape alone does not make it an L+G list.
    other = interpret(_burgenland(), system_title=bytes.fromhex("4B464D0000000001"))
    assert other.layout == "unknown"


def test_iskra_am550_full_list_of_33_values() -> None:
    lead = [_u32(1), _text("x"), _u16(3), _u32(4)]  # undocumented: kept, unnamed
    energies = [_u32(n * 1000) for n in range(1, 11)]  # 1.8.0..2.8.2, 5.8.0..8.8.0
    powers = [_u32(1500), _u32(0), _u32(987)]  # P+, P-, PF in 0.001
    phase_powers = [_u32(500), _u32(600), _u32(400), _u32(0), _u32(0), _u32(0)]
    volts = [_u16(2301), _u16(2299), _u16(2310)]
    amps = [_u16(230), _u16(260), _u16(180)]
    tail = [_u16(0), _u16(0), _u32(0), _u32(0)]
    body = _values(*lead, *energies, *powers, *phase_powers, *volts, *amps, *tail)
    result = interpret(body, system_title=b"ISK\x00\x01\x02\x03\x04")
    assert result.layout == "iskra-am550-full"
    values = _by_obis(result)
    assert values["1-0:1.8.0"].value == 1 and values["1-0:1.8.0"].unit == "kWh"
    assert values["1-0:13.7.0"].value == Decimal("0.987")
    assert values["1-0:71.7.0"].value == Decimal("1.80")
    unnamed = [r for r in result.records if r.obis is None]
    assert [r.raw["position"] for r in unnamed] == [0, 1, 2, 3, 29, 30, 31, 32]


def test_unknown_value_list_decodes_with_raw_positions_on_the_command_line() -> None:
    body = _values(_text("XYZ_LIST7"), _u32(1234), _u16(230), Data(0x10, -5))
    done = subprocess.run(
        [str(GATEWAY), "decode", "dlms", encode_data_notification(body).hex()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert result["frame"]["list_layout"] == "unknown"
    assert result["frame"]["layout"] == {
        "name": "unknown",
        "vendor": None,
        "positions": 4,
        "types": ["str", "u32", "u16", "i16"],
        "header": "XYZ_LIST7",
    }
    records = result["records"]
    assert [r["raw"]["position"] for r in records] == [0, 1, 2, 3]
    assert [r["value"] for r in records] == ["XYZ_LIST7", 1234, 230, -5]
    assert all(r["obis"] is None and r["unit"] is None for r in records)


def test_austrian_customer_interface_list_names_its_values() -> None:
    # TINETZ / Salzburg Netz data model: each value with its OBIS code and scaler-unit, so no
    # positional layout is needed (clock, meter number, device name, U, I, P, energies).
    def entry(obis: bytes, value: Data, scaler: int, unit: int) -> list[Data]:
        return [
            Data(OCTET_STRING, obis),
            value,
            _values(Data(INTEGER, scaler), Data(ENUM, unit)),
        ]

    body = _values(
        Data(OCTET_STRING, bytes([0, 0, 1, 0, 0, 255])),
        Data(OCTET_STRING, bytes.fromhex("07E90C0405100000FF800000")),
        Data(OCTET_STRING, bytes([0, 0, 96, 1, 0, 255])),
        _text("1KFM1234567890"),
        Data(OCTET_STRING, bytes([0, 0, 42, 0, 0, 255])),
        _text("KFM1234567890123"),
        *entry(bytes([1, 0, 32, 7, 0, 255]), _u16(2312), -1, 35),
        *entry(bytes([1, 0, 31, 7, 0, 255]), _u16(154), -2, 33),
        *entry(bytes([1, 0, 1, 7, 0, 255]), _u32(356), 0, 27),
        *entry(bytes([1, 0, 1, 8, 0, 255]), _u32(7_654_321), 0, 30),
    )
    decoded = DlmsDecoder().decode(encode_data_notification(body), key=None, auth_key=None)
    assert decoded.frame["list_layout"] == "obis-pairs"
    assert "layout" not in decoded.frame
    values = {r.obis.split("*")[0]: r for r in decoded.records if r.obis}
    assert values["1-0:32.7.0"].value == Decimal("231.2")
    assert values["1-0:31.7.0"].value == Decimal("1.54")
    assert values["1-0:1.8.0"].value == Decimal("7654.321") and values["1-0:1.8.0"].unit == "kWh"
    assert decoded.meter["id"] == "1KFM1234567890"
