"""Emulators: a P1 port (DSMR 5, smarty-encrypted with --key), a HAN port pushing DLMS, and a
DLMS server answering AARQ/GET/ACTION over the TCP wrapper or HDLC.

    meter-gateway simulate p1 --link ./ttyP1                  # DSMR 5 every second
    meter-gateway simulate p1 --format dlms --key 00..0F --auth-key D0..DF --link ./ttyHAN
    meter-gateway simulate dlms --tcp 4059 --password 12345678
    meter-gateway simulate dlms --tcp 4059 --key 00..0F --auth-key D0..DF     # ciphered only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.errors import ConnectionLost
from gateway.transport import Link, open_pty, serve_tcp, write_slowly
from modules.codecs.dlms.hdlc import WRAPPER_VERSION, encode_wrapper, parse_frame
from modules.codecs.dlms.stream import HanSplitter
from modules.codecs.dsmr.telegram import SMARTY_AUTH_KEY, encrypt_telegram
from modules.codecs.errors import FrameError
from modules.dlms.server import CosemServer, HdlcResponder
from modules.p1.config import parse_key
from modules.p1.meter_model import EmulatedMeter, HanPush, cosem_objects, dsmr5_telegram

__all__ = ["P1Emitter", "dlms_main", "p1_main", "serve_dlms"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_SYSTEM_TITLE = b"KAM\x00\x00\xbc\x61\x4e"
SMARTY_SYSTEM_TITLE = b"SAG\x10\x03\x08\x55\x22"


class P1Emitter:
    """Writes telegrams (DSMR) or pushes (DLMS) for one meter to a link, as a meter would."""

    def __init__(
        self,
        meter: EmulatedMeter,
        *,
        format: str = "dsmr",
        key: bytes | None = None,
        auth_key: bytes | None = None,
        system_title: bytes | None = None,
        frame_counter: int = 1,
        zone: str = "UTC",
    ) -> None:
        self.meter = meter
        self.format = format
        self.key = key
        self.auth_key = auth_key
        self.frame_counter = frame_counter
        default_title = DEFAULT_SYSTEM_TITLE if format == "dlms" else SMARTY_SYSTEM_TITLE
        self.system_title = system_title or default_title
        self._push = HanPush(
            meter,
            zone=ZoneInfo(zone),
            key=key,
            auth_key=auth_key,
            system_title=self.system_title,
            frame_counter=frame_counter,
        )

    def frame(self, now: datetime | None = None) -> bytes:
        """The next telegram or push frame (ciphered ones advance the frame counter)."""
        now = now or datetime.now(UTC)
        if self.format == "dlms":
            self._push.frame_counter = self.frame_counter
            frame = self._push.frame(now)
            self.frame_counter = self._push.frame_counter
            return frame
        telegram = dsmr5_telegram(self.meter, now)
        if self.key is None:
            return telegram
        frame = encrypt_telegram(
            telegram,
            key=self.key,
            system_title=self.system_title,
            frame_counter=self.frame_counter,
            auth_key=self.auth_key or SMARTY_AUTH_KEY,
        )
        self.frame_counter += 1
        return frame

    async def run(
        self, link: Link, *, interval_s: float, count: int = 0, byte_delay_s: float = 0.0
    ) -> None:
        """Send ``count`` frames (0: forever), ``interval_s`` apart."""
        sent = 0
        while count == 0 or sent < count:
            await write_slowly(link, self.frame(), byte_delay_s)
            sent += 1
            await asyncio.sleep(interval_s)
            self.meter.advance(interval_s)


async def serve_dlms(link: Link, server: CosemServer, *, transport: str, address: int = 1) -> None:
    """Answer a client on ``link`` until it goes away: wrapper PDUs or HDLC frames."""
    if transport == "wrapper":
        while True:
            header = await link.read_exactly(8)
            if int.from_bytes(header[:2], "big") != WRAPPER_VERSION:
                raise ConnectionLost("not a wrapper PDU")
            client = int.from_bytes(header[2:4], "big")
            body = await link.read_exactly(int.from_bytes(header[6:8], "big"))
            answer = server.handle(body)
            await link.write(encode_wrapper(answer, source=address, destination=client))
    responder = HdlcResponder(server, address=address)
    splitter = HanSplitter()
    while True:
        for item in splitter.feed(await link.read()):
            if isinstance(item, FrameError):
                continue
            for reply in responder.receive(parse_frame(item)):
                await link.write(reply)


def p1_main(argv: list[str]) -> int:
    """``meter-gateway simulate p1``: a P1 port (DSMR 5) or a HAN port (DLMS pushes)."""
    parser = argparse.ArgumentParser(prog="meter-gateway simulate p1", description=__doc__)
    _place(parser, "./ttyP1")
    parser.add_argument("--format", choices=("dsmr", "dlms"), default="dsmr")
    parser.add_argument("--interval", type=float, default=None, help="seconds between frames")
    parser.add_argument("--count", type=int, default=0, help="frames to send (0: forever)")
    parser.add_argument("--key", help="hex AES key: smarty key, or the DLMS GUEK")
    parser.add_argument("--auth-key", help="hex DLMS GAK (smarty: the fixed default)")
    parser.add_argument("--system-title", help="hex, 8 bytes")
    parser.add_argument("--frame-counter", type=int, default=1)
    parser.add_argument("--timezone", default="UTC", help="the HAN meter's local time zone")
    parser.add_argument("--byte-delay", type=float, default=0.0, help="seconds between bytes")
    args = parser.parse_args(argv)
    try:
        key = parse_key(args.key, "--key") if args.key else None
        auth_key = parse_key(args.auth_key, "--auth-key") if args.auth_key else None
        title = bytes.fromhex(args.system_title) if args.system_title else None
    except ValueError as err:
        parser.error(str(err))
    interval = args.interval or (1.0 if args.format == "dsmr" else 10.0)
    emitter = P1Emitter(
        EmulatedMeter(),
        format=args.format,
        key=key,
        auth_key=auth_key,
        system_title=title,
        frame_counter=args.frame_counter,
        zone=args.timezone,
    )

    async def serve(link: Link) -> None:
        await emitter.run(link, interval_s=interval, count=args.count, byte_delay_s=args.byte_delay)

    return _run(args, serve, f"{args.format.upper()} every {interval:g} s")


def dlms_main(argv: list[str]) -> int:
    """``meter-gateway simulate dlms``: a DLMS server over the TCP wrapper or HDLC on a pty."""
    parser = argparse.ArgumentParser(prog="meter-gateway simulate dlms", description=__doc__)
    _place(parser, "./ttyDLMS", tcp_default=None)
    parser.add_argument("--password", default="12345678", help="LLS secret for ACTION")
    parser.add_argument("--address", type=int, default=1, help="server logical address / wport")
    parser.add_argument("--key", help="GUEK (hex): only ciphered associations (LLS or HLS-GMAC)")
    parser.add_argument("--auth-key", help="GAK (hex), with --key")
    args = parser.parse_args(argv)
    keys = None
    if args.key:
        auth_key = parse_key(args.auth_key, "--auth-key") if args.auth_key else None
        keys = (parse_key(args.key, "--key"), auth_key)
    meter = EmulatedMeter()
    transport = "wrapper" if args.tcp else "hdlc"

    async def serve(link: Link) -> None:
        server = CosemServer(cosem_objects(meter), password=args.password.encode(), keys=keys)
        await serve_dlms(link, server, transport=transport, address=args.address)

    return _run(args, serve, f"DLMS server ({transport})")


def _place(parser: argparse.ArgumentParser, link: str, tcp_default: int | None = None) -> None:
    parser.add_argument("--link", default=link, help="symlink to the pty the gateway opens")
    parser.add_argument("--tcp", type=int, default=tcp_default, help="serve on this TCP port")


def _run(args: argparse.Namespace, serve: Callable[[Link], Awaitable[None]], what: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def main() -> None:
        if args.tcp:
            server = await serve_tcp(args.tcp, serve, host="0.0.0.0")
            sys.stdout.write(f"{what} on tcp://0.0.0.0:{args.tcp}\n")
            sys.stdout.flush()
            async with server:
                await server.serve_forever()
        async with open_pty(args.link) as (link, path):
            sys.stdout.write(f"{what} on {path}\n")
            sys.stdout.flush()
            try:
                await serve(link)
            except ConnectionLost as err:
                _LOGGER.info("stopped: %s", err)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0
