"""The p1 module on a HAN port: DLMS pushes (clear and AES-GCM) over a pty into the engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transport import Link, open_pty, write_slowly
from modules.codecs.dlms.decode import DlmsDecoder
from modules.codecs.dlms.hdlc import encode_frame, parse_frame
from modules.codecs.dlms.stream import HanSplitter
from modules.codecs.dsmr.stream import P1Splitter
from modules.codecs.records import Record
from modules.dlms.readings import meter_time, to_readings
from modules.dlms.secure import FrameCounters
from modules.p1.emulator import P1Emitter
from modules.p1.meter_model import EmulatedMeter
from tests.modules.test_p1 import VECTORS, kinds, p1_module, register, settings_for
from tests.support.gateway import running, until

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
KEYS = f'format = "dlms"\nkey = "{GUEK.hex()}"\nauth_key = "{GAK.hex()}"\n'


class Pushes:
    """A HAN emitter whose meter time moves a minute per push, starting two hours ago."""

    def __init__(self, *, key: bytes | None = None, auth_key: bytes | None = None) -> None:
        self.meter = EmulatedMeter()
        self.emitter = P1Emitter(self.meter, format="dlms", key=key, auth_key=auth_key)
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def frame(self) -> bytes:
        self.meter.advance(60)
        self.now += timedelta(seconds=60)
        return self.emitter.frame(self.now)


async def send_until(
    device: Link, pushes: Pushes, done: Callable[[], bool], timeout_s: float = 10
) -> None:
    """Push frames until ``done()`` (the module may open the tty after the first ones)."""
    async with asyncio.timeout(timeout_s):
        while not done():
            await device.write(pushes.frame())
            await asyncio.sleep(0.1)


async def test_encrypted_pushes_one_byte_at_a_time_reach_the_engine(tmp_path: Path) -> None:
    pushes = Pushes(key=GUEK, auth_key=GAK)
    async with (
        open_pty(str(tmp_path / "ttyHAN")) as (device, path),
        running(settings_for(tmp_path, p1_module(path, KEYS))) as gateway,
    ):
        health = gateway.health["p1"]
        await send_until(device, pushes, lambda: health.frames_ok >= 1)
        await write_slowly(device, pushes.frame(), byte_delay_s=0.0003)
        await until(lambda: health.frames_ok >= 2)
        meter = pushes.meter
        # Kamstrup counts 10 Wh; the B=1 channel lands on the engine's 1-0 registers.
        energy = register(gateway, "1-0:1.8.0")
        assert energy == Decimal(int(meter.import_wh // 10)) / 100
        assert register(gateway, "1-0:1.7.0") == Decimal(round(meter.power_w))
        assert register(gateway, "1-0:32.7.0") is not None
        current = register(gateway, "1-0:31.7.0")
        assert current is not None and Decimal("1") < current < Decimal("3")
        assert health.frames_failed == 0
        registers = gateway.engines["main"].registers
        assert registers["1-0:1.8.0"].at == pushes.now  # the meter's time, not ours
    assert not [k for k in kinds(gateway) if k in ("decryption_failed", "replay_suspected")]


async def test_wrong_key_bad_tag_and_replay_each_give_one_event_and_no_readings(
    tmp_path: Path,
) -> None:
    pushes = Pushes(key=GUEK, auth_key=GAK)
    async with (
        open_pty(str(tmp_path / "ttyHAN")) as (device, path),
        running(settings_for(tmp_path, p1_module(path, KEYS))) as gateway,
    ):
        health = gateway.health["p1"]
        await send_until(device, pushes, lambda: health.frames_ok >= 1)
        before = register(gateway, "1-0:1.8.0")
        ok = health.frames_ok

        # 1. A replayed frame, five times: one event.
        old = pushes.frame()
        await device.write(old)
        await until(lambda: health.frames_ok == ok + 1)
        for _ in range(5):
            await device.write(old)
        await until(lambda: health.frames_failed == 5)

        # 2. Tampered frames (a flipped ciphertext bit, HDLC checks recomputed): one event.
        for _ in range(4):
            await device.write(_tampered(pushes.frame()))
        await until(lambda: health.frames_failed == 9)

        # 3. A meter under another key: one event, however many frames.
        stranger = Pushes(key=bytes(16), auth_key=GAK)
        for _ in range(6):
            await device.write(stranger.frame())
        await until(lambda: health.frames_failed == 15)

        assert health.frames_ok == ok + 1
        assert register(gateway, "1-0:1.8.0") != before  # the one good frame counted
        after = register(gateway, "1-0:1.8.0")
        await device.write(pushes.frame())  # good frames are taken again at once
        await until(lambda: health.frames_ok == ok + 2)
        now = register(gateway, "1-0:1.8.0")
        assert now is not None and after is not None
        assert now > after
    events = kinds(gateway)
    assert events.count("replay_suspected") == 1
    # The wrong-key frames follow the tampered ones with no good frame between: one episode.
    assert events.count("decryption_failed") == 1


async def test_frame_counters_survive_a_restart(tmp_path: Path) -> None:
    pushes = Pushes(key=GUEK, auth_key=GAK)
    settings = settings_for(tmp_path, p1_module(str(tmp_path / "ttyHAN"), KEYS))
    async with open_pty(str(tmp_path / "ttyHAN")) as (device, _path):
        async with running(settings) as gateway:
            await send_until(device, pushes, lambda: gateway.health["p1"].frames_ok >= 4)
        recorded = pushes.emitter.frame_counter - 1
        pushes.emitter.frame_counter = 1  # somebody replays the recording from the start
        async with running(settings) as gateway:
            health = gateway.health["p1"]
            await send_until(device, pushes, lambda: health.frames_failed >= 2)
            assert health.frames_ok == 0
    assert kinds(gateway).count("replay_suspected") == 1
    assert recorded >= 4


async def test_clear_pushes_when_a_key_is_configured_are_refused(tmp_path: Path) -> None:
    pushes = Pushes()
    async with (
        open_pty(str(tmp_path / "ttyHAN")) as (device, path),
        running(settings_for(tmp_path, p1_module(path, KEYS))) as gateway,
    ):
        health = gateway.health["p1"]
        await send_until(device, pushes, lambda: health.frames_failed >= 3)
        assert health.frames_ok == 0
        assert register(gateway, "1-0:1.8.0") is None
    assert kinds(gateway).count("decryption_failed") == 1


async def test_clear_pushes_without_a_key(tmp_path: Path) -> None:
    pushes = Pushes()
    async with (
        open_pty(str(tmp_path / "ttyHAN")) as (device, path),
        running(settings_for(tmp_path, p1_module(path, 'format = "dlms"\n'))) as gateway,
    ):
        await send_until(device, pushes, lambda: gateway.health["p1"].frames_ok >= 2)
        assert register(gateway, "1-0:2.8.0") is not None


def test_splitter_finds_every_hdlc_vector_in_a_noisy_stream() -> None:
    vectors = json.loads((VECTORS / "dlms.json").read_text())
    frames = [
        bytes.fromhex(v["input"]["hex"])
        for v in vectors
        if isinstance(v["input"], dict)
        and v["input"].get("hex", "").startswith("7e")
        and v["input"]["hex"].endswith("7e")
    ]
    assert len(frames) >= 6
    stream = b"\x7e\x7e\xa0\x00junk\x7e" + b"\x00\x7e".join(frames)
    splitter = HanSplitter()
    found: list[bytes] = []
    for index in range(0, len(stream), 5):
        found += [f for f in splitter.feed(stream[index : index + 5]) if isinstance(f, bytes)]
    assert found == frames


def test_splitter_reports_a_bad_fcs_and_keeps_going() -> None:
    frame = Pushes().frame()
    bad = bytearray(frame)
    bad[40] ^= 0x01
    found = HanSplitter().feed(bytes(bad) + frame)
    assert [type(f).__name__ for f in found] == ["ChecksumError", "bytes"]
    assert found[1] == frame


def test_kamstrup_vector_readings_and_local_time() -> None:
    vector = json.loads((VECTORS / "dlms.json").read_text())[0]
    decoded = DlmsDecoder().decode(bytes.fromhex(vector["input"]["hex"]), key=None, auth_key=None)
    readings = {r.obis: r for r in to_readings(decoded.records)}
    assert readings["1-0:1.7.0"].value == 3825
    assert readings["1-0:31.7.0"].value == Decimal("1.06")
    assert readings["1-0:0.0.5"].value == "5706567277656672"
    # 2024-10-30 17:32 in Copenhagen (winter time, UTC+1) is 16:32 UTC.
    assert meter_time(decoded, ZoneInfo("Europe/Copenhagen")) == datetime(
        2024, 10, 30, 16, 32, tzinfo=UTC
    )


def test_two_channels_of_one_quantity_stay_apart() -> None:
    records = [
        Record("a", Decimal(1), "kWh", "1-1:1.8.0"),
        Record("b", Decimal(2), "kWh", "1-2:1.8.0"),
        Record("c", 5, "W", "1-1:1.7.0"),
        Record("peak", 7, "W", "1-0:1.6.0"),
    ]
    codes = [r.obis for r in to_readings(records)]
    assert codes == ["1-1:1.8.0", "1-2:1.8.0", "1-0:1.7.0"]


def test_frame_counters_refuse_what_does_not_advance() -> None:
    counters = FrameCounters()
    assert counters.accept("4b414d", 5)
    assert not counters.accept("4b414d", 5)
    assert not counters.accept("4b414d", 4)
    assert counters.accept("other", 1)
    restored = FrameCounters(counters.to_bytes())
    assert not restored.accept("4b414d", 5)
    assert restored.accept("4b414d", 6)
    assert FrameCounters(b"not json").last("x") is None


def _tampered(frame: bytes) -> bytes:
    """Flip one ciphertext bit and recompute the HDLC checks, as a forger on the wire would."""
    parsed = parse_frame(frame)
    info = bytearray(parsed.info)
    info[40] ^= 0x80
    return encode_frame(bytes(info), dest=parsed.dest, src=parsed.src, control=parsed.control)


def test_wired_mbus_segments_from_a_stream_decrypt_with_an_encryption_only_key() -> None:
    vector = next(
        v for v in json.loads((VECTORS / "dlms.json").read_text()) if "gh905" in v["source"]
    )
    stream = b"\x10\x5b\x00" + bytes.fromhex(vector["input"]["hex"])
    key = bytes.fromhex(vector["key"]["encryption_key"])
    splitter, decoder = HanSplitter(), DlmsDecoder()
    decoded = []
    for index in range(0, len(stream), 3):
        for frame in splitter.feed(stream[index : index + 3]):
            assert isinstance(frame, bytes) and frame[0] == 0x68
            decoded.append(decoder.decode(frame, key=key, auth_key=None))
    assert len(decoded) == 2 and not decoded[0].records  # the first segment waits
    readings = {r.obis: r for r in to_readings(decoded[1].records)}
    assert readings["1-0:1.8.0"].unit == "kWh"
    assert decoded[1].frame["frame_counter"] > 0


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_splitter_is_blind_to_chunking_and_survives_noise(data: st.DataObject) -> None:
    pushes = Pushes(key=GUEK, auth_key=GAK)
    frames = [pushes.frame() for _ in range(3)]
    noise = data.draw(st.lists(st.binary(max_size=40), min_size=4, max_size=4))
    stream = b"".join(n + f for n, f in zip(noise, [*frames, b""], strict=True))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    splitter = HanSplitter()
    found: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        found += [f for f in splitter.feed(stream[start:end]) if isinstance(f, bytes)]
    assert [f for f in found if f in frames] == frames


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_splitters_take_any_bytes(blob: bytes) -> None:
    for item in HanSplitter().feed(blob):
        if isinstance(item, bytes) and item[0] == 0x7E:
            parse_frame(item)  # whatever it hands out has passed its checks
    P1Splitter().feed(blob)
