"""An asyncio IEC 62056-21 readout over a Link: sign-on, identification, baud switch, data block.

Modes A (no switch), B (the meter's fixed higher speed) and C (we choose with ACK 0Z0). The
codec (modules.codecs.iec62056_21) parses; this module paces the dialogue, switches the line
speed with ``link.set_baudrate`` and skips what an IR head echoes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.adapter import ModuleContext
from gateway.errors import ConnectionLost, FatalAdapterError
from gateway.model import Sample, utc_now
from gateway.transport import Link
from modules.codecs.errors import FrameError
from modules.codecs.iec62056_21.data import obis_key
from modules.codecs.iec62056_21.messages import (
    INITIAL_BAUD,
    MODE_C_BAUD,
    DataMessage,
    Identification,
    OptionSelect,
    SignOn,
    encode,
    parse,
    records,
)
from modules.iec62056_21.config import IecOptions
from modules.iec62056_21.readings import readings
from modules.sessions import LinkConfig

__all__ = ["Readout", "meter_time", "poll", "read_out"]

_LOGGER = logging.getLogger(__name__)

# IEC 62056-21 reaction and monitoring times: the meter answers within tr = 200..1500 ms; the
# sign-on (up to 38 characters) and the identification (up to 38) take 1.3 s each at 300 7E1.
IDENTIFICATION_TIMEOUT_S = 4.5
# The master too must wait tr >= 200 ms before it answers the identification.
REACTION_S = 0.2
# tr max (1.5 s) plus the meter's own speed change before the first byte of the data block.
FIRST_BYTE_TIMEOUT_S = 2.0
# ta: a pause over 1500 ms inside a message ends it (the meter has given up).
INTER_CHARACTER_TIMEOUT_S = 1.5
# A whole readout at 300 baud: ~30 characters/s, so 5 KB of data lines take under 3 minutes.
READOUT_TIMEOUT_S = 180.0
# After a failed readout the meter falls back to 300 baud once the line has been idle this long.
RECOVERY_PAUSE_S = 1.5
# Consecutive failed readouts before the link counts as lost.
READOUT_ATTEMPTS = 3

_STX, _ETX = 0x02, 0x03
_LEADING_NOISE = b"\x00\x7f\xff\r\n "
_BAUD_CHAR = {baud: char for char, baud in MODE_C_BAUD.items()}


@dataclass(frozen=True, slots=True)
class Readout:
    """One data readout as received: the identification, the data block bytes, the speed."""

    identification: Identification
    block: bytes
    baud: int


async def read_out(link: Link, options: IecOptions, initial_baud: int) -> Readout:
    """One sign-on and data readout; the line is back at ``initial_baud`` afterwards."""
    _set_speed(link, initial_baud)
    link.discard_input()
    try:
        async with asyncio.timeout(IDENTIFICATION_TIMEOUT_S):
            await link.write(encode(SignOn(options.address)))
            line = await _identification_line(link)
        identification = parse(line)[0]
        if not isinstance(identification, Identification):
            raise FrameError(f"expected an identification, got {line!r}", offset=0)
        async with asyncio.timeout(READOUT_TIMEOUT_S):
            baud, echo = initial_baud, b""
            if identification.mode == "C":
                target = _target_baud(identification, options, initial_baud, link.is_serial)
                echo = encode(OptionSelect(baud_char=_BAUD_CHAR[target], mode_char="0"))
                await asyncio.sleep(REACTION_S)
                await link.write(echo)
                if target != baud:
                    # The option select must leave the UART at the old speed before the switch.
                    await asyncio.sleep(_on_the_wire_s(len(echo), baud))
                    _set_speed(link, target)
                    baud = target
            elif identification.mode == "B":
                baud = identification.baud  # the meter switches by itself after identifying
                _set_speed(link, baud)
            block = await _data_block(link, echo)
        return Readout(identification, block, baud)
    finally:
        # Best effort only: an error here would replace the one (or the cancellation) in flight,
        # and the next readout sets the speed again anyway.
        with contextlib.suppress(OSError, ValueError):
            link.set_baudrate(initial_baud)


def _set_speed(link: Link, baud: int) -> None:
    """Switch the line speed; a port that refuses the settings is a setup problem."""
    try:
        link.set_baudrate(baud)
    except ValueError as err:
        raise FatalAdapterError(f"{link.url}: cannot switch to {baud} baud: {err}") from err
    except OSError as err:  # the adapter was unplugged
        raise ConnectionLost(f"{link.url}: {err}") from err


def _target_baud(
    identification: Identification, options: IecOptions, initial_baud: int, switchable: bool
) -> int:
    """The mode C speed to ask for: the meter's best within our cap, or stay where we are."""
    if options.baud_switch and switchable:
        cap = min(identification.baud, options.max_baudrate)
        return max(baud for baud in MODE_C_BAUD.values() if baud <= cap)
    return initial_baud if initial_baud in _BAUD_CHAR else INITIAL_BAUD


def _on_the_wire_s(count: int, baud: int) -> float:
    return count * 10 / baud  # 7E1: start, 7 data, parity, stop


async def _identification_line(link: Link) -> bytes:
    """The meter's ``/XXXZ...`` line; our sign-on echoed back and line noise are skipped."""
    while True:
        line = (await link.readline()).lstrip(_LEADING_NOISE)
        if line.startswith(b"/") and not line.startswith(b"/?"):
            return line


async def _data_block(link: Link, echo: bytes) -> bytes:
    """``STX ... ETX BCC`` (or unframed lines up to ``!``), after the echo of what we sent."""
    buffer = bytearray()
    timeout_s = FIRST_BYTE_TIMEOUT_S
    while True:
        async with asyncio.timeout(timeout_s):
            buffer += await link.read()
        timeout_s = INTER_CHARACTER_TIMEOUT_S
        if echo:
            if len(buffer) < len(echo) and echo.startswith(buffer):
                continue
            if buffer.startswith(echo):
                del buffer[: len(echo)]
            echo = b""
        end = _block_end(buffer)
        if end:
            return bytes(buffer[:end])


def _block_end(buffer: bytearray) -> int:
    """Where a complete data block ends in ``buffer``, 0 while it is still arriving."""
    start = len(buffer) - len(buffer.lstrip(_LEADING_NOISE))
    if start == len(buffer):
        return 0
    if buffer[start] == _STX:
        etx = buffer.find(_ETX, start + 1)
        return etx + 2 if 0 <= etx < len(buffer) - 1 else 0
    bang = buffer.find(b"!", start)
    if bang < 0:
        return 0
    newline = buffer.find(b"\n", bang)
    return newline + 1 if newline >= 0 else 0


def meter_time(message: DataMessage, zone: ZoneInfo) -> datetime | None:
    """The meter clock from data sets 0.9.1 (hhmmss) and 0.9.2 (YYMMDD), as UTC."""
    found: dict[tuple[int, int, int], str] = {}
    for record in records(message.data_sets):
        key = obis_key(record.obis)
        if key in ((0, 9, 1), (0, 9, 2)) and isinstance(record.value, str):
            found[key] = "".join(ch for ch in record.value if ch.isdigit())
    clock, day = found.get((0, 9, 1), ""), found.get((0, 9, 2), "")
    if len(clock) != 6 or len(day) not in (6, 7):  # noqa: PLR2004 - hhmmss
        return None
    day = day[-6:]  # a leading century digit ("1YYMMDD") is dropped
    try:
        local = datetime(
            2000 + int(day[:2]),
            int(day[2:4]),
            int(day[4:]),
            int(clock[:2]),
            int(clock[2:4]),
            int(clock[4:]),
        )
    except ValueError:
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


async def poll(link: Link, config: LinkConfig, ctx: ModuleContext) -> None:
    """Take a data readout every ``interval_s`` until cancelled."""
    initial_baud = config.serial_settings().baudrate
    loop = asyncio.get_running_loop()
    failures = 0
    last_at: datetime | None = None
    while True:
        started = loop.time()
        block = b""
        try:
            readout = await read_out(link, config.iec, initial_baud)
            block = readout.block
            message = next(m for m in parse(block) if isinstance(m, DataMessage))
        except (TimeoutError, FrameError, StopIteration) as err:
            failures += 1
            problem = str(err) or "no answer in time"
            if isinstance(err, FrameError):
                ctx.frame_failed(err, block or None)
            _LOGGER.debug("%s: readout %d failed: %s", config.name, failures, problem)
            if failures >= READOUT_ATTEMPTS:
                raise ConnectionLost(
                    f"{link.url}: {failures} IEC 62056-21 readouts failed ({problem})"
                ) from None
            await asyncio.sleep(RECOVERY_PAUSE_S)
            continue
        if failures or last_at is None:
            ident = readout.identification
            _LOGGER.info(
                "%s: meter /%s%s%s reads out at %d baud",
                config.name,
                ident.manufacturer,
                ident.baud_char,
                ident.identification,
                readout.baud,
            )
        failures = 0
        at = meter_time(message, ctx.settings.zone) or utc_now()
        at = max(at, last_at) if last_at is not None else at
        last_at = at
        found = readings(message)
        if found:
            ctx.submit(Sample(config.meter, config.name, at, found, raw=block))
        else:
            ctx.frame_ok(block)
        await asyncio.sleep(max(0.0, config.interval_s - (loop.time() - started)))
