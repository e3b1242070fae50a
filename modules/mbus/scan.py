"""``meter-gateway scan``: find the meters on a wired M-Bus, by primary and secondary address.

Primary: SND_NKE to each address in 0..250; an ACK means a meter, a REQ_UD2 then tells which
one. Secondary: select with wildcards (F digits) and narrow digit by digit wherever several
meters answered at once (libmbus's search): probe the pattern; no answer -> nobody there; one
ACK -> read who it is; a collision -> fix the first wildcard digit to 0..9 and probe each.
Progress goes to stderr, the result to stdout as a table or JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, TextIO

from gateway.errors import AdapterError
from gateway.transport import SerialSettings, open_link
from modules.codecs.errors import FrameError
from modules.codecs.mbus.frames import BROADCAST_ADDRESS, NETWORK_LAYER_ADDRESS, SecondaryAddress
from modules.mbus.config import BAUD_RATES, MAX_PRIMARY_ADDRESS
from modules.mbus.master import Master, NoAnswer

__all__ = ["Found", "Scanner", "main"]

ID_DIGITS = 8
# Progress lines on a non-terminal stderr (a log file) come at most this often.
PROGRESS_EVERY_S = 1.0


@dataclass
class Found:
    """One meter on the bus."""

    secondary_address: str
    id: str
    manufacturer: str | None
    version: int | None
    medium: str | None
    primary: int | None
    found_by: list[str] = field(default_factory=list)


class Progress:
    """One updating line on a terminal, occasional lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = float("-inf")  # not 0: the monotonic clock counts from boot

    def show(self, text: str, *, force: bool = False) -> None:
        """Say where the scan is."""
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
        elif force or time.monotonic() - self._last >= PROGRESS_EVERY_S:
            self._last = time.monotonic()
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self, text: str) -> None:
        """End the progress line with a summary."""
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()


class Scanner:
    """Primary and secondary searches over one master."""

    def __init__(self, master: Master, progress: Progress, *, attempts: int = 1) -> None:
        self.master = master
        self.progress = progress
        self.attempts = attempts
        self.found: dict[str, Found] = {}
        self.collisions: list[str] = []
        self.probes = 0

    async def primary(self, first: int = 0, last: int = MAX_PRIMARY_ADDRESS) -> None:
        """SND_NKE to each primary address; identify whoever acknowledges."""
        for address in range(first, last + 1):
            self.progress.show(f"primary {address}/{last}, {len(self.found)} found")
            try:
                await self.master.reset(address)
            except NoAnswer:
                continue
            except FrameError:
                self.collisions.append(f"primary address {address}: several meters answer")
                self.progress.show(f"primary {address}: collision", force=True)
                continue
            await self._identify(address, "primary")
        self.progress.done(f"primary scan {first}..{last}: {len(self.found)} meter(s)")

    async def secondary(self, mask: str = "F" * 16) -> None:
        """Wildcard search for secondary addresses under ``mask`` (libmbus's 16 hex digits)."""
        await self.master.reset(BROADCAST_ADDRESS)
        await self._search(SecondaryAddress.parse(mask))
        self.progress.done(
            f"secondary search: {sum('secondary' in f.found_by for f in self.found.values())}"
            f" meter(s) in {self.probes} probes"
        )

    async def _search(self, pattern: SecondaryAddress) -> None:
        self.probes += 1
        self.progress.show(f"secondary {pattern}: probe {self.probes}, {len(self.found)} found")
        result = await self.master.select(pattern, attempts=self.attempts)
        if result == "none":
            return
        if result == "one":
            await self._identify(NETWORK_LAYER_ADDRESS, "secondary")
            return
        position = pattern.id.upper().find("F")
        if position < 0:
            self.collisions.append(f"{pattern}: meters share this id; narrow by M/V/T by hand")
            return
        self.progress.show(f"secondary {pattern}: collision, narrowing", force=True)
        for digit in "0123456789":
            narrower = pattern.id[:position] + digit + pattern.id[position + 1 :]
            await self._search(
                SecondaryAddress(narrower, pattern.manufacturer, pattern.version, pattern.medium)
            )

    async def _identify(self, address: int, how: str) -> None:
        """Read the meter's header with one REQ_UD2, then reset it (and end a selection)."""
        try:
            readout = await self.master.read(address, fcb=True, max_telegrams=1)
        except (NoAnswer, FrameError) as err:
            self.collisions.append(f"address {address}: acknowledged but no data ({err})")
            return
        finally:
            # If the reset fails the meter keeps its readout position; nothing depends on it.
            with contextlib.suppress(NoAnswer, FrameError):
                await self.master.reset(address)
        decoded = readout.telegrams[0]
        meter = decoded.meter
        secondary = str(meter.get("secondary_address") or f"address-{decoded.frame['a']}")
        entry = self.found.get(secondary)
        if entry is None:
            entry = Found(
                secondary,
                str(meter.get("id", "")),
                meter.get("manufacturer"),
                meter.get("version"),
                meter.get("medium"),
                decoded.frame["a"],
            )
            self.found[secondary] = entry
            self.progress.show(f"found {secondary} at primary {entry.primary}", force=True)
        if how not in entry.found_by:
            entry.found_by.append(how)


def main(argv: list[str]) -> int:
    """Scan a bus; exit 0 when at least one meter was found, 1 when none, 2 on link errors."""
    parser = argparse.ArgumentParser(
        prog="meter-gateway scan", description="find the meters on a wired M-Bus"
    )
    parser.add_argument("url", nargs="?", help="tty path, socket://host:port or tcp://host:port")
    parser.add_argument("--url", dest="url_option", metavar="URL", help="the same, as an option")
    parser.add_argument("--baudrate", type=int, default=2400, choices=BAUD_RATES)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--primary", action="store_true", help="only the primary scan")
    kind.add_argument("--secondary", action="store_true", help="only the secondary search")
    parser.add_argument("--first", type=int, default=0, help="first primary address (0)")
    parser.add_argument("--last", type=int, default=MAX_PRIMARY_ADDRESS, help="last (250)")
    parser.add_argument("--mask", default="F" * 16, help="secondary search under this mask")
    parser.add_argument("--echo", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--retries", type=int, default=1, help="extra tries per probe (1)")
    parser.add_argument("--latency", type=float, default=0.1, help="added to timeouts (s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    args.url = args.url_option or args.url
    if not args.url:
        parser.error("say where the bus is: URL or --url URL")
    if not 0 <= args.first <= args.last <= MAX_PRIMARY_ADDRESS:
        parser.error("--first and --last must satisfy 0 <= first <= last <= 250")
    try:
        SecondaryAddress.parse(args.mask)
    except ValueError as err:
        parser.error(str(err))
    mode: Literal["primary", "secondary", "both"] = (
        "primary" if args.primary else "secondary" if args.secondary else "both"
    )
    try:
        scanner = asyncio.run(_scan(args, mode))
    except AdapterError as err:
        sys.stderr.write(f"scan failed: {err}\n")
        return 2
    sys.stdout.write(_as_json(scanner) if args.json else _as_table(scanner))
    return 0 if scanner.found else 1


async def _scan(args: argparse.Namespace, mode: str) -> Scanner:
    echo: bool | Literal["auto"] = "auto" if args.echo == "auto" else args.echo == "yes"
    line = SerialSettings(baudrate=args.baudrate, bytesize=8, parity="E", stopbits=1)
    async with open_link(args.url, line) as link:
        master = Master(
            link,
            baudrate=args.baudrate,
            echo=echo,
            latency_s=args.latency,
            retries=args.retries,
        )
        scanner = Scanner(master, Progress(sys.stderr), attempts=args.retries + 1)
        if mode in ("primary", "both"):
            await scanner.primary(args.first, args.last)
        if mode in ("secondary", "both"):
            await scanner.secondary(args.mask)
    return scanner


def _as_json(scanner: Scanner) -> str:
    found = sorted(scanner.found.values(), key=lambda f: f.secondary_address)
    document = {"devices": [asdict(f) for f in found], "collisions": scanner.collisions}
    return json.dumps(document, indent=2) + "\n"


def _as_table(scanner: Scanner) -> str:
    header = ("primary", "secondary", "id", "man", "ver", "medium", "found by")
    rows = [header] + [
        (
            "" if f.primary is None else str(f.primary),
            f.secondary_address,
            f.id,
            f.manufacturer or "",
            "" if f.version is None else str(f.version),
            f.medium or "",
            ", ".join(f.found_by),
        )
        for f in sorted(scanner.found.values(), key=lambda f: (f.primary or 0, f.id))
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines += [f"note: {text}" for text in scanner.collisions]
    if not scanner.found:
        lines.append("no meter answered")
    return "\n".join(lines) + "\n"
