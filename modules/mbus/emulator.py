"""``meter-gateway simulate mbus``: Kamstrup 382L meters on an emulated wired M-Bus.

Each meter measures its own simulated household (modules/sim/household.py) and answers
REQ_UD2 with the registers a 382L's M-Bus module reports, split over several telegrams when
they do not fit in one. The bus side (modules/mbus/slave.py) does SND_NKE, the FCB, secondary
selection with wildcards and collisions; this module adds the line: a pty or a TCP port, an
optional echo (a level converter that echoes), slow one-byte writes and lost answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from gateway.errors import ConnectionLost
from gateway.model import utc_now
from gateway.transport import Link, open_pty, serve_tcp, write_slowly
from modules.codecs.errors import FrameError, IncompleteFrame
from modules.codecs.mbus.encode import DataRecord, obis_record
from modules.codecs.mbus.frames import SecondaryAddress, split_frame
from modules.mbus.slave import Bus, Slave
from modules.sim.household import Household

__all__ = ["Line", "SimulatedMeter", "build_bus", "main", "serve"]

_LOGGER = logging.getLogger(__name__)

MANUFACTURER = "KAM"
VERSION = 0x01  # as the 382's M-Bus module (6850-005) reports itself
MEDIUM_ELECTRICITY = 0x02
DEFAULT_SECONDARY = "38200001"
_KWH_STEP = Decimal("0.01")  # the 382L's M-Bus energy registers count 10 Wh
_T2_HOURS = range(22, 24), range(6)  # night tariff, for the two tariff registers
REOPEN_DELAY_S = 0.2  # between a lost pty and the next one: no busy loop on a broken pty


@dataclass
class SimulatedMeter:
    """A 382L's registers, integrated from a household model at wall-clock time x ``speed``."""

    serial: int
    seed: int = 382
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    speed: float = 1.0
    pv_kwp: float = 0.0
    start_kwh: float = 4321.0
    household: Household = field(init=False)
    totals_wh: list[float] = field(init=False)
    tariff_wh: list[float] = field(init=False)
    _started: float = field(init=False, default_factory=time.monotonic)
    _origin: datetime = field(init=False, default_factory=utc_now)
    _last: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.household = Household(seed=self.seed, pv_kwp=self.pv_kwp)
        start = self.start_kwh * 1000.0
        self.totals_wh = [start, start / 20, start / 4, start / 10]
        self.tariff_wh = [start * 0.7, start * 0.3]
        self._last = self._origin

    def now(self) -> datetime:
        """The meter's clock (UTC): real time since start, times ``speed``."""
        elapsed = (time.monotonic() - self._started) * self.speed
        return self._origin + timedelta(seconds=elapsed)

    def records(self) -> list[DataRecord]:
        """A fresh readout, in the order the 382L's M-Bus module sends its registers."""
        at = self.now()
        local = at.astimezone(self.zone)
        snapshot = self.household.at(local)
        hours = max((at - self._last).total_seconds(), 0.0) / 3600
        self._last = at
        power, reactive = snapshot.power_w, snapshot.reactive_var
        for index, flow in enumerate((power, -power, reactive, -reactive)):
            self.totals_wh[index] += max(flow, 0.0) * hours
        night = any(local.hour in span for span in _T2_HOURS)
        self.tariff_wh[1 if night else 0] += max(power, 0.0) * hours
        records = [
            obis_record(code, _kwh(wh))
            for code, wh in zip(
                ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0"), self.totals_wh, strict=True
            )
        ]
        records += [
            obis_record(f"1-0:1.8.{t + 1}", _kwh(wh)) for t, wh in enumerate(self.tariff_wh)
        ]
        records += [
            obis_record("1-0:1.7.0", round(max(power, 0.0))),
            obis_record("1-0:2.7.0", round(max(-power, 0.0))),
            obis_record("1-0:3.7.0", round(max(reactive, 0.0))),
            obis_record("1-0:4.7.0", round(max(-reactive, 0.0))),
        ]
        for phase, (power_c, voltage_c, current_c) in zip(
            snapshot.phases, ((21, 32, 31), (41, 52, 51), (61, 72, 71)), strict=True
        ):
            records += [
                obis_record(f"1-0:{voltage_c}.7.0", round(Decimal(phase.voltage_v), 1)),
                obis_record(f"1-0:{current_c}.7.0", round(Decimal(phase.current_a), 2)),
                obis_record(f"1-0:{power_c}.7.0", round(max(phase.power_w, 0.0))),
            ]
        records += [
            obis_record("1-0:14.7.0", round(Decimal(snapshot.frequency_hz), 2)),
            DataRecord(b"\x22", int((at - self._origin).total_seconds() // 3600), "int32"),
            DataRecord(b"\x6d", local.replace(tzinfo=None, second=0, microsecond=0), "datetime_f"),
            DataRecord(b"\x78", self.serial, "bcd8"),
        ]
        return records


def _kwh(wh: float) -> Decimal:
    return (Decimal(repr(wh)) / 1000).quantize(_KWH_STEP, rounding=ROUND_FLOOR)


def build_bus(
    count: int = 1,
    *,
    address: int = 1,
    secondaries: list[str] | None = None,
    records_per_telegram: int | None = None,
    zone: ZoneInfo | None = None,
    speed: float = 1.0,
    seed: int = 382,
) -> Bus:
    """``count`` meters at primary addresses ``address``, ``address + 1``, ... whose ids are
    ``secondaries`` (8 digits each), continued by counting up from the last one."""
    ids = list(secondaries or [DEFAULT_SECONDARY])
    while len(ids) < count:
        ids.append(f"{int(ids[-1]) + 1:08d}")
    slaves = []
    for index in range(count):
        meter = SimulatedMeter(
            int(ids[index]), seed=seed + index, zone=zone or ZoneInfo("UTC"), speed=speed
        )
        secondary = SecondaryAddress(ids[index], MANUFACTURER, VERSION, MEDIUM_ELECTRICITY)
        slaves.append(
            Slave(
                address + index, secondary, meter.records, records_per_telegram=records_per_telegram
            )
        )
    return Bus(slaves)


@dataclass
class Line:
    """What the line between the master and the bus does to bytes."""

    echo: bool = False  # the level converter sends the master's frame back
    byte_delay_s: float = 0.0  # > 0: answers go out one byte at a time
    loss: float = 0.0  # share of answers garbled on the way (one byte flipped)
    rng: random.Random = field(default_factory=lambda: random.Random(6850))


async def serve(bus: Bus, link: Link, line: Line | None = None) -> None:
    """Answer the master on ``link`` until the link goes away."""
    line = line or Line()
    buffer = bytearray()
    while True:
        buffer += await link.read()
        while buffer:
            try:
                _kind, size = split_frame(bytes(buffer))
            except IncompleteFrame:
                break
            except FrameError:
                del buffer[0]  # not a frame start: slaves resynchronise on the next one
                continue
            frame = bytes(buffer[:size])
            del buffer[:size]
            answer = bus.handle(frame)
            if answer and line.loss and line.rng.random() < line.loss:
                garbled = bytearray(answer)
                garbled[line.rng.randrange(len(garbled))] ^= 0x10
                answer = bytes(garbled)
            if data := (frame if line.echo else b"") + answer:
                await write_slowly(link, data, line.byte_delay_s)


def main(argv: list[str]) -> int:
    """Run the emulator until interrupted; prints where the gateway can reach it."""
    parser = argparse.ArgumentParser(
        prog="meter-gateway simulate mbus", description="Kamstrup 382L meters on a wired M-Bus"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pty", help="a symlink to create for the bus tty (default: print it)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT instead")
    parser.add_argument("--meters", type=int, default=1, help="meters on the bus (default 1)")
    parser.add_argument("--address", type=int, default=1, help="first primary address")
    parser.add_argument(
        "--secondary",
        default=DEFAULT_SECONDARY,
        help="ids (8 digits, comma separated); further meters count up from the last",
    )
    parser.add_argument("--records-per-telegram", type=int, help="force multi-telegram reads")
    parser.add_argument("--echo", action="store_true", help="echo frames like some converters")
    parser.add_argument("--byte-delay", type=float, default=0.0, help="send answers bytewise")
    parser.add_argument("--loss", type=float, default=0.0, help="share of answers garbled")
    parser.add_argument("--speed", type=float, default=1.0, help="meter time acceleration")
    parser.add_argument("--timezone", default="UTC", help="the meters' local time zone")
    parser.add_argument("--seed", type=int, default=382)
    args = parser.parse_args(argv)
    secondaries = [part.strip() for part in args.secondary.split(",") if part.strip()]
    for ident in secondaries:
        if len(ident) != 8 or not ident.isdigit():
            parser.error(f"--secondary {ident!r} is not 8 digits")
    if not 1 <= args.meters <= 250 or not 0 <= args.address <= 250 - (args.meters - 1):
        parser.error("--meters and --address must leave every primary address within 0..250")
    bus = build_bus(
        args.meters,
        address=args.address,
        secondaries=secondaries,
        records_per_telegram=args.records_per_telegram,
        zone=ZoneInfo(args.timezone),
        speed=args.speed,
        seed=args.seed,
    )
    line = Line(echo=args.echo, byte_delay_s=args.byte_delay, loss=args.loss)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(bus, line, args.pty, args.tcp))
    return 0


async def _run(bus: Bus, line: Line, pty: str | None, port: int | None) -> None:
    ids = ", ".join(f"{s.primary}/{s.secondary}" for s in bus.slaves)
    if port is not None:
        server = await serve_tcp(port, lambda link: serve(bus, link, line))
        async with server:
            _announce(
                f"mbus emulator: {len(bus.slaves)} meter(s) [{ids}] on tcp://127.0.0.1:{port}"
            )
            await server.serve_forever()
        return
    while True:  # the gateway closing its end is an unplug; offer a fresh pty
        async with open_pty(pty) as (link, path):
            _announce(f"mbus emulator: {len(bus.slaves)} meter(s) [{ids}] on {path}")
            with contextlib.suppress(ConnectionLost):
                await serve(bus, link, line)
        await asyncio.sleep(REOPEN_DELAY_S)


def _announce(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    _LOGGER.info("%s (started %s)", text, datetime.now(UTC).isoformat(timespec="seconds"))
