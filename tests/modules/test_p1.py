"""The p1 module reading DSMR: the emulator on a real pty, into an in-process Gateway's engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.app import Gateway
from gateway.errors import ConfigError
from gateway.store import Store
from gateway.transport import open_pty, write_slowly
from modules.codecs.dsmr.stream import P1Splitter
from modules.codecs.dsmr.telegram import DsmrDecoder, encrypt_telegram
from modules.dlms.readings import to_readings
from modules.p1.config import P1Config
from modules.p1.emulator import P1Emitter
from modules.p1.meter_model import EmulatedMeter
from tests.support.gateway import offline_text, running, until

VECTORS = Path(__file__).parents[1] / "fixtures" / "vectors"
SMARTY_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def settings_for(tmp_path: Path, module: str) -> config.Settings:
    return config.loads(offline_text(tmp_path, '[[meters]]\nid = "main"\n' + module))


def p1_module(port: str, extra: str = "") -> str:
    return f'[[modules]]\ntype = "p1"\nname = "p1"\nmeter = "main"\nport = "{port}"\n{extra}'


class Clock:
    """Meter time that moves with the emulated meter's energy (an hour ago, then 60 s steps)."""

    def __init__(self, meter: EmulatedMeter, step_s: float = 60.0) -> None:
        self.meter = meter
        self.step_s = step_s
        self.now = datetime.now(UTC) - timedelta(hours=1)

    def tick(self) -> datetime:
        self.meter.advance(self.step_s)
        self.now += timedelta(seconds=self.step_s)
        return self.now


def register(gateway: Gateway, code: str) -> Decimal | None:
    found = gateway.engines["main"].registers.get(code)
    return None if found is None else Decimal(str(found.value))


def kinds(gateway: Gateway) -> list[str]:
    """Event kinds from the store (reopened: the gateway closes its own on stop)."""
    store = Store(gateway.store.path)
    try:
        return [event.kind for _, event in store.events("main", limit=1000)]
    finally:
        store.close()


async def test_dsmr5_telegrams_one_byte_at_a_time_reach_the_engine(tmp_path: Path) -> None:
    meter = EmulatedMeter()
    emitter = P1Emitter(meter)
    clock = Clock(meter)
    async with (
        open_pty(str(tmp_path / "ttyP1")) as (device, path),
        running(settings_for(tmp_path, p1_module(path))) as gateway,
    ):
        # Bytes written before the module opened the tty are flushed by the open: keep sending.
        async with asyncio.timeout(20):
            while gateway.health["p1"].frames_ok < 2:
                await write_slowly(device, emitter.frame(clock.tick()), byte_delay_s=0.0005)
        # DSMR sends T1/T2 only (to the Wh each); the total is their sum.
        expected = Decimal(meter.import_wh / 1000)
        total = register(gateway, "1-0:1.8.0")
        assert total is not None and abs(total - expected) <= Decimal("0.002")
        assert register(gateway, "1-0:1.8.2") is not None
        assert register(gateway, "1-0:1.7.0") == Decimal(round(meter.power_w))
        assert register(gateway, "0-1:24.2.1") is not None
        assert gateway.health["p1"].frames_failed == 0


async def test_a_garbled_telegram_is_counted_and_the_next_one_taken(tmp_path: Path) -> None:
    meter = EmulatedMeter()
    emitter = P1Emitter(meter)
    clock = Clock(meter)
    async with (
        open_pty(str(tmp_path / "ttyP1")) as (device, path),
        running(settings_for(tmp_path, p1_module(path))) as gateway,
    ):
        health = gateway.health["p1"]
        async with asyncio.timeout(10):
            while health.frames_ok < 1:
                await device.write(emitter.frame(clock.tick()))
                await asyncio.sleep(0.2)
        good = health.frames_ok
        garbled = bytearray(emitter.frame(clock.tick()))
        del garbled[200]  # a byte lost on the line: the CRC no longer matches
        garbled[300] ^= 0x04
        await device.write(bytes(garbled) + emitter.frame(clock.tick()))
        await until(lambda: health.frames_ok == good + 1)
        assert health.frames_failed == 1
        assert "CRC" in (health.last_error or "")
    assert "decryption_failed" not in kinds(gateway)


async def test_smarty_encrypted_telegrams_and_a_wrong_key(tmp_path: Path) -> None:
    meter = EmulatedMeter()
    emitter = P1Emitter(meter, key=SMARTY_KEY)
    module = p1_module(str(tmp_path / "ttyP1"), f'key = "{SMARTY_KEY.hex()}"\n')
    async with (
        open_pty(str(tmp_path / "ttyP1")) as (device, _path),
        running(settings_for(tmp_path, module)) as gateway,
    ):
        async with asyncio.timeout(10):
            while gateway.health["p1"].frames_ok < 1:
                await device.write(emitter.frame())
                await asyncio.sleep(0.2)
        ok = gateway.health["p1"].frames_ok
        # A fresh frame sent twice (the copy is a replay), then two under another key.
        replayed = emitter.frame()
        await device.write(replayed + replayed)
        other = P1Emitter(meter, key=bytes(16), frame_counter=100)
        await device.write(other.frame() + other.frame())
        await until(lambda: gateway.health["p1"].frames_failed >= 3)
        assert gateway.health["p1"].frames_ok == ok + 1
        assert register(gateway, "1-0:1.7.0") == Decimal(round(meter.power_w))
    assert kinds(gateway).count("replay_suspected") == 1
    assert kinds(gateway).count("decryption_failed") == 1


async def test_unplug_and_replug_the_p1_cable(tmp_path: Path) -> None:
    link = str(tmp_path / "ttyP1")
    meter = EmulatedMeter()
    emitter = P1Emitter(meter)
    clock = Clock(meter)
    cable = contextlib.AsyncExitStack()
    device, _path = await cable.enter_async_context(open_pty(link))
    try:
        async with running(settings_for(tmp_path, p1_module(link))) as gateway:
            async with asyncio.timeout(10):
                while gateway.health["p1"].frames_ok < 1:
                    await device.write(emitter.frame(clock.tick()))
                    await asyncio.sleep(0.2)
            before = register(gateway, "1-0:1.8.0")
            await cable.aclose()  # unplugged: the module loses its link and backs off
            await until(lambda: gateway.health["p1"].restarts >= 1)
            async with open_pty(link) as (device, _path):
                async with asyncio.timeout(15):
                    while gateway.health["p1"].frames_ok < 2:
                        await device.write(emitter.frame(clock.tick()))
                        await asyncio.sleep(0.3)
            after = register(gateway, "1-0:1.8.0")
    finally:
        await cable.aclose()
    assert before is not None and after is not None and after > before
    assert "communication_lost" in kinds(gateway)
    assert "communication_restored" in kinds(gateway)


def test_line_settings_follow_the_dsmr_version_unless_configured(tmp_path: Path) -> None:
    def serial(extra: str) -> tuple[int, int, str]:
        module = config.loads(
            '[[meters]]\nid = "main"\n' + p1_module("/dev/ttyUSB0", extra)
        ).modules[0]
        assert isinstance(module, P1Config)
        line = module.serial
        return line.baudrate, line.bytesize, line.parity

    assert serial("") == (115200, 8, "N")
    assert serial('dsmr_version = "2.2"\n') == (9600, 7, "E")
    assert serial('format = "dlms"\n') == (2400, 8, "N")
    assert serial('format = "dlms"\nparity = "E"\n') == (2400, 8, "E")
    assert serial('dsmr_version = "3"\nbaudrate = 115200\n') == (115200, 7, "E")
    with pytest.raises(ConfigError, match="key: 4 hex digits; an AES key has 32"):
        config.loads('[[meters]]\nid = "main"\n' + p1_module("/dev/x", 'key = "0011"\n'))
    with pytest.raises(ConfigError, match="not both"):
        config.loads(
            '[[meters]]\nid = "main"\n'
            + p1_module("/dev/x", f'key = "{SMARTY_KEY.hex()}"\nkey_file = "/k"\n')
        )


def test_the_splitter_cuts_every_vector_telegram_from_one_stream() -> None:
    telegrams = [item["input"].encode("latin-1") for item in load("dsmr.json")]
    stream = b"\x00garbage!\r\n" + b"".join(telegrams)
    splitter = P1Splitter()
    found: list[bytes] = []
    for index in range(0, len(stream), 7):
        found += [t for t in splitter.feed(stream[index : index + 7]) if isinstance(t, bytes)]
    assert len(found) == len(telegrams)
    decoder = DsmrDecoder()
    for telegram, original in zip(found, telegrams, strict=True):
        assert original.startswith(telegram)  # trailing noise after the CRC line is dropped
        assert b"!" not in original[len(telegram) :]
        decoder.decode(telegram, key=None, auth_key=None)


def test_the_splitter_finds_smarty_frames_by_length_among_noise() -> None:
    telegram = load("dsmr.json")[0]["input"].encode("latin-1")
    frames = [
        encrypt_telegram(
            telegram, key=SMARTY_KEY, system_title=b"SAG\x00\x00\x00\x00\x01", frame_counter=n
        )
        for n in (1, 2)
    ]
    splitter = P1Splitter()
    found = splitter.feed(b"/!\xdb" + frames[0][5:] + frames[0] + frames[1][:40])
    found += splitter.feed(frames[1][40:])
    assert found == frames


def test_dsmr_readings_fold_nothing_and_sum_tariffs() -> None:
    vector = next(v for v in load("dsmr.json") if "KMP5 ZABF001587315111" in v["input"])
    decoded = DsmrDecoder().decode(vector["input"].encode(), key=None, auth_key=None)
    readings = {r.obis: r for r in to_readings(decoded.records)}
    assert readings["1-0:1.8.0"].value == Decimal("269.000")
    assert readings["1-0:2.8.0"].value == Decimal("32.000")
    assert readings["0-1:24.2.1"].value == Decimal("124.477")
    assert readings["0-1:24.2.1"].unit == "m³"
    assert "0-0:96.13.0" not in readings  # an empty text message is no reading


def load(name: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return result
