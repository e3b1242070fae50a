"""The wmbus module in an in-process Gateway, fed by the emulator over ptys and loopback TCP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.app import Gateway
from gateway.model import Sample
from gateway.store import Store
from gateway.transport import Link, open_pty, serve_tcp
from modules.wmbus import listen
from modules.wmbus.emulator import DEMO_KEY, OmnipowerTransmitter, serve
from modules.wmbus.receivers import Device, make_device
from modules.wmbus.receivers.cul import CulDevice
from modules.wmbus.receivers.imst import Im871aDevice
from tests.support.gateway import background, offline_text, serving, until
from tests.support.processes import free_port

WRONG_KEY = bytes.fromhex("FFEEDDCCBBAA99887766554433221100")
INTERVAL_S = 0.04
STEP_S = 10.0  # simulated seconds per telegram: a few Wh, a plausible step for the engine


class RecordingGateway(Gateway):
    """A real Gateway that also keeps the samples it was given."""

    def __init__(self, settings: config.Settings) -> None:
        super().__init__(settings, outputs=lambda _g: ())
        self.samples: list[Sample] = []

    def submit(self, module: str, sample: Sample) -> None:
        self.samples.append(sample)
        super().submit(module, sample)


def write_config(
    data_dir: Path,
    device: str,
    receiver: str,
    *,
    key: bytes | None = DEMO_KEY,
    modes: str = '["C1", "T1"]',
    extra: str = "",
) -> config.Settings:
    key_line = f'key = "{key.hex().upper()}"\n' if key else ""
    path = data_dir / "gateway.toml"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        offline_text(
            data_dir,
            '[[meters]]\nid = "main"\n'
            f'[[modules]]\ntype = "wmbus"\nname = "radio"\nmeter = "main"\n'
            f'device = "{device}"\nreceiver = "{receiver}"\nmodes = {modes}\n{extra}'
            f'[[modules.meters]]\nid = "12345678"\nmanufacturer = "KAM"\n{key_line}',
        )
    )
    return config.load(path)


def running(settings: config.Settings) -> AbstractAsyncContextManager[RecordingGateway]:
    """A RecordingGateway serving until the block ends."""
    return serving(RecordingGateway(settings))


@contextlib.asynccontextmanager
async def emulated_pty(
    path: Path, device: Device, transmitter: OmnipowerTransmitter, **options: Any
) -> AsyncIterator[asyncio.Task[None]]:
    """The emulator on a pty linked at ``path``; leaving unplugs it."""
    async with open_pty(str(path)) as (link, _):
        emulator = serve(
            link,
            device,
            transmitter,
            interval_s=INTERVAL_S,
            step_s=STEP_S,
            wait_for_host=True,
            **options,
        )
        async with background(emulator) as task:
            yield task


def value(gateway: Gateway, code: str, meter: str = "main") -> Any:
    register = gateway.engines[meter].registers.get(code)
    return None if register is None else register.value


def events(data_dir: Path, kind: str) -> list[Any]:
    store = Store(data_dir / "gateway.db")
    try:
        return [event for _, event in store.events("main", kind=kind)]
    finally:
        store.close()


def state(data_dir: Path, key: str) -> Any:
    store = Store(data_dir / "gateway.db")
    try:
        blob = store.get_state("radio", key)
    finally:
        store.close()
    return json.loads(blob) if blob else None


async def test_im871a_over_a_pty_into_the_engine(tmp_path: Path) -> None:
    transmitter = OmnipowerTransmitter(phases=True)
    device = make_device("im871a")
    assert isinstance(device, Im871aDevice)
    tty = tmp_path / "ttyIM871A"
    async with (
        emulated_pty(tty, device, transmitter, count=10, rssi_dbm=-58.0),
        running(write_config(tmp_path, str(tty), "im871a")) as gateway,
    ):
        await until(lambda: len(gateway.samples) == 10)
        await until(
            lambda: value(gateway, "1-0:1.8.0") == Decimal(str(transmitter.import_kwh_sent))
        )
        assert device.link_mode == 0x0A  # C1+T1 combined
        assert value(gateway, "1-0:1.7.0") == round(transmitter.last_power_w)
        assert value(gateway, "1-0:2.8.0") == 0
        assert value(gateway, "1-0:32.7.0") is not None  # per-phase voltage
        assert value(gateway, "rssi_dbm") == Decimal("-58.0")
        sample = gateway.samples[-1]
        assert (sample.source, sample.rssi) == ("radio", -58.0)
        assert sample.raw is not None and sample.raw[0] == len(sample.raw) - 1
        assert gateway.health["radio"].frames_failed == 0


async def test_cul_one_byte_at_a_time_with_line_noise_and_replug(tmp_path: Path) -> None:
    transmitter = OmnipowerTransmitter()
    tty = tmp_path / "ttyACM0"
    settings = write_config(tmp_path, str(tty), "cul")
    async with running(settings) as gateway:
        async with emulated_pty(tty, make_device("cul"), transmitter, chunk=1, noise=True):
            await until(lambda: len(gateway.samples) >= 4)
        # Unplugged: the module loses the link, the supervisor keeps retrying.
        await until(lambda: gateway.health["radio"].restarts >= 1)
        before = len(gateway.samples)
        cul_b = make_device("cul")
        assert isinstance(cul_b, CulDevice)
        async with emulated_pty(tty, cul_b, transmitter, chunk=1):
            await until(lambda: len(gateway.samples) >= before + 3, timeout_s=15)
        assert cul_b.mode == "c"  # brc: C1 and T1
        totals = [s.readings[0].value for s in gateway.samples]
        assert totals == sorted(totals)
        assert gateway.samples[-1].rssi == -67.0
    kinds = {e.kind for e in events(tmp_path, "communication_lost")}
    kinds |= {e.kind for e in events(tmp_path, "communication_restored")}
    assert kinds == {"communication_lost", "communication_restored"}


async def test_raw_hex_over_tcp_with_repeated_telegrams_counted_once(tmp_path: Path) -> None:
    transmitter = OmnipowerTransmitter()
    port = free_port()

    async def handler(link: Link) -> None:
        await serve(
            link,
            make_device("hex"),
            transmitter,
            interval_s=INTERVAL_S,
            step_s=STEP_S,
            count=6,
            copies=3,
        )
        await asyncio.Event().wait()

    server = await serve_tcp(port, handler)
    settings = write_config(tmp_path, f"socket://127.0.0.1:{port}", "hex", modes="[]")
    async with server, running(settings) as gateway:
        await until(lambda: gateway.health["radio"].frames_ok == 6)
        await asyncio.sleep(0.3)  # the copies of the last telegram have arrived by now
        assert len(gateway.samples) == 6 == gateway.health["radio"].frames_ok
        assert value(gateway, "1-0:1.8.0") == Decimal(str(transmitter.import_kwh_sent))
    (row,) = state(tmp_path, "heard")
    assert (row["id"], row["meter"], row["telegrams"], row["duplicates"]) == (
        "12345678",
        "main",
        6,
        12,
    )


async def test_a_wrong_key_gives_exactly_one_clear_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tty = tmp_path / "ttyUSB0"
    settings = write_config(tmp_path, str(tty), "amb8465", key=WRONG_KEY)
    transmitter = OmnipowerTransmitter()
    async with (
        emulated_pty(tty, make_device("amb8465"), transmitter, count=6),
        running(settings) as gateway,
    ):
        await until(lambda: gateway.health["radio"].frames_failed == 6)
        assert gateway.samples == []
    # A restart with the same wrong key does not repeat it.
    async with (
        emulated_pty(tty, make_device("amb8465"), transmitter, count=4),
        running(settings) as gateway,
    ):
        await until(lambda: gateway.health["radio"].frames_failed == 4)
    (event,) = events(tmp_path, "decryption_failed")
    assert event.meter == "main"
    assert event.data["wmbus_id"] == "12345678" and event.data["code"] == "wrong_key"
    assert "KAM 12345678" in event.detail
    assert "check the key" in event.detail.lower()
    assert "another key" in event.detail
    for secret in (WRONG_KEY, DEMO_KEY):
        for text in (secret.hex(), secret.hex().upper()):
            assert text not in caplog.text
            assert text not in event.detail + json.dumps(dict(event.data))
    # The right key: values flow, and no new failure is reported.
    settings = write_config(tmp_path, str(tty), "amb8465")
    async with (
        emulated_pty(tty, make_device("amb8465"), transmitter, count=3),
        running(settings) as gateway,
    ):
        await until(lambda: len(gateway.samples) == 3)
    assert len(events(tmp_path, "decryption_failed")) == 1


async def test_a_compact_frame_right_after_a_restart_decodes(tmp_path: Path) -> None:
    # Per-phase records make a format no meter is pre-seeded with: only a full frame teaches it.
    transmitter = OmnipowerTransmitter(phases=True, full_every=1000)
    tty = tmp_path / "ttyUSB1"
    settings = write_config(tmp_path / "a", str(tty), "iu891a")
    async with (
        emulated_pty(tty, make_device("iu891a"), transmitter, count=3),
        running(settings) as gateway,
    ):
        await until(lambda: len(gateway.samples) == 3)

    def compact() -> bytes:
        return transmitter.telegram(STEP_S, compact=True)

    async with (
        emulated_pty(tty, make_device("iu891a"), transmitter, count=1, telegram=compact),
        running(settings) as gateway,
    ):
        await until(lambda: len(gateway.samples) == 1)
        assert gateway.health["radio"].frames_failed == 0
        assert value(gateway, "1-0:72.7.0") is not None
        assert value(gateway, "1-0:1.8.0") == Decimal(str(transmitter.import_kwh_sent))
    # Without the persisted cache the same kind of frame cannot be decoded.
    fresh = write_config(tmp_path / "b", str(tty), "iu891a")
    async with (
        emulated_pty(tty, make_device("iu891a"), transmitter, count=1, telegram=compact),
        running(fresh) as gateway,
    ):
        await until(lambda: gateway.health["radio"].frames_failed == 1)
        assert "not seen before" in (gateway.health["radio"].last_error or "")
        assert gateway.samples == []


async def test_unknown_addresses_are_counted_not_decoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    # A fixed start: an unencrypted telegram has no access number, so two telegrams of a quiet
    # household minute may be byte-identical (and rightly dropped as a duplicate).
    start = datetime(2026, 1, 14, 18, 0, tzinfo=UTC)
    ours = OmnipowerTransmitter(start=start)
    stranger = OmnipowerTransmitter(meter_id="87654321", key=None, start=start, seed=7)
    turn = [0]

    def alternate() -> bytes:
        turn[0] += 1
        return (ours if turn[0] % 2 else stranger).telegram(STEP_S)

    tty = tmp_path / "ttyUSB2"
    async with (
        emulated_pty(tty, make_device("im871a"), ours, count=8, telegram=alternate),
        running(write_config(tmp_path, str(tty), "im871a", modes='["T1"]')) as gateway,
    ):
        await until(lambda: gateway.health["radio"].frames_ok == 8)
        assert len(gateway.samples) == 4
        assert {s.meter for s in gateway.samples} == {"main"}
        assert value(gateway, "1-0:1.8.0") == Decimal(str(ours.import_kwh_sent))
        detail = gateway.health["radio"].detail
        assert detail["telegrams"] == {"decoded": 4, "unknown": 4}
        assert detail["meters_heard"] == 2
    rows = {row["id"]: row for row in state(tmp_path, "heard")}
    assert rows["87654321"]["meter"] is None and rows["87654321"]["telegrams"] == 4
    assert rows["12345678"]["meter"] == "main"
    assert caplog.text.count("heard KAM 87654321") == 1
    # `meter-gateway listen --heard` shows the same table from the store, radio untouched.
    assert listen.main(["--config", str(tmp_path / "gateway.toml"), "--heard", "--json"]) == 0
    shown = {row["id"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert shown["87654321"]["meter"] is None and shown["87654321"]["telegrams"] == 4
    assert shown["12345678"]["meter"] == "main"
