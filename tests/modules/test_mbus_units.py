"""The mbus module's pure parts: config rules, record names and times, the emulated slaves."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway import config
from gateway.errors import ConfigError, ConnectionLost
from gateway.transport import Link, open_link, open_pty
from modules.codecs.errors import FrameError
from modules.codecs.mbus.encode import DataRecord, encode_long_header, encode_record
from modules.codecs.mbus.frames import (
    ACK,
    NETWORK_LAYER_ADDRESS,
    MbusDecoder,
    SecondaryAddress,
    application_reset,
    req_ud2,
    rsp_ud,
    select_secondary,
    set_primary_address,
    snd_nke,
)
from modules.codecs.records import Decoded, Record
from modules.mbus.config import MbusConfig
from modules.mbus.emulator import build_bus
from modules.mbus.emulator import main as emulator_main
from modules.mbus.master import Master, NoAnswer
from modules.mbus.readings import meter_time, record_key, to_sample
from modules.mbus.slave import collide

ROOT = Path(__file__).resolve().parents[2]
IDS = ["38200001", "38250002", "61000003"]


def load(devices: str, extra: str = "") -> config.Settings:
    return config.loads(
        '[[meters]]\nid = "m1"\n[[meters]]\nid = "m2"\n'
        '[[modules]]\ntype = "mbus"\nname = "bus1"\nport = "/dev/ttyUSB0"\n' + extra + devices
    )


# config ----------------------------------------------------------------------------------------


def test_the_example_config_loads_with_every_key() -> None:
    settings = config.load(ROOT / "conf" / "examples" / "mbus.toml")
    (bus,) = settings.modules
    assert isinstance(bus, MbusConfig)
    assert bus.baudrate == 2400
    assert bus.meters_fed() == tuple(device.meter for device in bus.devices)
    text = (ROOT / "conf" / "examples" / "mbus.toml").read_text()
    for name in (*MbusConfig.__struct_fields__, "primary_address", "secondary_address"):
        if name not in ("type", "name", "meter", "enabled", "devices"):
            assert f"{name} =" in text, name


@pytest.mark.parametrize(
    ("devices", "extra", "message"),
    [
        ('[[modules.devices]]\nmeter = "m1"\n', "", "exactly one of"),
        (
            '[[modules.devices]]\nmeter = "m1"\nprimary_address = 1\nsecondary_address = "1"\n',
            "",
            "exactly one of",
        ),
        ('[[modules.devices]]\nmeter = "m1"\nprimary_address = 251\n', "", "outside 0..250"),
        ('[[modules.devices]]\nmeter = "m1"\nsecondary_address = "12G"\n', "", "hex digits"),
        ('[[modules.devices]]\nmeter = "m1"\nprimary_address = 1\n', "baudrate = 2000\n", "2000"),
        ('[[modules.devices]]\nmeter = "mx"\nprimary_address = 1\n', "", "'mx' is not defined"),
        (
            '[[modules.devices]]\nmeter = "m1"\nprimary_address = 1\n'
            '[[modules.devices]]\nmeter = "m2"\nprimary_address = 1\n',
            "",
            "share a primary address",
        ),
        (
            '[[modules.devices]]\nmeter = "m1"\nprimary_address = 1\n'
            '[[modules.devices]]\nmeter = "m1"\nprimary_address = 2\n',
            "",
            "one device only",
        ),
        ('[[modules.devices]]\nmeter = "m1"\nprimary_address = 1\nspeed = 2\n', "", "speed"),
        ("", "devices = []\n", "at least one device"),
    ],
)
def test_config_errors_name_the_problem(devices: str, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load(devices, extra)
    assert "modules[0]" in str(caught.value)


def test_echo_takes_auto_or_a_boolean() -> None:
    device = '[[modules.devices]]\nmeter = "m1"\nprimary_address = 1\n'
    told, default = load(device, "echo = true\n").modules[0], load(device).modules[0]
    assert isinstance(told, MbusConfig) and isinstance(default, MbusConfig)
    assert told.echo is True
    assert default.echo == "auto"
    with pytest.raises(ConfigError, match="echo"):
        load(device, 'echo = "sometimes"\n')


# readings --------------------------------------------------------------------------------------


def test_records_without_obis_get_stable_names() -> None:
    assert record_key(Record("volume", 1, "m³")) == "mbus:volume"
    assert (
        record_key(Record("flow_temperature", 70, "°C", function="maximum"))
        == "mbus:flow_temperature_maximum"
    )
    assert record_key(Record("energy", 5, "kWh", storage=1, tariff=2, subunit=1)) == (
        "mbus:energy[1/2/1]"
    )


def test_a_sample_takes_obis_first_names_otherwise_and_the_meter_clock() -> None:
    telegrams = [
        Decoded(
            "mbus",
            records=[
                Record("energy_import", Decimal("1.5"), "kWh", obis="1-0:1.8.0"),
                Record("volume", 3, "m³"),
                Record("datetime", "2026-07-01T12:30:00"),
                Record("manufacturer_specific", None, raw={"more_records_follow": True}),
            ],
        ),
        Decoded(
            "mbus",
            records=[
                Record("energy_import", Decimal("9"), "kWh", obis="1-0:1.8.0"),
                Record("volume", 4, "m³"),
                Record("error_flags", None),
            ],
        ),
    ]
    received = datetime(2026, 7, 1, 10, 31, 5, tzinfo=UTC)
    sample = to_sample(
        "m1", "bus1", telegrams, received_at=received, zone=ZoneInfo("Europe/Copenhagen")
    )
    assert [(r.obis, r.value, r.unit) for r in sample.readings] == [
        ("1-0:1.8.0", Decimal("1.5"), "kWh"),
        ("mbus:volume", 3, "m³"),
        ("mbus:datetime", "2026-07-01T12:30:00", None),
        ("mbus:volume#2", 4, "m³"),
    ]
    assert sample.at == datetime(2026, 7, 1, 10, 30, tzinfo=UTC)  # CEST is UTC+2
    without_clock = to_sample("m1", "bus1", telegrams[1:], received_at=received, zone=UTC)
    assert without_clock.at == received


def test_the_clock_of_a_telegram_in_the_meters_time_zone() -> None:
    clock = DataRecord(b"\x6d", datetime(2026, 11, 25, 19, 29), "datetime_f")  # 04 6D, type F
    header = encode_long_header("38200001", "KAM", 1, 2, access_number=7)
    decoded = MbusDecoder().decode(rsp_ud(1, 0x72, header + encode_record(clock)))
    zone = ZoneInfo("Europe/Copenhagen")  # CET in November: UTC+1
    assert meter_time([decoded], zone) == datetime(2026, 11, 25, 18, 29, tzinfo=UTC)


# the emulated slaves ---------------------------------------------------------------------------


def test_a_repeated_fcb_repeats_the_telegram_and_a_toggled_one_moves_on() -> None:
    bus = build_bus(1, records_per_telegram=10)
    assert bus.handle(snd_nke(1)) == bytes([ACK])
    first = bus.handle(req_ud2(1, fcb=True))
    assert bus.handle(req_ud2(1, fcb=True)) == first  # the master missed it: same again
    second = bus.handle(req_ud2(1, fcb=False))
    third = bus.handle(req_ud2(1, fcb=True))
    decoder = MbusDecoder()
    flags = [decoder.decode(t).frame["more_records_follow"] for t in (first, second, third)]
    assert flags == [True, True, False]
    access = [decoder.decode(t).meter["access_number"] for t in (first, second, third)]
    assert access == [1, 2, 3]
    # SND_NKE in the middle of a readout starts the next one from the first telegram.
    bus.handle(req_ud2(1, fcb=False))
    bus.handle(snd_nke(1))
    again = decoder.decode(bus.handle(req_ud2(1, fcb=True)))
    assert again.records[0].obis == "1-0:1.8.0"


def test_selection_with_wildcards_collisions_and_deselection() -> None:
    bus = build_bus(3, secondaries=IDS)
    select = select_secondary
    assert bus.handle(select(SecondaryAddress("38200001"))) == bytes([ACK])
    answer = MbusDecoder().decode(bus.handle(req_ud2(NETWORK_LAYER_ADDRESS, fcb=True)))
    assert answer.meter["id"] == "38200001"
    garbled = bus.handle(select(SecondaryAddress("382FFFFF")))
    assert garbled and garbled != bytes([ACK])
    assert bus.handle(select(SecondaryAddress("6FFFFFFF", "KAM", 1, 2))) == bytes([ACK])
    assert bus.handle(select(SecondaryAddress("6FFFFFFF", "ABB"))) == b""  # deselects
    assert bus.handle(req_ud2(NETWORK_LAYER_ADDRESS, fcb=True)) == b""
    bus.handle(select(SecondaryAddress("61000003")))
    assert bus.handle(snd_nke(NETWORK_LAYER_ADDRESS)) == bytes([ACK])
    assert bus.handle(req_ud2(NETWORK_LAYER_ADDRESS, fcb=False)) == b"", "SND_NKE to 253 deselects"


def test_broadcasts_act_silently_and_addresses_can_be_changed() -> None:
    bus = build_bus(2)
    assert bus.handle(snd_nke(0xFF)) == b""
    assert bus.handle(set_primary_address(2, 42)) == bytes([ACK])
    assert bus.slaves[1].primary == 42
    assert bus.handle(application_reset(42)) == bytes([ACK])
    assert bus.handle(req_ud2(2, fcb=True)) == b""
    assert bus.handle(snd_nke(0xFE)) not in (b"", bytes([ACK]))  # both answer: a collision


def test_collisions_garble_even_identical_answers() -> None:
    assert collide([bytes([ACK])]) == bytes([ACK])
    assert collide([bytes([ACK]), bytes([ACK])]) != bytes([ACK])
    frame = build_bus(1).handle(req_ud2(1, fcb=True))
    assert collide([frame]) == frame
    assert collide([frame, frame]) != frame


def test_the_emulator_refuses_bad_ids() -> None:
    with pytest.raises(SystemExit):
        emulator_main(["--secondary", "1234"])
    with pytest.raises(SystemExit):
        emulator_main(["--meters", "3", "--address", "249"])


async def test_the_master_survives_any_garbage_on_the_line(tmp_path: Path) -> None:
    """Random answers (noise, half frames, foreign frames) only ever give FrameError or
    NoAnswer, never a crash, and the master keeps working afterwards."""
    rng = random.Random(13757)
    good = build_bus(1)

    async def noisy(link: Link) -> None:
        while True:
            request = await link.read()
            if rng.random() < 0.2:
                await link.write(good.handle(request))
                continue
            size = rng.choice((1, 2, 5, 9, 30, 300))
            noise = bytes(rng.randrange(256) for _ in range(size))
            if rng.random() < 0.5:  # something that starts like a frame
                noise = bytes([rng.choice((0x10, 0x68, 0xE5))]) + noise
            await link.write(noise)

    async with open_pty(str(tmp_path / "tty")) as (device, tty):
        task = asyncio.create_task(noisy(device))
        try:
            async with open_link(tty) as link:
                master = Master(link, baudrate=38400, latency_s=0.01, retries=0)
                outcomes = set()
                for round_ in range(60):
                    try:
                        if round_ % 3 == 0:
                            await master.reset(1)
                            outcomes.add("ack")
                        else:
                            await master.read(1, fcb=bool(round_ % 2), max_telegrams=3)
                            outcomes.add("data")
                    except (FrameError, NoAnswer) as err:
                        outcomes.add(type(err).__name__)
                assert {"ack", "data"} <= outcomes
                assert len(outcomes) >= 4
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
                await task
