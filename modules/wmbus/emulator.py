"""``meter-gateway simulate wmbus``: a Kamstrup Omnipower-like meter and the receiver that hears it.

The meter measures a simulated household (``modules.sim.household``) and transmits like an
Omnipower: ELL (CI 0x8D) with AES-128-CTR around a full frame (CI 0x78) every
``full_every``-th telegram and compact frames (CI 0x79) in between. The receiver side frames
each telegram as the chosen stick would deliver it and answers the host's setup commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.errors import ConnectionLost
from gateway.model import utc_now
from gateway.transport import Link, open_pty, serve_tcp
from modules.codecs.mbus.encode import DataRecord
from modules.codecs.wmbus.tx import build_telegram, omnipower_records
from modules.sim.household import Household
from modules.wmbus.receivers import RECEIVERS, Device, make_device
from modules.wmbus.receivers.cul import CulDevice

__all__ = ["DEMO_KEY", "OmnipowerTransmitter", "main", "serve"]

# The key of the synthetic test vectors; a demo key, never a real meter's.
DEMO_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
DEFAULT_ID = "12345678"
# Omnipower in C1 mode transmits about every 16 s (Kamstrup: "up to 16 s" in C-mode).
DEFAULT_INTERVAL_S = 16.0
# Kamstrup sends a full frame now and then so that a receiver can learn the compact format.
FULL_FRAME_EVERY = 8


class OmnipowerTransmitter:
    """Telegrams of a meter on a simulated household; each call advances simulated time."""

    def __init__(
        self,
        *,
        meter_id: str = DEFAULT_ID,
        key: bytes | None = DEMO_KEY,
        seed: int = 382,
        pv_kwp: float = 0.0,
        phases: bool = False,
        full_every: int = FULL_FRAME_EVERY,
        start: datetime | None = None,
        zone: ZoneInfo | None = None,
        import_wh: float = 0.0,
        export_wh: float = 0.0,
    ) -> None:
        self.meter_id = meter_id
        self.key = key
        self.phases = phases
        self.full_every = max(1, full_every)
        self.household = Household(seed=seed, pv_kwp=pv_kwp)
        self.clock = start or utc_now()
        self.zone = zone or ZoneInfo("Europe/Copenhagen")
        self.import_wh = import_wh
        self.export_wh = export_wh
        self.sent = 0
        self.last_power_w = 0.0

    def telegram(self, step_s: float, *, compact: bool | None = None) -> bytes:
        """The next telegram, ``step_s`` simulated seconds after the previous one."""
        self.clock += timedelta(seconds=step_s)
        snapshot = self.household.at(self.clock.astimezone(self.zone))
        power = snapshot.power_w
        hours = step_s / 3600
        self.import_wh += max(power, 0.0) * hours
        self.export_wh += max(-power, 0.0) * hours
        self.last_power_w = power
        records = omnipower_records(
            int(self.import_wh),
            int(self.export_wh),
            round(max(power, 0.0)),
            round(max(-power, 0.0)),
        )
        if self.phases:
            for number, phase in enumerate(snapshot.phases, start=1):
                records.append(
                    DataRecord(bytes([0xFD, 0xC8, 0xFC, number]), round(phase.voltage_v * 10))
                )
                records.append(
                    DataRecord(bytes([0xFD, 0xD9, 0xFC, number]), round(phase.current_a * 1000))
                )
        if compact is None:
            compact = self.sent % self.full_every != 0
        telegram = build_telegram(
            records,
            meter_id=self.meter_id,
            security="ell_aes_ctr" if self.key is not None else "none",
            key=self.key,
            compact=compact,
            access_number=self.sent & 0xFF,
            session=self.sent,
        )
        self.sent += 1
        return telegram

    @property
    def import_kwh_sent(self) -> float:
        """A+ as the last telegram said it (10 Wh resolution)."""
        return int(self.import_wh) // 10 / 100


async def serve(
    link: Link,
    device: Device,
    transmitter: OmnipowerTransmitter,
    *,
    interval_s: float,
    step_s: float | None = None,
    count: int | None = None,
    chunk: int | None = None,
    copies: int = 1,
    rssi_dbm: float = -67.0,
    noise: bool = False,
    telegram: Callable[[], bytes] | None = None,
    wait_for_host: bool = False,
) -> None:
    """Answer the host and send telegrams on ``link`` until cancelled (or ``count`` sent).

    ``chunk`` splits writes (1 = one byte at a time); ``copies`` repeats each telegram as a
    repeater would; ``noise`` adds garbage between frames, as a bad cable does;
    ``wait_for_host`` holds telegrams back until the host has sent a command (a tty drops
    what arrived before it was opened).
    """
    lock = asyncio.Lock()
    host_seen = asyncio.Event()
    rng = random.Random(7)

    async def write(data: bytes) -> None:
        async with lock:  # a reply never lands inside a telegram
            if not chunk:
                await link.write(data)
                return
            for start in range(0, len(data), chunk):
                await link.write(data[start : start + chunk])

    async def answer() -> None:
        while True:
            reply = device.answer(await link.read())
            if reply:
                await write(reply)
                host_seen.set()

    async def transmit() -> None:
        if wait_for_host:
            await host_seen.wait()
        sent = 0
        while count is None or sent < count:
            await asyncio.sleep(interval_s)
            payload = telegram() if telegram else transmitter.telegram(step_s or interval_s)
            frame = device.indication(payload, rssi_dbm)
            for _ in range(copies):
                await write(frame)
            if noise:
                await write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))))
            sent += 1

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(answer())
            await transmit()
    except* ConnectionLost as lost:
        raise lost.exceptions[0] from None  # the host went away: one plain error for callers


def main(argv: list[str]) -> int:
    """``meter-gateway simulate wmbus [--pty PATH | --tcp PORT] [options]``."""
    args = _parser().parse_args(argv)
    key = None if args.plain else bytes.fromhex(args.key) if args.key else DEMO_KEY
    transmitter = OmnipowerTransmitter(
        meter_id=args.id,
        key=key,
        pv_kwp=args.pv_kwp,
        phases=args.phases,
        full_every=args.full_every,
    )
    where = f"pty {args.pty}" if args.pty else f"tcp port {args.tcp}" if args.tcp else "stdout"
    security = "unencrypted" if key is None else f"ELL AES-128-CTR, key {key.hex().upper()}"
    if key == DEMO_KEY:
        security += " (the demo key)"
    sys.stderr.write(
        f"wM-Bus emulator: KAM {args.id} (Omnipower-like, C1, {security}) as {args.receiver} "
        f"on {where}, every {args.interval:g} s\n"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, transmitter))
    return 0


async def _serve(args: argparse.Namespace, transmitter: OmnipowerTransmitter) -> None:
    options = {
        "interval_s": args.interval,
        "step_s": args.interval * args.speed,
        "count": args.count,
        "chunk": 1 if args.byte_by_byte else None,
        "copies": args.copies,
        "wait_for_host": args.receiver not in ("hex", "rtlwmbus"),
    }
    if args.tcp:

        async def handler(link: Link) -> None:
            await serve(link, _device(args), transmitter, **options)
            await asyncio.Event().wait()  # keep the connection after the last telegram

        server = await serve_tcp(args.tcp, handler, host=args.bind)
        async with server:
            await server.serve_forever()
    elif args.pty:
        async with open_pty(args.pty) as (link, path):
            sys.stderr.write(f"device: {path} (linked at {args.pty})\n")
            await serve(link, _device(args), transmitter, **options)
            await asyncio.Event().wait()
    else:
        device = _device(args)
        sent = 0
        while args.count is None or sent < args.count:
            await asyncio.sleep(args.interval)
            frame = device.indication(transmitter.telegram(args.interval * args.speed), -67.0)
            sys.stdout.buffer.write(frame * args.copies)
            sys.stdout.buffer.flush()
            sent += 1


def _device(args: argparse.Namespace) -> Device:
    device = make_device(args.receiver)
    if args.frame_format and isinstance(device, CulDevice):
        device.frame_format = args.frame_format
    return device


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meter-gateway simulate wmbus",
        description="An Omnipower-like wM-Bus meter heard through an emulated receiver.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pty", help="create a pty and link it at PATH (a tty for the gateway)")
    where.add_argument("--tcp", type=int, help="serve on this TCP port (socket://host:PORT)")
    parser.add_argument("--bind", default="127.0.0.1", help="address for --tcp")
    parser.add_argument("--receiver", default="hex", choices=RECEIVERS)
    parser.add_argument("--key", help="AES key, 32 hex digits (default: the demo key)")
    parser.add_argument("--plain", action="store_true", help="send unencrypted telegrams")
    parser.add_argument("--id", default=DEFAULT_ID, help="the meter's 8-digit address")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated s per real s")
    parser.add_argument("--pv-kwp", type=float, default=0.0, help="rooftop PV (export at noon)")
    parser.add_argument("--phases", action="store_true", help="add per-phase V and A records")
    parser.add_argument("--full-every", type=int, default=FULL_FRAME_EVERY)
    parser.add_argument("--count", type=int, help="stop after this many telegrams")
    parser.add_argument("--copies", type=int, default=1, help="send each telegram N times")
    parser.add_argument("--frame-format", choices=("A", "B"), help="CUL: DLL frame format")
    parser.add_argument("--byte-by-byte", action="store_true", help="write one byte at a time")
    return parser
