"""IMST receivers: iM871A/iM170A (WM-Bus HCI over USB serial) and iU891A (HCI in SLIP frames).

iM871A HCI (IMST "WMBus HCI Spec" 1.6): ``A5 | flags<<4 endpoint | msg id | length | payload |
[timestamp 4] [RSSI 1] [CRC16 2]``. A received telegram is RADIOLINK WMBUSMSG_IND without its
L field and without DLL CRCs. The link mode is set with DEVMGMT SET_CONFIG_REQ (not stored in
NVM), which also switches the RSSI attachment on; C1 and T1 together need firmware 0x14 or later.

iU891A (successor): SLIP (RFC 1055) frames of ``endpoint | msg id | [status] | payload |
CRC16``; RX_MESSAGE_IND carries an 8-byte header (its last byte the RSSI in dBm) and the
telegram with its L field. Both CRCs are CRC-16/X-25 (CCITT reflected, init and xor 0xFFFF),
sent least significant byte first.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.errors import FatalAdapterError
from modules.wmbus.receivers import (
    Heard,
    Item,
    Rejected,
    Reply,
    TwoRoundSetup,
    check_link_mode_status,
)

__all__ = ["Im871a", "Im871aDevice", "Iu891a", "Iu891aDevice", "crc16_x25"]

SOF = 0xA5
DEVMGMT = 0x01
RADIOLINK = 0x02
RADIOLINKTEST = 0x03
HWTEST = 0x04
# Highest message id per endpoint (HCI spec 1.6 tables); anything else is noise to resync on.
_MAX_MSG_ID = {DEVMGMT: 0x27, RADIOLINK: 0x05, RADIOLINKTEST: 0x07, HWTEST: 0x02}
FLAG_CRC = 0x8
FLAG_RSSI = 0x4
FLAG_TIMESTAMP = 0x2
PING_REQ, PING_RSP = 0x01, 0x02
SET_CONFIG_REQ, SET_CONFIG_RSP = 0x03, 0x04
GET_CONFIG_REQ, GET_CONFIG_RSP = 0x05, 0x06
DEVICEINFO_REQ, DEVICEINFO_RSP = 0x0F, 0x10
WMBUSMSG_IND = 0x03
_DEVMGMT_NAMES = {
    PING_RSP: "PING_RSP",
    SET_CONFIG_RSP: "SET_CONFIG_RSP",
    GET_CONFIG_RSP: "GET_CONFIG_RSP",
    DEVICEINFO_RSP: "DEVICEINFO_RSP",
}
# SET_CONFIG_REQ link mode values (HCI spec 1.6 "Link Modes"); C1 TF-A receives both formats.
IM871A_LINK_MODES = {
    frozenset(["S1"]): 0x00,
    frozenset(["T1"]): 0x03,
    frozenset(["C1"]): 0x06,
    frozenset(["C1", "T1"]): 0x0A,  # "C1/T1 combined" from firmware 0x14; N1a on the iM170A
    frozenset(["N1a"]): 0x0A,
    frozenset(["N1b"]): 0x0C,
    frozenset(["N1c"]): 0x0E,
    frozenset(["N1d"]): 0x10,
    frozenset(["N1e"]): 0x12,
    frozenset(["N1f"]): 0x14,
}
FIRMWARE_C_AND_T = 0x14
MODULE_TYPES = {0x33: "im871a", 0x36: "im170a"}
_MAX_BUFFER = 4096  # far above the longest HCI frame (4 + 255 + 7)


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (ISO HDLC): reflected 0x1021, init 0xFFFF, final xor 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def rssi_to_dbm(raw: int) -> float:
    """iM871A RSSI byte to dBm: the linear part of the Si1002 RSSI curve (45 -> -100 dBm,
    205 -> -20 dBm), 0 dBm from 230 on."""
    if raw >= 230:
        return 0.0
    return -100.0 + (raw - 45) * 0.5


def dbm_to_rssi(dbm: float) -> int:
    """The inverse of ``rssi_to_dbm`` (emulator)."""
    return max(0, min(229, round((dbm + 100.0) * 2 + 45)))


def hci_frame(
    endpoint: int,
    msg_id: int,
    payload: bytes = b"",
    *,
    rssi: int | None = None,
    timestamp: int | None = None,
    crc: bool = False,
) -> bytes:
    """One iM871A HCI frame."""
    flags = (FLAG_CRC if crc else 0) | (FLAG_RSSI if rssi is not None else 0)
    flags |= FLAG_TIMESTAMP if timestamp is not None else 0
    body = bytes([flags << 4 | endpoint, msg_id, len(payload)]) + payload
    if timestamp is not None:
        body += timestamp.to_bytes(4, "little")
    if rssi is not None:
        body += bytes([rssi])
    if crc:
        body += crc16_x25(body).to_bytes(2, "little")
    return bytes([SOF]) + body


class _HciFrames:
    """Cuts an iM871A byte stream into (endpoint, msg id, payload, rssi) frames, resyncing."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes, int | None] | Rejected]:
        buffer = self._buffer
        buffer += data
        out: list[tuple[int, int, bytes, int | None] | Rejected] = []
        while buffer:
            start = buffer.find(SOF)
            if start < 0:
                buffer.clear()
                break
            del buffer[:start]
            if len(buffer) < 4:
                break
            flags, endpoint, msg_id = buffer[1] >> 4, buffer[1] & 0x0F, buffer[2]
            if flags & 0x1 or not 1 <= msg_id <= _MAX_MSG_ID.get(endpoint, 0):
                del buffer[:1]  # not a frame start after all
                continue
            length = 4 + buffer[3]
            end = length + (4 if flags & FLAG_TIMESTAMP else 0) + (1 if flags & FLAG_RSSI else 0)
            total = end + (2 if flags & FLAG_CRC else 0)
            if len(buffer) < total:
                break
            frame = bytes(buffer[:total])
            if flags & FLAG_CRC and crc16_x25(frame[1:end]) != int.from_bytes(
                frame[end:total], "little"
            ):
                out.append(Rejected("iM871A HCI frame with a bad CRC", frame))
                del buffer[:1]
                continue
            del buffer[:total]
            rssi = frame[end - 1] if flags & FLAG_RSSI else None
            out.append((endpoint, msg_id, frame[4:length], rssi))
        if len(buffer) > _MAX_BUFFER:
            buffer.clear()
        return out


class Im871a(TwoRoundSetup):
    """The host side of an iM871A (868 MHz) or iM170A (169 MHz) stick."""

    baudrate = 57600  # HCI spec 1.6: 57600 8N1 over the USB serial bridge
    # Setup: device info first (to check the firmware), then the link mode with RSSI on.
    FIRST_ANSWER = "DEVICEINFO_RSP"
    SECOND_ANSWER = "SET_CONFIG_RSP"

    def __init__(self, modes: Sequence[str], *, kind: str = "im871a") -> None:
        self.kind = kind
        self.modes = frozenset(modes)
        self.link_mode = IM871A_LINK_MODES[self.modes]
        self.device_info = ""
        self._frames = _HciFrames()

    def _first_request(self) -> bytes:
        return hci_frame(DEVMGMT, DEVICEINFO_REQ)

    def _second_request(self, first_answer: Reply) -> bytes:
        self._check_device(first_answer.payload)
        # NVM flag 0 (temporary), IIFlag1 0x02 (link mode), IIFlag2 0x10|0x20 (RSSI on,
        # timestamp off): the stick's stored configuration is left alone.
        return hci_frame(DEVMGMT, SET_CONFIG_REQ, bytes([0, 0x02, self.link_mode, 0x30, 1, 0]))

    def _check_second_answer(self, answer: Reply) -> None:
        check_link_mode_status(self.kind, self.link_mode, answer)

    def feed(self, data: bytes) -> list[Item]:
        """HCI frames in; telegrams and replies out."""
        out: list[Item] = []
        for frame in self._frames.feed(data):
            if isinstance(frame, Rejected):
                out.append(frame)
                continue
            endpoint, msg_id, payload, rssi = frame
            if endpoint == RADIOLINK and msg_id == WMBUSMSG_IND:
                if not payload:
                    out.append(Rejected("empty WMBUSMSG_IND"))
                    continue
                # The stick drops the L field; it is the payload length.
                out.append(
                    Heard(
                        bytes([len(payload)]) + payload,
                        dll_crcs="none",
                        rssi_dbm=None if rssi is None else rssi_to_dbm(rssi),
                    )
                )
            elif endpoint == DEVMGMT:
                name = _DEVMGMT_NAMES.get(msg_id, f"DEVMGMT_{msg_id:02X}")
                out.append(Reply(name, payload=payload))
        return out

    def _check_device(self, info: bytes) -> None:
        if len(info) < 8:
            return
        module, firmware, uid = info[0], info[2], int.from_bytes(info[4:8], "little")
        found = MODULE_TYPES.get(module, f"module type 0x{module:02X}")
        self.device_info = f"{found} firmware 0x{firmware:02X} uid {uid:08X}"
        if module in MODULE_TYPES and found != self.kind:
            raise FatalAdapterError(f"the stick is an {found}, configured as {self.kind}")
        if self.modes == {"C1", "T1"} and firmware < FIRMWARE_C_AND_T:
            raise FatalAdapterError(
                f"iM871A firmware 0x{firmware:02X} cannot listen to C1 and T1 together "
                "(needs 0x14 or later): update it with IMST's WM-Bus Studio or listen to one mode"
            )


class Im871aDevice:
    """An iM871A as seen from the host: answers setup commands, reports telegrams."""

    def __init__(self, *, firmware: int = 0x15, module: int = 0x33, uid: int = 0x00A1B2C3) -> None:
        self.firmware = firmware
        self.module = module
        self.uid = uid
        self.link_mode: int | None = None
        self._frames = _HciFrames()

    def answer(self, data: bytes) -> bytes:
        """DEVMGMT requests in; their responses out."""
        out = b""
        for frame in self._frames.feed(data):
            if isinstance(frame, Rejected):
                continue
            endpoint, msg_id, payload, _rssi = frame
            if endpoint != DEVMGMT:
                continue
            if msg_id == PING_REQ:
                out += hci_frame(DEVMGMT, PING_RSP)
            elif msg_id == DEVICEINFO_REQ:
                info = bytes([self.module, 0, self.firmware, 0x16]) + self.uid.to_bytes(4, "little")
                out += hci_frame(DEVMGMT, DEVICEINFO_RSP, info)
            elif msg_id == SET_CONFIG_REQ:
                if len(payload) >= 3 and payload[1] & 0x02:
                    self.link_mode = payload[2]
                out += hci_frame(DEVMGMT, SET_CONFIG_RSP, b"\x00")
            elif msg_id == GET_CONFIG_REQ:
                out += hci_frame(DEVMGMT, GET_CONFIG_RSP, bytes([0x02, self.link_mode or 0, 0]))
        return out

    def indication(self, telegram: bytes, rssi_dbm: float) -> bytes:
        """WMBUSMSG_IND without the L field, with RSSI and CRC attached."""
        return hci_frame(
            RADIOLINK, WMBUSMSG_IND, telegram[1:], rssi=dbm_to_rssi(rssi_dbm), crc=True
        )


# ------------------------------------------------------------------------------------ iU891A

SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
SAP_DEVMGMT = 0x01
SAP_WMBUSGW = 0x09
GET_ACTIVE_CONFIG_REQ, GET_ACTIVE_CONFIG_RSP = 0x01, 0x02
SET_ACTIVE_CONFIG_REQ, SET_ACTIVE_CONFIG_RSP = 0x03, 0x04
RX_MESSAGE_IND = 0x20
IU891A_LINK_MODES = {
    frozenset(["S1"]): 1,
    frozenset(["T1"]): 2,
    frozenset(["C1", "T1"]): 3,
    frozenset(["C1"]): 5,
}
OPTION_FILTER = 0x0001  # set: only telegrams from the device list are reported
OPTION_RX_IND = 0x0002  # report received telegrams
_IND_HEADER_BYTES = 8  # timestamp, status and format bytes, RSSI (dBm, signed)
_CONFIG_BYTES = 11
_STATUS = {
    1: "error",
    2: "command not supported",
    3: "wrong parameter",
    4: "wrong application mode",
    6: "busy",
    7: "wrong message length",
    8: "NVM write error",
    10: "command rejected",
    11: "access denied",
}
_WAKE_UP = bytes([SLIP_END]) * 8  # a sleeping UART sees END bytes as idle line, then syncs


def slip_encode(message: bytes) -> bytes:
    """One SLIP frame (RFC 1055) with END on both sides."""
    body = message.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


def iu891a_message(endpoint: int, msg_id: int, body: bytes = b"") -> bytes:
    """A framed iU891A HCI message with its CRC."""
    message = bytes([endpoint, msg_id]) + body
    return slip_encode(message + crc16_x25(message).to_bytes(2, "little"))


class _SlipFrames:
    """Cuts a SLIP stream into messages with a good CRC."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes | Rejected]:
        buffer = self._buffer
        buffer += data
        out: list[bytes | Rejected] = []
        while True:
            end = buffer.find(SLIP_END)
            if end < 0:
                if len(buffer) > _MAX_BUFFER:
                    buffer.clear()
                break
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            if not raw:
                continue  # END between frames (or the wake-up train)
            message = raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
            if len(message) < 4 or crc16_x25(message[:-2]) != int.from_bytes(
                message[-2:], "little"
            ):
                out.append(Rejected("iU891A frame with a bad CRC or too short", raw))
                continue
            out.append(message[:-2])
        return out


class Iu891a(TwoRoundSetup):
    """The host side of an iU891A(-XL) stick."""

    kind = "iu891a"
    baudrate = 115200
    # Setup: read the active configuration, write it back with our link mode and RX reports.
    FIRST_ANSWER = "GET_ACTIVE_CONFIG_RSP"
    SECOND_ANSWER = "SET_ACTIVE_CONFIG_RSP"

    def __init__(self, modes: Sequence[str]) -> None:
        self.link_mode = IU891A_LINK_MODES[frozenset(modes)]
        self.device_info = ""
        self._frames = _SlipFrames()

    def _first_request(self) -> bytes:
        return _WAKE_UP + iu891a_message(SAP_WMBUSGW, GET_ACTIVE_CONFIG_REQ)

    def _second_request(self, first_answer: Reply) -> bytes:
        self._raise_on_status(first_answer, "reading the configuration")
        config = bytearray(
            first_answer.payload[1 : 1 + _CONFIG_BYTES].ljust(_CONFIG_BYTES, b"\x00")
        )
        config[0] = self.link_mode
        options = int.from_bytes(config[1:3], "little")
        options = (options & ~OPTION_FILTER) | OPTION_RX_IND
        config[1:3] = options.to_bytes(2, "little")
        return iu891a_message(SAP_WMBUSGW, SET_ACTIVE_CONFIG_REQ, bytes(config))

    def _check_second_answer(self, answer: Reply) -> None:
        self._raise_on_status(answer, f"setting link mode {self.link_mode}")

    def feed(self, data: bytes) -> list[Item]:
        """SLIP frames in; telegrams and replies out."""
        out: list[Item] = []
        for message in self._frames.feed(data):
            if isinstance(message, Rejected):
                out.append(message)
                continue
            endpoint, msg_id, body = message[0], message[1], message[2:]
            if endpoint == SAP_WMBUSGW and msg_id == RX_MESSAGE_IND:
                if len(body) <= _IND_HEADER_BYTES:
                    out.append(Rejected("RX_MESSAGE_IND without a telegram", message))
                    continue
                rssi = int.from_bytes(body[7:8], "little", signed=True)
                out.append(Heard(body[_IND_HEADER_BYTES:], dll_crcs="none", rssi_dbm=float(rssi)))
            elif endpoint == SAP_WMBUSGW:
                names = {
                    GET_ACTIVE_CONFIG_RSP: "GET_ACTIVE_CONFIG_RSP",
                    SET_ACTIVE_CONFIG_RSP: "SET_ACTIVE_CONFIG_RSP",
                }
                name = names.get(msg_id, f"WMBUSGW_{msg_id:02X}")
                out.append(Reply(name, ok=body[:1] == b"\x00", payload=body))
            elif endpoint == SAP_DEVMGMT:
                out.append(Reply(f"DEVMGMT_{msg_id:02X}", ok=body[:1] == b"\x00", payload=body))
        return out

    @staticmethod
    def _raise_on_status(reply: Reply, doing: str) -> None:
        if reply.ok:
            return
        status = reply.payload[0] if reply.payload else -1
        raise FatalAdapterError(
            f"iU891A refused {doing}: {_STATUS.get(status, f'status {status}')}"
        )


class Iu891aDevice:
    """An iU891A as seen from the host."""

    def __init__(self) -> None:
        self.config = bytearray([5, 0x01, 0, 0, 0, 0x32, 0, 0, 0, 0, 0])
        self._frames = _SlipFrames()
        self._clock = 0

    def answer(self, data: bytes) -> bytes:
        """WMBUSGW configuration requests in; responses out."""
        out = b""
        for message in self._frames.feed(data):
            if isinstance(message, Rejected) or message[0] != SAP_WMBUSGW:
                continue
            if message[1] == GET_ACTIVE_CONFIG_REQ:
                out += iu891a_message(SAP_WMBUSGW, GET_ACTIVE_CONFIG_RSP, b"\x00" + self.config)
            elif message[1] == SET_ACTIVE_CONFIG_REQ:
                ok = len(message) == 2 + _CONFIG_BYTES
                if ok:
                    self.config[:] = message[2:]
                status = b"\x00" if ok else b"\x07"
                out += iu891a_message(SAP_WMBUSGW, SET_ACTIVE_CONFIG_RSP, status)
        return out

    def indication(self, telegram: bytes, rssi_dbm: float) -> bytes:
        """RX_MESSAGE_IND: header (timestamp, flags, RSSI) and the telegram with its L field."""
        self._clock += 1
        rssi = max(-128, min(127, round(rssi_dbm))).to_bytes(1, "little", signed=True)
        header = self._clock.to_bytes(4, "little") + b"\x00\x00\x02" + rssi
        return iu891a_message(SAP_WMBUSGW, RX_MESSAGE_IND, header + telegram)
