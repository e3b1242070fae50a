"""Wireless M-Bus decoding against the wmbusmeters vectors, plus the error contract."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modules.codecs.errors import ChecksumError, DecryptionError, FrameError, IncompleteFrame
from modules.codecs.mbus.encode import DataRecord
from modules.codecs.records import Decoded, Record
from modules.codecs.wmbus import tx as wmbus_tx
from modules.codecs.wmbus.compact import KNOWN_FORMATS, FormatCache, format_signature
from modules.codecs.wmbus.telegrams import WmbusDecoder, decode_telegram

VECTORS = Path(__file__).parent.parent / "fixtures" / "vectors"
REENCRYPTED_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")

# Our unit -> (family, factor to the family's base unit).
OUR_UNITS: dict[str, tuple[str, float]] = {
    "Wh": ("energy", 1),
    "kWh": ("energy", 1e3),
    "MWh": ("energy", 1e6),
    "MJ": ("energy", 1e6 / 3600),
    "GJ": ("energy", 1e9 / 3600),
    "Mcal": ("energy", 4186.8e3 / 3600),
    "varh": ("reactive_energy", 1),
    "kvarh": ("reactive_energy", 1e3),
    "VAh": ("apparent_energy", 1),
    "kVAh": ("apparent_energy", 1e3),
    "W": ("power", 1),
    "kW": ("power", 1e3),
    "MJ/h": ("power", 1e6 / 3600),
    "var": ("reactive_power", 1),
    "kvar": ("reactive_power", 1e3),
    "VA": ("apparent_power", 1),
    "kVA": ("apparent_power", 1e3),
    "m³": ("volume", 1),
    "L": ("volume", 1e-3),
    "m³/h": ("flow", 1),
    "°C": ("temperature", 1),
    "K": ("temperature_difference", 1),
    "V": ("voltage", 1),
    "A": ("current", 1),
    "Hz": ("frequency", 1),
    "bar": ("pressure", 1),
    "s": ("time", 1),
    "min": ("time", 60),
    "h": ("time", 3600),
    "d": ("time", 86400),
    "m³·°C": ("volume_temperature", 1),
}
# wmbusmeters field suffix -> (family, factor to the base unit).
THEIR_SUFFIXES: dict[str, tuple[str, float]] = {
    "kwh": ("energy", 1e3),
    "mwh": ("energy", 1e6),
    "wh": ("energy", 1),
    "gj": ("energy", 1e9 / 3600),
    "mj": ("energy", 1e6 / 3600),
    "kvarh": ("reactive_energy", 1e3),
    "kvah": ("apparent_energy", 1e3),
    "kw": ("power", 1e3),
    "w": ("power", 1),
    "m3": ("volume", 1),
    "l": ("volume", 1e-3),
    "m3h": ("flow", 1),
    "lh": ("flow", 1e-3),
    "m3c": ("volume_temperature", 1),
    "c": ("temperature", 1),
    "k": ("temperature_difference", 1),
    "v": ("voltage", 1),
    "a": ("current", 1),
    "hz": ("frequency", 1),
    "bar": ("pressure", 1),
    "s": ("time", 1),
    "h": ("time", 3600),
    "d": ("time", 86400),
}
# Values wmbusmeters' drivers compute or read from proprietary payloads, not the telegram's
# standard records: (source fragment, field or "*").
NOT_IN_STANDARD_RECORDS = {
    ("izarv2.xmq", "*"),  # Diehl PRIOS (CI 0xA2): proprietary scrambled payload
    ("apator162.xmq", "*"),  # values inside a manufacturer-specific 0x0F block
    ("ebzwmbe.xmq:70", "current_power_consumption_kw"),  # the driver sums the phases
    ("em24.xmq", "total_apparent_energy_consumption_kvah"),  # driver copies A+ here
}


def _items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return items


def _wireless(name: str) -> list[dict[str, Any]]:
    return [item for item in _items(name) if item.get("frame_type", "wmbus") == "wmbus"]


def _source(item: dict[str, Any]) -> str:
    return str(item.get("source") or item.get("derived_from"))


def _skipped(item: dict[str, Any], field: str) -> bool:
    source = _source(item)
    return any(part in source and want in ("*", field) for part, want in NOT_IN_STANDARD_RECORDS)


def _expected_values(item: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """(field, family, value in base unit, tolerance) for every numeric expected field."""
    out = []
    for field, value in item["expected"].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or "_" not in field:
            continue
        suffix = field.rsplit("_", 1)[1].lower()
        if suffix not in THEIR_SUFFIXES or _skipped(item, field):
            continue
        family, factor = THEIR_SUFFIXES[suffix]
        if suffix == "c" and "difference" in field:
            family = "temperature_difference"
        if suffix == "kw" and "reactive" in field:
            family = "reactive_power"
        exponent = Decimal(str(value)).as_tuple().exponent
        half_unit = 0.5 * 10.0**exponent if isinstance(exponent, int) else 0.0
        tolerance = max(1e-6 * abs(value), half_unit) * factor
        out.append((field, family, value * factor, tolerance))
    return out


def _values_by_family(records: list[Record]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for record in records:
        if record.unit in OUR_UNITS and isinstance(record.value, (int, float, Decimal)):
            family, factor = OUR_UNITS[record.unit]
            found.setdefault(family, []).append(float(record.value) * factor)
    return found


def _decode_vector(item: dict[str, Any]) -> Decoded:
    key = bytes.fromhex(item["key"]) if item.get("key") else None
    decoder = WmbusDecoder()
    for prior in item.get("prior_hex") or []:
        decoder.decode(bytes.fromhex(prior), key=key, auth_key=None)
    return decoder.decode(bytes.fromhex(item["hex"]), key=key, auth_key=None)


def _check_vector(item: dict[str, Any]) -> None:
    decoded = _decode_vector(item)
    if not _skipped(item, "id"):
        ids = {str(v).lstrip("0") for k, v in decoded.meter.items() if "id" in k}
        assert str(item["expected"]["id"]).upper().lstrip("0") in ids
    link = item.get("link_layer") or {}
    makers = {m for m in (link.get("M"), (link.get("tpl_long") or {}).get("M")) if m}
    if makers:
        assert decoded.meter["manufacturer"] in makers
    found = _values_by_family(decoded.records)
    for field, family, value, tolerance in _expected_values(item):
        candidates = found.get(family, [])
        assert any(abs(got - value) <= tolerance for got in candidates), (
            f"{field}: expected {value} ({family}), decoded {candidates}"
        )


WMBUS_VECTORS = _wireless("wmbus.json")
REENCRYPTED_VECTORS = _items("wmbus_kamstrup_reencrypted.json")


@pytest.mark.parametrize(
    "item",
    [i for i in WMBUS_VECTORS if i["payload_state"] != "ciphertext" or i["key"]],
    ids=lambda item: _source(item).split("/")[-1],
)
def test_wmbusmeters_vector(item: dict[str, Any]) -> None:
    _check_vector(item)


@pytest.mark.parametrize("item", REENCRYPTED_VECTORS, ids=lambda item: _source(item).split("/")[-1])
def test_kamstrup_reencrypted_vector(item: dict[str, Any]) -> None:
    assert item["key"] == REENCRYPTED_KEY.hex().upper()
    _check_vector(item)


def test_the_vector_check_counts_kamstrup_values() -> None:
    # Guards the test above against silently checking nothing.
    kamstrup = [i for i in WMBUS_VECTORS if i["manufacturer"] == "KAM"]
    assert len(kamstrup) > 20
    assert sum(len(_expected_values(i)) for i in kamstrup) > 150


def _omnipower() -> dict[str, Any]:
    return next(i for i in REENCRYPTED_VECTORS if i["driver"] == "omnipower")


def test_omnipower_records_carry_obis_codes() -> None:
    item = _omnipower()
    decoded = decode_telegram(bytes.fromhex(item["hex"]), key=REENCRYPTED_KEY, cache=FormatCache())
    by_obis = {r.obis: r for r in decoded.records if r.obis}
    assert by_obis["1-0:1.8.0"].value == Decimal("7.94")
    assert by_obis["1-0:1.8.0"].unit == "kWh"
    assert by_obis["1-0:2.8.0"].value == 0
    assert by_obis["1-0:1.7.0"].value == 3
    assert by_obis["1-0:1.7.0"].unit == "W"
    assert by_obis["1-0:2.7.0"].value == 0
    assert decoded.meter == {
        "manufacturer": "KAM",
        "id": "32666857",
        "version": 0x30,
        "device_type": 0x02,
        "medium": "electricity",
    }
    frame = decoded.frame
    assert frame["ci_chain"] == ["8D", "79"]
    assert frame["security"] == "ell_aes_ctr"
    assert frame["plaintext"] == "decrypted"
    assert frame["ell"]["payload_crc_ok"] is True
    assert frame["compact"]["signature"] == "8C13"
    assert frame["compact"]["full_frame_crc_ok"] is True
    assert frame["access_number"] == 0xE9


def test_key_for_an_already_decrypted_telegram_is_refused() -> None:
    item = _omnipower()
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(bytes.fromhex(item["plaintext_hex"]), key=REENCRYPTED_KEY)
    assert caught.value.code == "not_encrypted"
    decoded = decode_telegram(bytes.fromhex(item["plaintext_hex"]), cache=FormatCache())
    assert decoded.frame["plaintext"] == "logged"


def test_wrong_ell_key_says_so_and_never_shows_the_key() -> None:
    item = _omnipower()
    key = bytes.fromhex("FFEEDDCCBBAA99887766554433221100")
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(bytes.fromhex(item["hex"]), key=key)
    assert caught.value.code == "wrong_key"
    assert "KAM 32666857" in str(caught.value)
    assert "key" in str(caught.value)
    assert key.hex() not in str(caught.value).lower()


def test_encrypted_telegram_without_key_asks_for_one() -> None:
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(bytes.fromhex(_omnipower()["hex"]))
    assert caught.value.code == "no_key"
    assert "AES key" in str(caught.value)


def _vector(source_part: str) -> dict[str, Any]:
    return next(i for i in WMBUS_VECTORS if source_part in i["source"])


def test_mode5_wrong_key_and_no_key() -> None:
    item = _vector("caltose.xmq")
    frame = bytes.fromhex(item["hex"])
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(frame, key=bytes(16))
    assert caught.value.code == "wrong_key"
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(frame)
    assert caught.value.code == "no_key"
    decoded = decode_telegram(frame, key=bytes.fromhex(item["key"]))
    assert decoded.frame["security"] == "tpl_mode5"
    assert decoded.frame["tpl"]["security_mode"] == 5


def test_mode7_frame_b_checks_crcs_and_mac() -> None:
    item = _vector("test_frame_b_trim.sh")
    frame = bytes.fromhex(item["hex"])
    decoded = decode_telegram(frame, key=bytes.fromhex(item["key"]))
    assert decoded.frame["frame_format"] == "B"
    assert decoded.frame["crc_ok"] is True
    assert decoded.frame["afl"]["mac_ok"] is True
    assert decoded.frame["afl"]["counter"] == 0x00025E89
    assert decoded.frame["ci_chain"] == ["8C", "90", "7A"]
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(frame, key=bytes(16))
    assert caught.value.code == "wrong_key"
    corrupted = bytearray(frame)
    corrupted[60] ^= 0x01
    with pytest.raises(ChecksumError) as crc:
        decode_telegram(bytes(corrupted), key=bytes.fromhex(item["key"]), dll_crcs="B")
    assert crc.value.code == "bad_crc"
    # Undeclared, a format B telegram with a bad CRC looks stripped: the MAC catches it.
    with pytest.raises(DecryptionError):
        decode_telegram(bytes(corrupted), key=bytes.fromhex(item["key"]))


def test_mode7_altered_payload_fails_the_mac() -> None:
    item = _vector("test_frame_b_trim.sh")
    raw = bytes.fromhex(item["hex"])
    stripped = bytearray(raw[:126] + raw[128:-2])
    stripped[0] = len(stripped) - 1
    stripped[-1] ^= 0x01  # an unencrypted byte after the encrypted blocks
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(bytes(stripped), key=bytes.fromhex(item["key"]))
    assert caught.value.code == "bad_mac"


def test_compact_frame_needs_a_known_format() -> None:
    full = _vector("kamheat.xmq:622")
    compact = bytes.fromhex(
        "25442D2C6767676730048D203AD2684020D81579E7F1D5902C00000000006300007F2A130000"
    )
    empty = FormatCache(seed=False)
    with pytest.raises(FrameError) as caught:
        decode_telegram(compact, cache=empty)
    assert caught.value.code == "unknown_compact_format"
    decode_telegram(bytes.fromhex(full["hex"]), cache=empty)
    decoded = decode_telegram(compact, cache=empty)
    assert decoded.frame["compact"]["signature"] == "F1E7"
    energy = next(r for r in decoded.records if r.unit == "kWh" and r.storage == 0)
    assert energy.value == 44
    restored = FormatCache.from_json(empty.to_json(), seed=False)
    assert restored.learned() == empty.learned()
    assert decode_telegram(compact, cache=restored).records == decoded.records


def test_known_kamstrup_formats_decode_after_a_restart() -> None:
    compact = bytes.fromhex(
        "25442D2C6767676730048D203AD2684020D81579E7F1D5902C00000000006300007F2A130000"
    )
    decoded = decode_telegram(compact, cache=FormatCache())
    assert decoded.frame["compact"]["full_frame_crc_ok"] is True
    signatures = {
        format_signature(bytes.fromhex(text)) for texts in KNOWN_FORMATS.values() for text in texts
    }
    assert {0x8C13, 0xA8ED, 0xF1E7, 0x8400, 0x73DE} <= signatures


def test_format_frame_of_en13757_3_annex_g5_teaches_the_compact_frame() -> None:
    header = bytes.fromhex("44") + bytes.fromhex("2D2C") + bytes.fromhex("7856341230FF")
    cache = FormatCache(seed=False)

    def telegram(apl: str) -> bytes:
        body = header + bytes.fromhex(apl)
        return bytes([len(body)]) + body

    decode_telegram(telegram("6908313B02020215022A"), cache=cache)
    decoded = decode_telegram(telegram("79313B42A6D2042E163423"), cache=cache)
    full = decode_telegram(telegram("780202D20402152E16022A3423"), cache=cache)
    assert [r.value for r in decoded.records] == [r.value for r in full.records]
    assert [r.unit for r in decoded.records] == ["kWh", "m³", "W"]
    assert decoded.frame["compact"]["full_frame_crc_ok"] is True


def test_format_a_crcs_are_checked_and_stripped() -> None:
    records = wmbus_tx.omnipower_records(7940, 0, 3, 0)
    plain = wmbus_tx.build_telegram(records, security="none")
    framed = wmbus_tx.build_telegram(records, security="none", frame_format="A")
    assert len(framed) > len(plain)
    a = decode_telegram(framed)
    assert a.frame["frame_format"] == "A"
    assert a.records == decode_telegram(plain).records
    broken = bytearray(framed)
    broken[20] ^= 0x40
    with pytest.raises(ChecksumError):
        decode_telegram(bytes(broken))
    with pytest.raises(IncompleteFrame) as caught:
        decode_telegram(framed[:-5])
    assert caught.value.code == "truncated"


def test_long_tpl_header_names_the_meter() -> None:
    item = next(i for i in _wireless("wmbus_all.json") if "engelmann_faw.xmq:125" in i["source"])
    decoded = decode_telegram(bytes.fromhex(item["hex"]))
    assert decoded.meter["id"] == "20254060"
    assert decoded.meter["link_id"] == "43000255"
    assert decoded.meter["manufacturer"] == "EFE"


def test_kamstrup_forward_energy_and_info_codes() -> None:
    item = _vector("kamheat.xmq:661")
    decoded = decode_telegram(bytes.fromhex(item["hex"]))
    names = {r.name: r for r in decoded.records if r.storage == 0}
    assert names["forward_energy"].unit == "m³·°C"
    assert names["forward_energy"].value == 65528
    assert names["return_energy"].value == 71744
    assert names["info_codes"].value == 0


def test_decoder_keeps_learned_formats_across_calls() -> None:
    item = next(i for i in WMBUS_VECTORS if i.get("prior_hex"))
    decoder = WmbusDecoder(FormatCache(seed=False))
    with pytest.raises(FrameError):
        decoder.decode(bytes.fromhex(item["hex"]), key=None, auth_key=None)
    decoder.decode(bytes.fromhex(item["prior_hex"][0]), key=None, auth_key=None)
    assert decoder.decode(bytes.fromhex(item["hex"]), key=None, auth_key=None).records


def test_key_for_a_meter_that_sends_in_the_clear_is_refused() -> None:
    telegram = wmbus_tx.build_telegram(wmbus_tx.omnipower_records(10, 0, 1, 0), security="none")
    assert decode_telegram(telegram).records
    with pytest.raises(DecryptionError) as caught:
        decode_telegram(telegram, key=bytes(16))
    assert caught.value.code == "not_encrypted"


@pytest.mark.parametrize("frame_format", ["A", "B"])
def test_long_telegrams_with_two_format_b_crcs_or_many_a_blocks(frame_format: Any) -> None:
    records = [DataRecord(b"\x13", 1000 + n, storage=n) for n in range(20)]
    plain = wmbus_tx.build_telegram(records, security="none")
    framed = wmbus_tx.build_telegram(records, security="none", frame_format=frame_format)
    assert len(plain) > 128
    decoded = decode_telegram(framed, dll_crcs=frame_format)
    assert decoded.frame["frame_format"] == frame_format
    assert [r.value for r in decoded.records] == [Decimal(1000 + n) / 1000 for n in range(20)]
    assert decode_telegram(framed).records == decoded.records
    broken = bytearray(framed)
    broken[-1] ^= 0x80
    with pytest.raises(ChecksumError):
        decode_telegram(bytes(broken), dll_crcs=frame_format)


def test_leftover_final_dll_crc_is_dropped() -> None:
    # Logged with the block CRCs stripped except the last one, which L still counts.
    item = next(i for i in _wireless("wmbus_all.json") if "qwaterv2.xmq:259" in i["source"])
    decoded = decode_telegram(bytes.fromhex(item["hex"]))
    assert decoded.frame["note"] == "a leftover DLL CRC at the end dropped"
    volumes = {r.value for r in decoded.records if r.unit == "m³"}
    assert Decimal("1.791") in volumes
