"""Amber (Würth Elektronik eiSos) AMB8465 / AMB8665 wM-Bus sticks.

Commands (Amber wM-Bus manual 2.7): ``FF CMD LEN payload CS`` with CS the XOR of every byte
before it; confirmations set bit 7 of CMD. Received telegrams come as CMD_DATA_IND
``FF 03 LEN C... [RSSI] CS`` (LEN is the telegram's L field) when UART_CMD_Out_Enable is set,
else raw ``L C ... [RSSI]``. The RSSI byte (when RSSI_Enable, parameter 69, is set) is two's
complement, dBm = value / 2 - 74. The link mode is set with CMD_SET_MODE_REQ, which leaves the
stored mode alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from modules.wmbus.receivers import (
    Heard,
    Item,
    Rejected,
    Reply,
    TwoRoundSetup,
    check_link_mode_status,
)

__all__ = ["Amber", "AmberDevice", "command"]

STX = 0xFF
CMD_DATA_IND = 0x03
CMD_SET_MODE_REQ = 0x04
CMD_GET_REQ = 0x0A
CONFIRM = 0x80
PARAM_CMD_OUT_ENABLE = 5
PARAM_RSSI_ENABLE = 69
PARAMS_READ = 0x80  # parameters 0..127 cover both flags
# CMD_SET_MODE_REQ values for a collector (manual table "wM-Bus modes").
AMBER_LINK_MODES = {
    frozenset(["S1"]): 0x03,  # S2: receives S1 and S1-m
    frozenset(["T1"]): 0x08,  # T2 other
    frozenset(["C1"]): 0x0E,  # C2 other
    frozenset(["C1", "T1"]): 0x09,  # C2/T2 other: both at once
}
_NAMES = {CMD_GET_REQ | CONFIRM: "GET_CNF", CMD_SET_MODE_REQ | CONFIRM: "SET_MODE_CNF"}
_MAX_BUFFER = 4096
RSSI_OFFSET_DB = 74  # CC1101-based radio at 868 MHz


def command(cmd: int, payload: bytes = b"") -> bytes:
    """One framed Amber command or indication."""
    frame = bytes([STX, cmd, len(payload)]) + payload
    return frame + bytes([_xor(frame)])


def _xor(data: bytes) -> int:
    check = 0
    for byte in data:
        check ^= byte
    return check


def rssi_to_dbm(raw: int) -> float:
    """Two's complement RSSI byte to dBm."""
    return (raw - 256 if raw >= 128 else raw) / 2 - RSSI_OFFSET_DB


class _AmberFrames:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.rssi = True  # until the parameters say otherwise (the factory setting)
        self.framed: bool | None = None  # UART_CMD_Out_Enable, once read; None: accept both

    def feed(self, data: bytes) -> list[tuple[int, bytes, int | None] | Rejected]:
        """(command or 0 for a raw telegram, payload, RSSI byte) tuples."""
        buffer = self.buffer
        buffer += data
        out: list[tuple[int, bytes, int | None] | Rejected] = []
        while buffer:
            if buffer[0] != STX and self.framed:
                start = buffer.find(STX)
                out.append(Rejected("bytes outside Amber frames", bytes(buffer[:64])))
                del buffer[: start if start > 0 else len(buffer)]
                continue
            if buffer[0] != STX:
                # A raw telegram: L C M A ... [RSSI]
                total = buffer[0] + 1 + (1 if self.rssi else 0)
                if buffer[0] < 10:
                    out.append(Rejected("byte that starts no Amber frame", bytes(buffer[:1])))
                    del buffer[:1]
                    continue
                if len(buffer) < total:
                    break
                rssi = buffer[total - 1] if self.rssi else None
                out.append((0, bytes(buffer[1 : buffer[0] + 1]), rssi))
                del buffer[:total]
                continue
            if len(buffer) < 3:
                break
            cmd, length = buffer[1], buffer[2]
            extra = 1 if self.rssi and cmd == CMD_DATA_IND else 0
            total = 4 + length + extra
            if len(buffer) < total:
                break
            frame = bytes(buffer[:total])
            if _xor(frame[:-1]) != frame[-1]:
                out.append(Rejected("Amber frame with a bad checksum", frame))
                del buffer[:1]
                continue
            del buffer[:total]
            out.append((cmd, frame[3 : 3 + length], frame[3 + length] if extra else None))
        if len(buffer) > _MAX_BUFFER:
            buffer.clear()
        return out


class Amber(TwoRoundSetup):
    """The host side of an AMB8465 (or the AMB8665 USB stick, same command set)."""

    baudrate = 9600  # factory UART speed (parameter 0)
    # Setup: read the parameters (is RSSI appended?), then set the link mode.
    FIRST_ANSWER = "GET_CNF"
    SECOND_ANSWER = "SET_MODE_CNF"

    def __init__(self, modes: Sequence[str], *, kind: str = "amb8465") -> None:
        self.kind = kind
        self.link_mode = AMBER_LINK_MODES[frozenset(modes)]
        self.device_info = ""
        self._frames = _AmberFrames()

    def _first_request(self) -> bytes:
        return command(CMD_GET_REQ, bytes([0, PARAMS_READ]))

    def _second_request(self, first_answer: Reply) -> bytes:
        params = first_answer.payload[2:]
        if len(params) > PARAM_RSSI_ENABLE:
            self._frames.rssi = params[PARAM_RSSI_ENABLE] != 0
            framed = self._frames.framed = params[PARAM_CMD_OUT_ENABLE] != 0
            self.device_info = (
                f"telegrams {'framed' if framed else 'raw'}, "
                f"RSSI {'on' if self._frames.rssi else 'off'}"
            )
        return command(CMD_SET_MODE_REQ, bytes([self.link_mode]))

    def _check_second_answer(self, answer: Reply) -> None:
        check_link_mode_status(self.kind, self.link_mode, answer)

    def feed(self, data: bytes) -> list[Item]:
        """Frames in; telegrams and confirmations out."""
        out: list[Item] = []
        for frame in self._frames.feed(data):
            if isinstance(frame, Rejected):
                out.append(frame)
                continue
            cmd, payload, rssi = frame
            if cmd in (0, CMD_DATA_IND):
                out.append(
                    Heard(
                        bytes([len(payload)]) + payload,
                        dll_crcs="auto",
                        rssi_dbm=None if rssi is None else rssi_to_dbm(rssi),
                    )
                )
            elif cmd & CONFIRM:
                out.append(Reply(_NAMES.get(cmd, f"CNF_{cmd:02X}"), payload=payload))
        return out


class AmberDevice:
    """An Amber stick as seen from the host (framed output, RSSI on)."""

    def __init__(self) -> None:
        self.params = bytearray(PARAMS_READ)
        self.params[PARAM_CMD_OUT_ENABLE] = 1
        self.params[PARAM_RSSI_ENABLE] = 1
        self.link_mode: int | None = None
        self._frames = _AmberFrames()
        self._frames.rssi = False  # the host never sends indications

    def answer(self, data: bytes) -> bytes:
        """Commands in; confirmations out."""
        out = b""
        for frame in self._frames.feed(data):
            if isinstance(frame, Rejected):
                continue
            cmd, payload, _ = frame
            if cmd == CMD_GET_REQ and len(payload) == 2:
                start, count = payload
                chunk = bytes(self.params[start : start + count])
                out += command(CMD_GET_REQ | CONFIRM, bytes([start, len(chunk)]) + chunk)
            elif cmd == CMD_SET_MODE_REQ and len(payload) == 1:
                self.link_mode = payload[0]
                out += command(CMD_SET_MODE_REQ | CONFIRM, b"\x00")
        return out

    def indication(self, telegram: bytes, rssi_dbm: float) -> bytes:
        """CMD_DATA_IND with the RSSI byte before the checksum."""
        raw = max(-128, min(127, round((rssi_dbm + RSSI_OFFSET_DB) * 2))) & 0xFF
        frame = bytes([STX, CMD_DATA_IND, telegram[0]]) + telegram[1:] + bytes([raw])
        return frame + bytes([_xor(frame)])
