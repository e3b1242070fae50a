"""The M-Bus master's side of the link: one request at a time on a half-duplex bus.

Frames are built and checked by the sans-IO codec (modules/codecs/mbus.py); this module only
times the exchanges (EN 13757-2 bit times), drops the echo some level converters send back,
retries a bounded number of times, and tells a single ACK from a collision of several slaves.
The adapter and ``meter-gateway scan`` share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

import msgspec

from gateway.errors import AdapterError, ConnectionLost
from gateway.transport import Link
from modules.codecs.errors import FrameError, IncompleteFrame
from modules.codecs.mbus.frames import (
    ACK,
    BROADCAST_ADDRESS,
    NETWORK_LAYER_ADDRESS,
    MbusDecoder,
    SecondaryAddress,
    req_ud2,
    select_secondary,
    snd_nke,
    split_frame,
)
from modules.codecs.records import Decoded

__all__ = ["Collision", "Master", "NoAnswer", "Readout", "SelectResult"]

_LOGGER = logging.getLogger(__name__)

# EN 13757-2: a character is 11 bits on the line (start, 8 data, even parity, stop).
BITS_PER_CHARACTER = 11
# EN 13757-2: a slave starts its answer within 330 bit times + 50 ms after the request ended.
RESPONSE_BITS = 330
RESPONSE_EXTRA_S = 0.050
# The longest frame: 68 L L 68, 255 bytes C..data, CS, 16.
LONGEST_FRAME_BYTES = 261
# A slave sends a frame without pauses; this much silence ends whatever arrived (a collision's
# garbage, or an ACK that might be followed by a second slave's late one).
QUIET_CHARACTERS = 3
# Idle line before each request: slaves need a moment to release the bus after answering
# (meter manuals specify >= 10 ms; 33 bit times is 13.75 ms at 2400 Bd).
IDLE_BITS = 33

SelectResult = Literal["none", "one", "collision"]
ErrorHook = Callable[[Exception, bytes | None], None]


class NoAnswer(AdapterError, TimeoutError):
    """The addressed slave did not answer within the standard's response time."""


class Collision(FrameError):
    """Several slaves answered at once (their bits mixed on the bus)."""

    code = "collision"


class Readout(msgspec.Struct):
    """The telegrams of one REQ_UD2 readout, in order."""

    frames: list[bytes] = msgspec.field(default_factory=list)
    telegrams: list[Decoded] = msgspec.field(default_factory=list)
    complete: bool = False  # the last telegram did not announce more records
    fcb: bool = True  # the frame count bit for this slave's next request


class Master:
    """Requests on one bus, timed from its baud rate."""

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        link: Link,
        *,
        baudrate: int = 2400,
        echo: bool | Literal["auto"] = "auto",
        latency_s: float = 0.1,
        retries: int = 2,
        on_error: ErrorHook | None = None,
    ) -> None:
        self.link = link
        self.baudrate = baudrate
        self.echo = echo
        self.latency_s = latency_s
        self.retries = retries
        self._on_error = on_error
        self._buffer = bytearray()
        self._garbage = b""  # the bytes of the last garbled answer, for the raw log
        self._decoder = MbusDecoder()
        self._loop = asyncio.get_running_loop()

    @property
    def response_timeout_s(self) -> float:
        """How long a slave may take to start answering, plus the link's own latency."""
        return self._bits(RESPONSE_BITS) + RESPONSE_EXTRA_S + self.latency_s

    async def exchange(self, request: bytes, *, what: str = "request") -> bytes:
        """Send ``request`` and return the answering frame (checksum checked), retrying."""
        error: Exception = NoAnswer(f"no answer to {what}")
        for attempt in range(self.retries + 1):
            if attempt:
                _LOGGER.debug("%s: retry %d of %s (%s)", self.link.url, attempt, what, error)
            try:
                frame = await self._attempt(request)
            except FrameError as err:
                self._report(err, self._garbage or None)
                error = err
                continue
            if frame is not None:
                return frame
            error = NoAnswer(f"no answer to {what} within {self.response_timeout_s:.2f} s")
        raise error

    async def reset(self, address: int) -> None:
        """SND_NKE: reset a slave's link layer (its frame count and readout); expects ACK."""
        if address == BROADCAST_ADDRESS:
            await self._send(snd_nke(address))
            # Nobody answers a broadcast; only the echo may come back.
            await self._quiet(self._loop.time() + self._request_time(5) + self.response_timeout_s)
            return
        frame = await self.exchange(snd_nke(address), what=f"SND_NKE to {address}")
        if frame[0] != ACK:
            raise FrameError(f"SND_NKE to {address} was answered by a {len(frame)} byte frame")

    async def select(self, pattern: SecondaryAddress, *, attempts: int = 1) -> SelectResult:
        """Select the slaves matching ``pattern``: none, exactly one, or several (collision)."""
        request = select_secondary(pattern)
        result: SelectResult = "none"
        for _ in range(attempts):
            result = await self._select_once(request)
            if result != "none":
                return result
        return result

    async def read(
        self,
        address: int,
        *,
        fcb: bool,
        max_telegrams: int,
        what: str = "REQ_UD2",
        check: Callable[[Decoded], None] | None = None,
    ) -> Readout:
        """REQ_UD2 until the meter has no more records (FCB toggled per new telegram);
        ``check`` may refuse a telegram (a wrong meter) by raising FrameError."""
        readout = Readout(fcb=fcb)
        for _ in range(max_telegrams):
            frame = await self.exchange(req_ud2(address, fcb=readout.fcb), what=what)
            readout.fcb = not readout.fcb
            try:
                decoded = self._decode_answer(frame, address)
                if check is not None:
                    check(decoded)
            except FrameError as err:
                self._report(err, frame)
                raise
            readout.frames.append(frame)
            readout.telegrams.append(decoded)
            if not decoded.frame.get("more_records_follow"):
                readout.complete = True
                break
        return readout

    # internals ---------------------------------------------------------------------------------

    def _decode_answer(self, frame: bytes, address: int) -> Decoded:
        decoded = self._decoder.decode(frame)
        if decoded.frame.get("name") != "RSP_UD" or "ci" not in decoded.frame:
            raise FrameError(f"expected RSP_UD data, got {decoded.frame.get('name')}", offset=0)
        if address != NETWORK_LAYER_ADDRESS and decoded.frame["a"] != address:
            raise FrameError(f"answer from address {decoded.frame['a']}, asked {address}", offset=5)
        return decoded

    async def _select_once(self, request: bytes) -> SelectResult:
        try:
            frame = await self._attempt(request)
        except FrameError:
            await self._quiet(self._loop.time() + self._frame_time(LONGEST_FRAME_BYTES))
            return "collision"
        if frame is None:
            return "none"
        # A second ACK (or anything) right behind the first means two slaves answered.
        extra = await self._quiet(self._loop.time() + self._frame_time(LONGEST_FRAME_BYTES))
        return "one" if frame == bytes([ACK]) and not extra else "collision"

    async def _attempt(self, request: bytes) -> bytes | None:
        """One request and its answer; None when nothing came, FrameError when garbled."""
        await self._send(request)
        deadline = self._loop.time() + self._request_time(len(request)) + self.response_timeout_s
        echo_seen = False
        while True:
            frame = await self._receive(deadline)
            if frame is None:
                if self.echo is True and not echo_seen:
                    raise ConnectionLost(f"{self.link.url}: the level converter echoes nothing")
                return None
            if frame == request and self.echo is not False and not echo_seen:
                echo_seen = True
                continue
            if self.echo is True and not echo_seen:
                raise FrameError("the answer came before the echo of the request", offset=0)
            return frame

    async def _send(self, request: bytes) -> None:
        await asyncio.sleep(self._bits(IDLE_BITS))
        self._buffer.clear()
        self.link.discard_input()  # a late answer to an earlier request is no answer to this
        self._garbage = b""
        _LOGGER.debug("%s > %s", self.link.url, request.hex())
        await self.link.write(request)

    async def _receive(self, first_byte_deadline: float) -> bytes | None:
        """One checked frame, None when the line stays silent until the deadline."""
        frame_deadline: float | None = None
        while True:
            if not self._buffer and not await self._fill(first_byte_deadline):
                return None
            if frame_deadline is None:
                frame_deadline = self._loop.time() + self._frame_time(LONGEST_FRAME_BYTES)
            try:
                _kind, size = split_frame(bytes(self._buffer))
            except IncompleteFrame as err:
                if await self._fill(frame_deadline):
                    continue
                self._garbage = bytes(self._buffer)
                self._buffer.clear()
                raise IncompleteFrame(f"the answer stopped: {err}", offset=err.offset) from err
            except FrameError:
                self._garbage = await self._quiet(frame_deadline)
                raise
            frame = bytes(self._buffer[:size])
            del self._buffer[:size]
            _LOGGER.debug("%s < %s", self.link.url, frame.hex())
            return frame

    async def _fill(self, deadline: float) -> bool:
        """Read what arrives before ``deadline`` into the buffer; False if nothing did."""
        if deadline <= self._loop.time():
            return False
        try:
            async with asyncio.timeout_at(deadline):
                data = await self.link.read()
        except TimeoutError:
            return False
        self._buffer += data
        return True

    async def _quiet(self, limit: float) -> bytes:
        """Collect bytes until the line is quiet (or ``limit``); returns and drops them."""
        gap = self._frame_time(QUIET_CHARACTERS) + self.latency_s
        while await self._fill(min(self._loop.time() + gap, limit)):
            pass
        extra = bytes(self._buffer)
        self._buffer.clear()
        return extra

    def _report(self, error: Exception, raw: bytes | None) -> None:
        _LOGGER.debug("%s: %s", self.link.url, error)
        if self._on_error is not None:
            self._on_error(error, raw)

    def _bits(self, count: int) -> float:
        return count / self.baudrate

    def _frame_time(self, characters: int) -> float:
        return self._bits(characters * BITS_PER_CHARACTER) + self.latency_s

    def _request_time(self, characters: int) -> float:
        return self._bits(characters * BITS_PER_CHARACTER)
