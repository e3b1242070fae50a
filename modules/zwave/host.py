"""The host side of the Z-Wave Serial API over a byte link.

Frames out wait for their ACK and are retransmitted on NAK, CAN or silence; frames in are
acknowledged at once (or refused with NAK); responses and callbacks find the request that waits
for them, everything else is queued for the application. Framing and message layouts are the
sans-IO codec's (modules/codecs/zwave_*); this module only buffers, times and dispatches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from gateway.errors import ConnectionLost
from gateway.transport import Link
from modules.codecs.errors import FrameError
from modules.codecs.zwave.api.messages import (
    DEFAULT_TX_OPTIONS,
    FunctionId,
    SerialMessage,
    TxStatus,
)
from modules.codecs.zwave.api.node import SetDefaultCallback, SetLearnModeCallback
from modules.codecs.zwave.api.transport import (
    SendDataAbortRequest,
    SendDataCallback,
    SendDataRequest,
    SendDataResponse,
    SendNodeInformationCallback,
)
from modules.codecs.zwave.dispatch import parse_message
from modules.codecs.zwave.serial import (
    ACK_TIMEOUT_S,
    CHECKSUM_ERRORS_BEFORE_RESET,
    MAX_RETRANSMISSIONS,
    RX_FRAME_TIMEOUT_S,
    BadFrame,
    ControlByte,
    DataFrame,
    FrameExtractor,
    FrameType,
    Garbage,
    retransmit_delay_s,
)

__all__ = ["RESPONSE_TIMEOUT_S", "SEND_DATA_CALLBACK_TIMEOUT_S", "SerialApiHost"]

_LOGGER = logging.getLogger(__name__)

# INS12350 asks the host to guard every response and callback with a timer; zwave-js moved its
# response timeout from 1.6 s to 10 s because slow modules (and USB hubs) need the margin.
RESPONSE_TIMEOUT_S = 10.0
# A ZW_SendData callback comes within 65 s whatever the route (INS13954; zwave-js's
# ``sendDataCallback`` timeout); after that the host aborts the transmission.
SEND_DATA_CALLBACK_TIMEOUT_S = 65.0

_M = TypeVar("_M", bound=SerialMessage)
# What the stick sends back, tagged with the callback id of the request it finishes.
_CALLBACKS = (
    SendDataCallback,
    SendNodeInformationCallback,
    SetDefaultCallback,
    SetLearnModeCallback,
)
ErrorSink = Callable[[Exception, bytes], None]


class SerialApiHost:
    """One Serial API session on an open link; ``receive()`` must run while it is used."""

    def __init__(self, link: Link, *, on_bad_frame: ErrorSink | None = None) -> None:
        self.link = link
        self.unsolicited: asyncio.Queue[SerialMessage] = asyncio.Queue()
        self.retransmissions = 0
        self.frames_in = 0
        self.last_heard = asyncio.get_running_loop().time()  # loop time of the last good frame
        self._on_bad_frame = on_bad_frame
        self._extractor = FrameExtractor()
        self._tx_lock = asyncio.Lock()  # one data frame waits for its ACK at a time
        self._request_lock = asyncio.Lock()  # the module serves one request at a time
        self._ack: asyncio.Future[ControlByte] | None = None
        self._response: tuple[int, asyncio.Future[SerialMessage]] | None = None
        self._callbacks: dict[tuple[int, int], asyncio.Future[SerialMessage]] = {}
        self._last_callback_id = 0
        self._bad_checksums = 0

    # receiving ---------------------------------------------------------------------------------

    async def receive(self) -> None:
        """Read until the link fails: acknowledge, check and dispatch every frame."""
        loop = asyncio.get_running_loop()
        frame_started: float | None = None
        while True:
            if self._extractor.pending:
                frame_started = frame_started or loop.time()
                left = RX_FRAME_TIMEOUT_S - (loop.time() - frame_started)
                try:
                    async with asyncio.timeout(max(left, 0.0)):
                        data = await self.link.read()
                except TimeoutError:
                    dropped = self._extractor.expire()
                    frame_started = None
                    _LOGGER.debug("zwave: frame not complete in time, dropped %s", dropped.hex())
                    self._bad(
                        FrameError("frame incomplete after 1.5 s", offset=len(dropped)), dropped
                    )
                    continue
            else:
                frame_started = None
                data = await self.link.read()
            for event in self._extractor.feed(data):
                await self._dispatch(event)

    async def _dispatch(self, event: ControlByte | DataFrame | BadFrame | Garbage) -> None:
        if isinstance(event, ControlByte):
            if self._ack is not None and not self._ack.done():
                self._ack.set_result(event)
            else:
                _LOGGER.debug("zwave: stray %s", event.name)
        elif isinstance(event, DataFrame):
            await self.link.write(bytes((ControlByte.ACK,)))  # first, within the ACK timeout
            self._bad_checksums = 0
            self.frames_in += 1
            self.last_heard = asyncio.get_running_loop().time()
            self._deliver(event)
        elif isinstance(event, BadFrame):
            self._bad(event.error, event.data)
            if event.error.code == "bad_crc":
                await self.link.write(bytes((ControlByte.NAK,)))
                self._bad_checksums += 1
                if self._bad_checksums >= CHECKSUM_ERRORS_BEFORE_RESET:
                    # INS12350: three checksum errors in a row mean the link is out of step.
                    raise ConnectionLost(f"{self._bad_checksums} checksum errors in a row")
        else:
            _LOGGER.debug("zwave: skipped %d byte(s) of noise", len(event.data))

    def _deliver(self, frame: DataFrame) -> None:
        try:
            message = parse_message(frame, from_host=False)
        except FrameError as err:
            self._bad(err, frame.encode())
            return
        if frame.type == FrameType.RES and self._response is not None:
            function, waiter = self._response
            if function == frame.function_id and not waiter.done():
                waiter.set_result(message)
                return
        if frame.type == FrameType.REQ and isinstance(message, _CALLBACKS):
            pending = self._callbacks.get((frame.function_id, message.callback_id))
            if pending is not None and not pending.done():
                pending.set_result(message)
                return
        self.unsolicited.put_nowait(message)

    def _bad(self, error: Exception, raw: bytes) -> None:
        _LOGGER.debug("zwave: bad frame %s: %s", raw.hex(), error)
        if self._on_bad_frame is not None:
            self._on_bad_frame(error, raw)

    # sending -----------------------------------------------------------------------------------

    async def send(self, message: SerialMessage) -> None:
        """A request that has neither response nor callback; returns once it is acknowledged."""
        async with self._request_lock:
            await self._transmit(message.encode())

    async def request(self, message: SerialMessage, response: type[_M]) -> _M:
        """A request and its response; ConnectionLost when the module stays silent."""
        async with self._request_lock:
            answer = await self._exchange(message, response)
        return answer

    async def send_data(self, node_id: int, payload: bytes) -> int:
        """ZW_SendData to a node; the transmit status (TxStatus) of its callback."""
        async with self._request_lock:
            callback_id = self._next_callback_id()
            key = (FunctionId.ZW_SEND_DATA, callback_id)
            waiter: asyncio.Future[SerialMessage] = asyncio.get_running_loop().create_future()
            self._callbacks[key] = waiter
            try:
                request = SendDataRequest(node_id, payload, DEFAULT_TX_OPTIONS, callback_id)
                queued = await self._exchange(request, SendDataResponse)
                if not queued.accepted:
                    return TxStatus.FAIL  # the module's queue is full; the caller may retry
                try:
                    async with asyncio.timeout(SEND_DATA_CALLBACK_TIMEOUT_S):
                        done = await waiter
                except TimeoutError:
                    _LOGGER.warning("zwave: no callback for a frame to node %d: aborted", node_id)
                    await self._transmit(SendDataAbortRequest().encode())
                    return TxStatus.FAIL
            finally:
                self._callbacks.pop(key, None)
        return done.tx_status if isinstance(done, SendDataCallback) else TxStatus.FAIL

    async def _exchange(self, message: SerialMessage, response: type[_M]) -> _M:
        waiter: asyncio.Future[SerialMessage] = asyncio.get_running_loop().create_future()
        self._response = (response.FUNCTION, waiter)
        try:
            await self._transmit(message.encode())
            async with asyncio.timeout(RESPONSE_TIMEOUT_S):
                answer = await waiter
        except TimeoutError:
            name = type(message).__name__
            raise ConnectionLost(f"no response to {name} in {RESPONSE_TIMEOUT_S:.0f} s") from None
        finally:
            self._response = None
        if not isinstance(answer, response):
            raise ConnectionLost(f"expected {response.__name__}, got {type(answer).__name__}")
        return answer

    async def _transmit(self, frame: bytes) -> None:
        """Write a data frame until it is acknowledged (INS12350: at most 3 retransmissions)."""
        async with self._tx_lock:
            for attempt in range(MAX_RETRANSMISSIONS + 1):
                if attempt:
                    self.retransmissions += 1
                    await asyncio.sleep(retransmit_delay_s(attempt))
                answer = await self._write_and_wait_ack(frame)
                if answer is ControlByte.ACK:
                    return
                what = answer.name if answer is not None else "no ACK"
                _LOGGER.debug("zwave: %s for frame %s (attempt %d)", what, frame.hex(), attempt + 1)
        raise ConnectionLost(f"frame not acknowledged after {MAX_RETRANSMISSIONS} retransmissions")

    async def _write_and_wait_ack(self, frame: bytes) -> ControlByte | None:
        waiter: asyncio.Future[ControlByte] = asyncio.get_running_loop().create_future()
        self._ack = waiter
        try:
            await self.link.write(frame)
            async with asyncio.timeout(ACK_TIMEOUT_S):
                return await waiter
        except TimeoutError:
            return None
        finally:
            self._ack = None

    def _next_callback_id(self) -> int:
        # 0 means "no callback", so ids run 1..255.
        self._last_callback_id = self._last_callback_id % 0xFF + 1
        return self._last_callback_id
