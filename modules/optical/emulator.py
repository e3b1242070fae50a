"""The meter side of the optical port: a simulated 382 answering KMP or IEC 62056-21.

``meter-gateway simulate kmp [--pty PATH | --tcp PORT] [--echo]`` and ``simulate iec62056-21``.
On a pty the emulator's end cannot change speed, so an IEC baud switch is a no-op there; the
option select is still parsed and honoured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from gateway.errors import ConnectionLost
from gateway.transport import Link, open_pty, serve_tcp, write_slowly
from modules.codecs.errors import FrameError
from modules.codecs.iec62056_21 import messages as iec
from modules.codecs.kmp import commands as kmp
from modules.codecs.kmp.frame import START_TO_METER, FrameSplitter
from modules.optical.meter_model import Simulated382

__all__ = ["IecEmulator", "iec_main", "kmp_main", "serve_kmp"]

_LOGGER = logging.getLogger(__name__)

# IEC 62056-21: a meter waits at least tr = 200 ms before it answers; tests may shorten it.
IEC_REACTION_S = 0.2
_SOH, _ETX = 0x01, 0x03


async def serve_kmp(
    link: Link, meter: Simulated382, *, echo: bool = False, byte_delay_s: float = 0.0
) -> None:
    """Answer KMP requests on a link until it closes; an IR head's echo is imitated."""
    splitter = FrameSplitter()
    while True:
        chunk = await link.read()
        if echo:
            await link.write(chunk)
        for raw in splitter.feed(chunk):
            if raw[0] != START_TO_METER:
                continue
            try:
                request = kmp.decode(raw)
            except FrameError as err:
                # A real meter stays silent on a garbled request; the master times out.
                _LOGGER.debug("kmp emulator: ignoring %s (%s)", raw.hex(), err)
                continue
            reply = _kmp_answer(meter, request)
            if reply is not None:
                address = kmp.decode_frame(raw).address
                await write_slowly(link, kmp.encode(reply, address=address), byte_delay_s)


def _kmp_answer(meter: Simulated382, request: kmp.Message) -> kmp.Message | None:
    if isinstance(request, kmp.GetRegisterRequest):
        return kmp.GetRegisterResponse(
            tuple(
                kmp.RegisterValue(register, unit, value, length=_length(value))
                for register, unit, value in meter.kmp_registers(request.registers)
            )
        )
    if isinstance(request, kmp.GetSerialNoRequest):
        return kmp.GetSerialNoResponse(meter.serial)
    if isinstance(request, kmp.GetTypeRequest):
        return kmp.GetTypeResponse(0x0382, "A1")  # a made-up type code: this is no real meter
    if isinstance(request, kmp.SetClockRequest):
        meter.set_clock(request.at)
        return kmp.Ack()
    return None


def _length(value: object) -> int | None:
    """Four mantissa bytes as the 382 sends them, more only when the value needs it."""
    try:
        kmp.encode_number(value, length=4)  # type: ignore[arg-type]
    except ValueError:
        return None
    return 4


class IecEmulator:
    """Answers IEC 62056-21 sign-ons with an identification and a data readout (mode A or C)."""

    def __init__(
        self,
        meter: Simulated382,
        *,
        mode: str = "C",
        baud_char: str = "5",
        identification: str = "382L7",
        echo: bool = False,
        byte_delay_s: float = 0.0,
    ) -> None:
        self.meter = meter
        self.mode = mode
        self.baud_char = baud_char if mode == "C" else " "
        self.identification = identification
        self.echo = echo
        self.byte_delay_s = byte_delay_s

    async def serve(self, link: Link) -> None:
        """Answer on a link until it closes."""
        buffer = bytearray()
        waiting_for_option = False
        while True:
            chunk = await link.read()
            if self.echo:
                await link.write(chunk)
            buffer += chunk
            while (line := _take_message(buffer)) is not None:
                if line.startswith(b"/?") and self._addressed(line):
                    await asyncio.sleep(IEC_REACTION_S)
                    ident = iec.Identification("KAM", self.baud_char, self.identification)
                    await write_slowly(link, iec.encode(ident), self.byte_delay_s)
                    waiting_for_option = self.mode == "C"
                    if self.mode == "A":
                        await self._readout(link)
                elif line[:1] == b"\x06" and waiting_for_option:
                    waiting_for_option = False
                    self.meter.option_selects.append(line[1:4].decode("latin-1"))
                    if line[3:4] == b"0":  # data readout; programming mode is not emulated
                        await asyncio.sleep(IEC_REACTION_S)
                        await self._readout(link)

    def _addressed(self, line: bytes) -> bool:
        address = line[2 : line.find(b"!")].decode("latin-1")
        return address in ("", str(self.meter.serial))

    async def _readout(self, link: Link) -> None:
        data_sets = tuple(
            (iec.DataSet.of(address, value, unit),)
            for address, value, unit in self.meter.iec_data()
        )
        message = iec.DataMessage(lines=data_sets, end=True, framed=True)
        await write_slowly(link, iec.encode(message), self.byte_delay_s)


def _take_message(buffer: bytearray) -> bytes | None:
    """Cut the next line (CR LF) or break command (SOH B0 ETX BCC) off the buffer."""
    while buffer and buffer[0] not in b"/\x06\x01":
        del buffer[:1]  # noise and stray line ends between messages
    if buffer[:1] == bytes((_SOH,)):
        etx = buffer.find(_ETX)
        if etx < 0 or etx + 1 >= len(buffer):
            return None
        message = bytes(buffer[: etx + 2])
        del buffer[: etx + 2]
        return message
    end = buffer.find(b"\n")
    if end < 0:
        return None
    message = bytes(buffer[: end + 1])
    del buffer[: end + 1]
    return message


# ---------------------------------------------------------------- command line


def _parser(protocol: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"meter-gateway simulate {protocol}",
        description=f"a simulated Kamstrup 382 answering {protocol} on a pty or a TCP port",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pty", metavar="PATH", help="symlink to a new pty here (default)")
    where.add_argument("--tcp", metavar="PORT", type=int, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--echo", action="store_true", help="echo every byte, as an IR head")
    parser.add_argument(
        "--byte-delay-s", type=float, default=0.0, help="send replies one byte at a time"
    )
    parser.add_argument("--serial", type=int, default=5_382_001, help="meter serial number")
    parser.add_argument("--timezone", default="UTC", help="zone of the meter's wall clock")
    parser.add_argument(
        "--clock-offset-s", type=float, default=0.0, help="meter clock minus real time"
    )
    parser.add_argument("--pv-kwp", type=float, default=0.0, help="rooftop PV (export at noon)")
    parser.add_argument("--seed", type=int, default=382, help="household model seed")
    if protocol == "iec62056-21":
        parser.add_argument("--mode", choices=("A", "C"), default="C", help="protocol mode")
        parser.add_argument("--baud-char", default="5", help="mode C speed offered (5: 9600)")
    return parser


def _meter(args: argparse.Namespace) -> Simulated382:
    return Simulated382(
        serial=args.serial,
        zone=ZoneInfo(args.timezone),
        clock_offset_s=args.clock_offset_s,
        pv_kwp=args.pv_kwp,
        seed=args.seed,
    )


async def _serve(args: argparse.Namespace, handler: Callable[[Link], Awaitable[None]]) -> None:
    if args.tcp is not None:
        server = await serve_tcp(args.tcp, handler)
        async with server:
            print(f"listening on tcp://127.0.0.1:{args.tcp}", flush=True)  # noqa: T201
            await server.serve_forever()
    async with open_pty(args.pty) as (link, path):
        print(f"serving on {path}", flush=True)  # noqa: T201
        with contextlib.suppress(ConnectionLost):
            await handler(link)


def _main(protocol: str, argv: list[str]) -> int:
    args = _parser(protocol).parse_args(argv)
    meter = _meter(args)
    handler: Callable[[Link], Awaitable[None]]
    if protocol == "kmp":

        async def handler(link: Link) -> None:
            await serve_kmp(link, meter, echo=args.echo, byte_delay_s=args.byte_delay_s)

    else:
        handler = IecEmulator(
            meter,
            mode=args.mode,
            baud_char=args.baud_char,
            echo=args.echo,
            byte_delay_s=args.byte_delay_s,
        ).serve
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, handler))
    sys.stdout.flush()
    return 0


def kmp_main(argv: list[str]) -> int:
    """``meter-gateway simulate kmp``: a 382 answering KMP."""
    return _main("kmp", argv)


def iec_main(argv: list[str]) -> int:
    """``meter-gateway simulate iec62056-21``: a 382 giving IEC 62056-21 data readouts."""
    return _main("iec62056-21", argv)
