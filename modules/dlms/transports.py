"""Client-side DLMS transports over a Link: the TCP wrapper (port 4059) and HDLC (serial).

Both carry whole APDUs: ``request(apdu)`` sends one and returns the server's answer. HDLC adds
a connection (SNRM/UA, DISC), sequence numbers, and segmentation of long information fields
(IEC 62056-46); the wrapper only prefixes version, ports and length (IEC 62056-47).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import msgspec

from gateway.errors import ConnectionLost, FatalAdapterError
from gateway.transport import Link
from modules.codecs.dlms.hdlc import (
    LLC_COMMAND,
    LLC_RESPONSE,
    WRAPPER_VERSION,
    HdlcFrame,
    encode_frame,
    encode_wrapper,
    parse_frame,
)
from modules.codecs.dlms.stream import HanSplitter
from modules.codecs.errors import FrameError

__all__ = [
    "RESPONSE_TIMEOUT_S",
    "Addresses",
    "ApduTransport",
    "HdlcTransport",
    "WrapperTransport",
    "i_control",
    "rr_control",
]

_LOGGER = logging.getLogger(__name__)

# IEC 62056-46 leaves the response time-out to the profile; DLMS UA 1000-2 (Green Book 8.4)
# suggests a few seconds for a direct line, and ser2net or a TCP modem add their own latency.
RESPONSE_TIMEOUT_S = 5.0
# IEC 62056-46 6.4.4.3.6: the default maximum information field length is 128 bytes both
# ways until the UA of the SNRM says otherwise.
DEFAULT_MAX_INFO = 128
WRAPPER_HEADER_BYTES = 8

SNRM, UA, DISC, DM = 0x93, 0x73, 0x53, 0x1F  # with the P/F bit (0x10) set
_UA_PARAMETERS = 0x81  # format identifier of the SNRM/UA parameter field (IEC 62056-46 6.4.4.4)
_MAX_INFO_RX = 0x06  # the server's "maximum information field length, receive"


def i_control(send_seq: int, receive_seq: int, *, final: bool = True) -> int:
    """An I-frame control byte: RRR P SSS 0."""
    return (receive_seq & 7) << 5 | (0x10 if final else 0) | (send_seq & 7) << 1


def rr_control(receive_seq: int) -> int:
    """A receive-ready control byte (with the poll bit)."""
    return (receive_seq & 7) << 5 | 0x11


class ApduTransport(Protocol):
    """Carries APDUs to a server and back."""

    async def connect(self) -> None:
        """Open the link layer (HDLC: SNRM/UA); nothing for the wrapper."""
        ...

    async def request(self, apdu: bytes) -> bytes:
        """Send an APDU and return the answer."""
        ...

    async def close(self) -> None:
        """Close the link layer politely (best effort)."""
        ...


class Addresses(msgspec.Struct, frozen=True):
    """Who talks to whom: the client SAP and the server's logical/physical address."""

    client: int = 16  # public client (no security); management clients use 1 (IEC 62056-46)
    server_logical: int = 1  # the management logical device
    server_physical: int | None = None  # HDLC only; None: a one-byte server address

    @property
    def hdlc_server(self) -> tuple[int, int]:
        """(address value, address size) for encode_address."""
        if self.server_physical is None:
            return self.server_logical, 1
        return self.server_logical << 7 | self.server_physical, 2


class WrapperTransport:
    """APDUs over TCP with the IEC 62056-47 wrapper header."""

    def __init__(self, link: Link, addresses: Addresses) -> None:
        self._link = link
        self._client = addresses.client
        self._server = addresses.server_logical

    async def connect(self) -> None:
        """Nothing to open: TCP is the connection."""

    async def request(self, apdu: bytes) -> bytes:
        """Send one wrapped APDU and read the wrapped answer."""
        link = self._link
        await link.write(encode_wrapper(apdu, source=self._client, destination=self._server))
        async with asyncio.timeout(RESPONSE_TIMEOUT_S):
            while True:
                header = await link.read_exactly(WRAPPER_HEADER_BYTES)
                version = int.from_bytes(header[:2], "big")
                if version != WRAPPER_VERSION:
                    raise ConnectionLost(f"{link.url}: wrapper version {version}, not 1")
                source = int.from_bytes(header[2:4], "big")
                destination = int.from_bytes(header[4:6], "big")
                body = await link.read_exactly(int.from_bytes(header[6:8], "big"))
                if source == self._server and destination == self._client:
                    return body
                _LOGGER.debug("wrapper PDU for %d from %d ignored", destination, source)

    async def close(self) -> None:
        """Nothing to close below TCP."""


class HdlcTransport:
    """APDUs in HDLC I-frames with LLC headers (IEC 62056-46), over a serial line."""

    def __init__(self, link: Link, addresses: Addresses) -> None:
        self._link = link
        self._client = addresses.client
        self._server, self._server_size = addresses.hdlc_server
        self._splitter = HanSplitter()
        self._pending: list[HdlcFrame] = []
        self._send_seq = 0
        self._receive_seq = 0
        self._max_info_tx = DEFAULT_MAX_INFO
        self._connected = False

    async def connect(self) -> None:
        """SNRM, then wait for UA (and learn the server's maximum information field)."""
        self._link.discard_input()
        reply = await self._exchange(self._frame(b"", SNRM))
        if reply.control & ~0x10 != UA & ~0x10:
            raise FatalAdapterError(
                f"{self._link.url}: the meter refused the HDLC connection "
                f"(control 0x{reply.control:02x}); check the server address"
            )
        self._max_info_tx = _max_info_rx(reply.info) or DEFAULT_MAX_INFO
        self._send_seq = self._receive_seq = 0
        self._connected = True

    async def request(self, apdu: bytes) -> bytes:
        """Send an APDU in as many segments as needed; collect the answer's segments."""
        info = LLC_COMMAND + apdu
        chunks = [
            info[i : i + self._max_info_tx] for i in range(0, len(info), self._max_info_tx)
        ] or [b""]
        reply: HdlcFrame | None = None
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            frame = self._frame(
                chunk, i_control(self._send_seq, self._receive_seq), segmented=not last
            )
            self._send_seq = (self._send_seq + 1) & 7
            reply = await self._exchange(frame)
            if not last and not _is_rr(reply.control):
                raise ConnectionLost(f"{self._link.url}: no RR after a segment")
        assert reply is not None
        parts = []
        while True:
            if reply.control & 1:
                raise ConnectionLost(
                    f"{self._link.url}: expected an I-frame, got control 0x{reply.control:02x}"
                )
            self._receive_seq = (self._receive_seq + 1) & 7
            parts.append(reply.info)
            if not reply.segmented:
                break
            reply = await self._exchange(self._frame(b"", rr_control(self._receive_seq)))
        whole = b"".join(parts)
        return whole[3:] if whole[:3] in (LLC_RESPONSE, LLC_COMMAND) else whole

    async def close(self) -> None:
        """DISC, waiting briefly for UA or DM; a silent meter is not an error here."""
        if not self._connected:
            return
        self._connected = False
        try:
            await self._exchange(self._frame(b"", DISC))
        except (TimeoutError, ConnectionLost, FrameError) as err:
            _LOGGER.debug("%s: no answer to DISC: %s", self._link.url, err)

    def _frame(self, info: bytes, control: int, *, segmented: bool = False) -> bytes:
        return encode_frame(
            info,
            dest=self._server,
            src=self._client,
            control=control,
            segmented=segmented,
            dest_size=self._server_size,
            src_size=1,
        )

    async def _exchange(self, frame: bytes) -> HdlcFrame:
        await self._link.write(frame)
        async with asyncio.timeout(RESPONSE_TIMEOUT_S):
            while True:
                if self._pending:
                    reply = self._pending.pop(0)
                    # An optical head echoes our own frames: only frames to us count.
                    if reply.dest == self._client and reply.src == self._server:
                        return reply
                    continue
                for item in self._splitter.feed(await self._link.read()):
                    if isinstance(item, bytes):
                        self._pending.append(parse_frame(item))
                    else:
                        _LOGGER.debug("%s: bad HDLC frame: %s", self._link.url, item)


def _is_rr(control: int) -> bool:
    return control & 0x0F == 0x01


def _max_info_rx(info: bytes) -> int | None:
    """The server's receive limit from a UA parameter field, when it sends one."""
    if len(info) < 3 or info[0] != _UA_PARAMETERS:  # noqa: PLR2004 - format, group and its length
        return None
    pos = 3
    while pos + 2 <= len(info):
        kind, size = info[pos], info[pos + 1]
        value = int.from_bytes(info[pos + 2 : pos + 2 + size], "big")
        if kind == _MAX_INFO_RX:
            return value or None
        pos += 2 + size
    return None
