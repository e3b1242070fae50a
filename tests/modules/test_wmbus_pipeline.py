"""Routing telegrams (duplicates, addresses, keys), readings, and the wmbus config with keys."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from gateway import config
from gateway.errors import ConfigError
from modules.codecs.mbus.encode import DataRecord
from modules.codecs.records import Decoded, Record
from modules.codecs.wmbus.tx import build_telegram, omnipower_records
from modules.wmbus.config import WmbusConfig, WmbusMeterConfig
from modules.wmbus.kem import encrypt_kem, kem_keys
from modules.wmbus.pipeline import MeterEntry, Outcome, Router, meter_time, readings
from modules.wmbus.receivers import DllCrcs, Heard
from modules.wmbus.receivers.cul import _with_crcs_a
from tests.support.processes import ROOT

VECTORS = ROOT / "tests" / "fixtures" / "vectors"
KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def vectors(name: str) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return loaded


def route(router: Router, telegram: bytes, now: float = 0.0, crcs: DllCrcs = "auto") -> Outcome:
    return router.route(Heard(telegram, dll_crcs=crcs), now=now, at=AT)


def test_reencrypted_kamstrup_vectors_decode_with_their_key() -> None:
    items = vectors("wmbus_kamstrup_reencrypted.json")
    router = Router([MeterEntry(str(v["id"]), "m", KEY) for v in items if v["id"] != "54084283"])
    decoded = 0
    for index, item in enumerate(items):
        if item["id"] == "54084283":
            continue
        outcome = route(router, bytes.fromhex(str(item["hex"])), now=index * 100.0)
        assert outcome.kind == "decoded", (item["id"], outcome.error)
        decoded += 1
    assert decoded == 22
    omnipower = items[0]
    outcome = route(
        Router([MeterEntry("32666857", "main", KEY)]), bytes.fromhex(str(omnipower["hex"]))
    )
    assert outcome.decoded is not None
    values = {r.obis: r.value for r in readings(outcome.decoded)}
    expected = omnipower["expected"]
    assert isinstance(expected, dict)
    assert values["1-0:1.8.0"] == Decimal(str(expected["total_energy_consumption_kwh"]))
    assert values["1-0:2.8.0"] == expected["total_energy_production_kwh"]
    assert values["1-0:1.7.0"] == round(expected["current_power_consumption_kw"] * 1000)
    assert values["1-0:2.7.0"] == round(expected["current_power_production_kw"] * 1000)


def test_the_wrong_key_fails_and_an_unknown_address_is_not_decoded() -> None:
    telegram = build_telegram(omnipower_records(794_0, 0, 3, 0), meter_id="32666857", key=KEY)
    wrong = Router([MeterEntry("32666857", "main", bytes(16))])
    outcome = route(wrong, telegram)
    assert outcome.kind == "failed" and outcome.error and outcome.error.code == "wrong_key"
    stranger = Router([MeterEntry("11111111", "main", KEY)])
    outcome = route(stranger, telegram)
    assert outcome.kind == "unknown" and outcome.decoded is None
    row = stranger.heard["KAM 32666857"]
    assert (row.meter, row.telegrams, row.medium) == (None, 1, "electricity")
    listen = Router([], decode_unknown=True)
    error = route(listen, telegram).error
    assert error is not None and error.code == "no_key"
    plain = build_telegram(omnipower_records(10, 0, 3, 0), meter_id="32666857", security="none")
    assert route(listen, plain).decoded is not None


def test_duplicates_within_the_window_whatever_the_receiver_kept() -> None:
    telegram = build_telegram(omnipower_records(100, 0, 3, 0), meter_id="32666857", key=KEY)
    router = Router([MeterEntry("32666857", "main", KEY)], duplicate_window_s=10.0)
    assert route(router, telegram, now=0.0).kind == "decoded"
    # the same telegram from a CUL (format A with DLL CRCs) one second later
    assert route(router, _with_crcs_a(telegram), now=1.0, crcs="A").kind == "duplicate"
    assert route(router, telegram, now=9.9).kind == "duplicate"
    assert route(router, telegram, now=10.5).kind == "decoded"
    row = router.heard["KAM 32666857"]
    assert (row.telegrams, row.duplicates) == (2, 2)
    restored = Router([])
    restored.restore_heard(router.heard_json())
    assert restored.heard["KAM 32666857"].duplicates == 2
    restored.restore_heard(b"not json")  # ignored


def test_manufacturer_filter_and_long_tpl_header_address() -> None:
    telegram = build_telegram(omnipower_records(100, 0, 3, 0), meter_id="32666857", key=KEY)
    assert (
        route(Router([MeterEntry("32666857", "m", KEY, manufacturer="ABB")]), telegram).kind
        == "unknown"
    )
    assert (
        route(
            Router([MeterEntry("32666857", "m", KEY, version=0x30, device_type=2)]), telegram
        ).kind
        == "decoded"
    )
    (elf,) = [
        v for v in vectors("wmbus_all.json") if v["driver"] == "elf" and v["id"] == "01885619"
    ][:1]
    # The radio module's DLL address is 00050901; the meter's own is in the long TPL header.
    outcome = route(Router([MeterEntry("01885619", "heat")]), bytes.fromhex(str(elf["hex"])))
    assert outcome.kind == "decoded", outcome.error
    assert outcome.decoded is not None and outcome.decoded.meter["id"] == "01885619"


def test_compact_frames_learned_from_a_full_frame_are_flagged_for_saving() -> None:
    records = [*omnipower_records(100, 0, 3, 0), DataRecord(b"\xfd\xc8\xfc\x01", 2301)]
    router = Router([MeterEntry("12345678", "m", KEY)])
    compact = build_telegram(records, key=KEY, compact=True, access_number=2)
    error = route(router, compact, now=0).error
    assert error is not None and error.code == "unknown_compact_format"
    full = route(router, build_telegram(records, key=KEY, access_number=1), now=1)
    assert full.learned
    again = route(router, compact, now=20)
    assert again.kind == "decoded" and not again.learned
    assert again.decoded is not None
    values = {r.obis: r.value for r in readings(again.decoded)}
    assert values["1-0:32.7.0"] == Decimal("230.1")


def test_readings_keep_present_values_only() -> None:
    decoded = Decoded(
        "wmbus",
        records=[
            Record("energy_import", Decimal("1.5"), "kWh", "1-0:1.8.0"),
            Record("energy_import", Decimal("1.2"), "kWh", None, storage=1),
            Record("volume", Decimal("12.345"), "m³"),
            Record("volume", Decimal("12.0"), "m³", tariff=1),
            Record("flow", Decimal("1.0"), "m³/h", function="maximum"),
            Record("status", None),
        ],
    )
    assert readings(decoded) == (
        readings_of("1-0:1.8.0", Decimal("1.5"), "kWh")
        + readings_of("volume", Decimal("12.345"), "m³")
        + readings_of("volume_t1", Decimal("12.0"), "m³")
    )


def readings_of(code: str, value: Decimal, unit: str) -> tuple[object, ...]:
    from gateway.model import Reading  # noqa: PLC0415

    return (Reading(code, value, unit),)


def test_meter_time_when_plausible() -> None:
    zone = ZoneInfo("Europe/Copenhagen")
    received = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)
    near = Decoded("wmbus", records=[Record("datetime", "2024-05-01T12:00", None)])
    assert meter_time(near, zone, received) == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    wrong_clock = Decoded("wmbus", records=[Record("datetime", "2000-01-01T00:00", None)])
    assert meter_time(wrong_clock, zone, received) == received
    assert meter_time(Decoded("wmbus"), zone, received) == received


def module(**meter: object) -> WmbusConfig:
    raw = {"type": "wmbus", "name": "w", "device": "stdin", "receiver": "hex", "meter": "main"}
    return msgspec.convert({**raw, "meters": [{"id": "12345678", **meter}]}, WmbusConfig)


def test_keys_from_the_config_a_file_and_a_kem_file(tmp_path: Path) -> None:
    assert module(key="00112233 44556677 8899AABB CCDDEEFF").entries()[0].key == KEY
    key_file = tmp_path / "meter.key"
    key_file.write_text(KEY.hex() + "\n")
    assert module(key_file=str(key_file)).entries()[0].key == KEY
    inner = (
        "<MetersInOrder><Meter><MeterName>OMNIPOWER</MeterName><SerialNo>12345678</SerialNo>"
        f"<DEK>{KEY.hex().upper()}</DEK></Meter><Meter><SerialNo>99999999</SerialNo>"
        "<DEK>FFEEDDCCBBAA99887766554433221100</DEK></Meter></MetersInOrder>"
    )
    kem = tmp_path / "delivery.kem"
    kem.write_bytes(encrypt_kem(inner, "CUSTOMER1234"))
    assert module(kem_file=str(kem), kem_password="CUSTOMER1234").entries()[0].key == KEY
    # zipped, with the other layout and the password in a file
    devices = (
        "<Devices><Device><SerialNumber>12345678</SerialNumber><DeviceKeys><Key>"
        f"<Value>{KEY.hex()}</Value></Key></DeviceKeys></Device></Devices>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "keys inside")
        archive.writestr("order.kem2", encrypt_kem(devices, "pw"))
    zipped = tmp_path / "order.zip"
    zipped.write_bytes(buffer.getvalue())
    password = tmp_path / "kem.password"
    password.write_text("pw\n")
    entry = module(kem_file=str(zipped), kem_password_file=str(password)).entries()[0]
    assert entry.key == KEY
    assert KEY.hex() not in repr(entry) and "key=" not in repr(entry)
    assert kem_keys(str(kem), "CUSTOMER1234") == {
        "12345678": KEY.hex().upper(),
        "99999999": "FFEEDDCCBBAA99887766554433221100",
    }
    with pytest.raises(ConfigError, match=r"wrong \.kem password"):
        kem_keys(str(kem), "guess")
    raw = {"type": "wmbus", "name": "w", "device": "stdin", "receiver": "hex", "meter": "m"}
    meters = [{"id": "55555555", "kem_file": str(kem), "kem_password": "CUSTOMER1234"}]
    missing = msgspec.convert({**raw, "meters": meters}, WmbusConfig)
    with pytest.raises(ConfigError, match=r"meters\[0\].*has no key for meter 55555555"):
        missing.entries()


@pytest.mark.parametrize(
    ("meter", "words"),
    [
        ({"id": "1234"}, "not 8 digits"),
        ({"id": "12345678", "key": "0011"}, "4 hex digits"),
        ({"id": "12345678", "key": "zz" * 16}, "not hex"),
        ({"id": "12345678", "key": KEY.hex(), "key_file": "/x"}, "one of key"),
        ({"id": "12345678", "kem_file": "/x"}, "kem_password"),
        ({"id": "12345678", "manufacturer": "kam"}, "three capitals"),
        ({"id": "12345678", "version": 300}, "one byte"),
    ],
)
def test_bad_meter_entries_name_the_problem(meter: dict[str, object], words: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=words):
        msgspec.convert(meter, WmbusMeterConfig)


def test_config_errors_have_paths(tmp_path: Path) -> None:
    base = (
        '[[meters]]\nid = "main"\n[[modules]]\ntype = "wmbus"\nname = "w"\n'
        'device = "/dev/ttyUSB0"\nreceiver = "cul"\n'
    )
    with pytest.raises(ConfigError, match=r"modules\[0\].*cannot listen to S1\+T1"):
        config.loads(base + 'modes = ["S1", "T1"]\n')
    with pytest.raises(ConfigError, match=r"say which gateway meter"):
        config.loads(base + '[[modules.meters]]\nid = "12345678"\n')
    with pytest.raises(ConfigError, match=r"meter 'nowhere' is not defined"):
        config.loads(base + '[[modules.meters]]\nid = "12345678"\nmeter = "nowhere"\n')
    settings = config.loads(base + 'meter = "main"\n[[modules.meters]]\nid = "12345678"\n')
    (wmbus,) = settings.modules
    assert isinstance(wmbus, WmbusConfig) and wmbus.meters_fed() == ("main",)


def test_the_example_uses_every_key() -> None:
    text = (ROOT / "conf" / "examples" / "wmbus.toml").read_text()
    for struct in (WmbusConfig, WmbusMeterConfig):
        for field in msgspec.structs.fields(struct):
            name = field.encode_name
            assert f"\n{name} =" in text or f".{name}]" in text, f"{name} is not in the example"
    settings = config.load(ROOT / "conf" / "examples" / "wmbus.toml")
    (wmbus,) = settings.modules
    assert isinstance(wmbus, WmbusConfig)
    assert set(wmbus.meters_fed()) == {"main", "water"}
