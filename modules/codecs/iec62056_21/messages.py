"""IEC 62056-21 (IEC 1107) optical readout: sign-on, identification, option select, data blocks.

Sans-IO. A session as an IR head sees it (echo included): ``/?[address]!CRLF`` from us,
``/XXXZ[\\W]ident CRLF`` from the meter, ``ACK V Z Y CRLF`` from us, then the readout
``STX data-lines ! CRLF ETX BCC``, where BCC is the XOR of every byte after STX up to and
including ETX. Programming mode wraps commands as ``SOH C D STX data ETX BCC``. Push-mode
meters (mode D) and many captures send the data lines without STX/ETX/BCC (IEC 62056-21:2002
clause 6.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame
from modules.codecs.iec62056_21.data import (
    DataSet,
    DataValue,
    ha_unit,
    normalize_obis,
    obis_key,
    records,
    value_of,
)
from modules.codecs.records import Decoded

__all__ = [
    "INITIAL_BAUD",
    "Ack",
    "CommandMessage",
    "DataMessage",
    "DataSet",
    "DataValue",
    "Identification",
    "IecDecoder",
    "Message",
    "Nak",
    "OptionSelect",
    "SignOn",
    "bcc",
    "encode",
    "ha_unit",
    "normalize_obis",
    "parse",
    "records",
    "value_of",
]

SOH, STX, ETX, ACK, NAK = 0x01, 0x02, 0x03, 0x06, 0x15
CRLF = b"\r\n"
INITIAL_BAUD = 300  # sign-on and identification always run at 300 baud 7E1 (modes A, B, C)
MODE_C_BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
MODE_B_BAUD = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
OPTION_MODES = {"0": "data_readout", "1": "programming", "2": "binary"}
_NOISE = frozenset(b"\r\n\t \x00\x7f\xff")
_ID_KEYS = ((96, 1, 0), (0, 0, 0))
# A character no data-set address holds: outside printable ASCII, or a delimiter.
_BAD_ADDRESS = re.compile(r"[^\x20-\x7e]|[)!/]")
# Sign-on addresses are letters, digits and spaces (str.isalnum's letters and digits).
_BAD_SIGN_ON_ADDRESS = re.compile(r"[^\w ]|_")


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class SignOn:
    """Request message ``/?address!CRLF``; an empty address asks any meter on the line."""

    address: str = ""


@dataclass(frozen=True, slots=True)
class Identification:
    """The meter's ``/XXXZ[\\W]ident``: manufacturer, baud character, identification."""

    manufacturer: str
    baud_char: str
    identification: str = ""
    enhanced: str | None = None  # W of the \\W sequence; "2" offers mode E (HDLC)

    @property
    def mode(self) -> Literal["A", "B", "C"]:
        """Protocol mode the baud character implies (mode A: no baud switch)."""
        if self.baud_char in MODE_C_BAUD:
            return "C"
        return "B" if self.baud_char in MODE_B_BAUD else "A"

    @property
    def baud(self) -> int:
        """The highest baud rate the meter offers."""
        return MODE_C_BAUD.get(self.baud_char) or MODE_B_BAUD.get(self.baud_char) or INITIAL_BAUD

    @property
    def slow_reaction(self) -> bool:
        """A lower-case third letter: the meter needs 20 ms before it answers."""
        return self.manufacturer[2:3].islower()


@dataclass(frozen=True, slots=True)
class OptionSelect:
    """``ACK V Z Y CRLF``: protocol control V, baud character Z, mode Y (0 readout, 1 prog, 2 E)."""

    baud_char: str
    mode_char: str = "0"
    protocol_control: str = "0"

    @property
    def baud(self) -> int:
        """The baud rate both sides switch to after this message (mode C)."""
        return MODE_C_BAUD.get(self.baud_char, INITIAL_BAUD)

    @property
    def mode(self) -> str:
        """data_readout, programming, binary, or the manufacturer's own digit."""
        return OPTION_MODES.get(self.mode_char, f"manufacturer_{self.mode_char}")


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A readout (``end``: closed by ``!``) or a programming-mode answer, framed or not."""

    lines: tuple[tuple[DataSet, ...], ...]
    end: bool = True
    framed: bool = True
    bcc: int | None = None  # as received; None when there was no ETX/BCC
    bcc_ok: bool | None = None

    @property
    def data_sets(self) -> tuple[DataSet, ...]:
        """Every data set, line by line."""
        return tuple(ds for line in self.lines for ds in line)


@dataclass(frozen=True, slots=True)
class CommandMessage:
    """Programming mode ``SOH C D [STX data] ETX BCC``: P0 password, R1 read, W2 write, B0 break."""

    command: str
    command_type: str
    data_sets: tuple[DataSet, ...] | None = None
    bcc: int | None = None
    bcc_ok: bool | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """A lone acknowledgement."""


@dataclass(frozen=True, slots=True)
class Nak:
    """A lone negative acknowledgement (asks for a repeat)."""


Message = SignOn | Identification | OptionSelect | DataMessage | CommandMessage | Ack | Nak


# ---------------------------------------------------------------- encoding


def bcc(data: bytes) -> int:
    """Block check character: the XOR of the bytes (after SOH/STX, up to and including ETX)."""
    check = 0
    for byte in data:
        check ^= byte
    return check


def encode(message: Message) -> bytes:
    """The bytes of a message as sent on the line (latin-1 text, control bytes included)."""
    if isinstance(message, SignOn):
        return f"/?{message.address}!".encode("latin-1") + CRLF
    if isinstance(message, Identification):
        enhanced = f"\\{message.enhanced}" if message.enhanced is not None else ""
        text = f"/{message.manufacturer}{message.baud_char}{enhanced}{message.identification}"
        return text.encode("latin-1") + CRLF
    if isinstance(message, OptionSelect):
        text = f"{message.protocol_control}{message.baud_char}{message.mode_char}"
        return bytes((ACK,)) + text.encode("latin-1") + CRLF
    if isinstance(message, Ack):
        return bytes((ACK,))
    if isinstance(message, Nak):
        return bytes((NAK,))
    if isinstance(message, CommandMessage):
        body = f"{message.command}{message.command_type}".encode("latin-1")
        if message.data_sets is not None:
            body += bytes((STX,)) + "".join(map(str, message.data_sets)).encode("latin-1")
        body += bytes((ETX,))
        return bytes((SOH,)) + body + bytes((bcc(body),))
    lines = ["".join(map(str, line)) for line in message.lines]
    text = "".join(line + "\r\n" for line in lines) + "!\r\n" if message.end else "\r\n".join(lines)
    if not message.framed:
        return text.encode("latin-1")
    body = text.encode("latin-1") + bytes((ETX,))
    return bytes((STX,)) + body + bytes((bcc(body),))


# ---------------------------------------------------------------- parsing


def parse(data: bytes, *, check_bcc: bool = True) -> list[Message]:
    """Every message in a transcript, in order; noise between messages is skipped."""
    messages: list[Message] = []
    pos = 0
    while pos < len(data):
        byte = data[pos]
        message: Message
        if byte in _NOISE:
            pos += 1
            continue
        if byte == ord("/") and data[pos + 1 : pos + 2] == b"?":
            message, pos = _sign_on(data, pos)
        elif byte == ord("/"):
            message, pos = _identification(data, pos)
        elif byte == STX:
            message, pos = _framed_data(data, pos, check_bcc=check_bcc)
        elif byte == SOH:
            message, pos = _command(data, pos, check_bcc=check_bcc)
        elif byte == ACK:
            message, pos = _ack(data, pos)
        elif byte == NAK:
            message, pos = Nak(), pos + 1
        elif 0x20 < byte < 0x7F:
            message, pos = _unframed_data(data, pos)
        else:
            raise FrameError(f"control byte 0x{byte:02X} outside any message", offset=pos)
        messages.append(message)
    return messages


def _line_end(data: bytes, pos: int) -> int:
    """Index of the LF ending the line that starts at pos; IncompleteFrame when there is none."""
    end = data.find(b"\n", pos)
    if end < 0:
        raise IncompleteFrame("line without CR LF", offset=len(data))
    return end


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


def _sign_on(data: bytes, pos: int) -> tuple[SignOn, int]:
    bang = data.find(b"!", pos + 2)
    if bang < 0:
        raise IncompleteFrame("sign-on request without '!'", offset=len(data))
    address = _text(data[pos + 2 : bang])
    if _BAD_SIGN_ON_ADDRESS.search(address) or len(address) > 32:
        raise FrameError(
            f"sign-on device address {address!r} is not 0-32 letters/digits", offset=pos + 2
        )
    end = bang + 1
    end += 2 if data[end : end + 2] == CRLF else 1 if data[end : end + 1] == b"\n" else 0
    return SignOn(address), end


def _identification(data: bytes, pos: int) -> tuple[Identification, int]:
    end = _line_end(data, pos)
    line = _text(data[pos + 1 : end]).rstrip("\r")
    if len(line) < 4 or not line[:3].isalpha() or not line[:3].isascii():
        raise FrameError(f"identification {line!r} does not start /XXXZ", offset=pos)
    manufacturer, baud_char, rest = line[:3], line[3], line[4:]
    enhanced = None
    if rest.startswith("\\") and len(rest) >= 2:
        enhanced, rest = rest[1], rest[2:]
    return Identification(manufacturer, baud_char, rest, enhanced), end + 1


def _ack(data: bytes, pos: int) -> tuple[Ack | OptionSelect, int]:
    option = data[pos + 1 : pos + 4]
    if len(option) == 3 and data[pos + 4 : pos + 6] == CRLF and option.isalnum():
        text = _text(option)
        return OptionSelect(baud_char=text[1], mode_char=text[2], protocol_control=text[0]), pos + 6
    return Ack(), pos + 1


def _check(body: bytes, given: int, where: int, check_bcc: bool, kamstrup: bool) -> bool:
    ok = bcc(body) == given
    if not ok and kamstrup:
        # Kamstrup MULTICAL/382 readouts may sum the bytes instead (MULTICAL 41 description 11.2).
        ok = (sum(body) & 0x7F) == (given & 0x7F)
    if not ok and check_bcc:
        raise ChecksumError(f"BCC 0x{given:02X}, computed 0x{bcc(body):02X}", offset=where)
    return ok


def _framed_data(data: bytes, pos: int, *, check_bcc: bool) -> tuple[DataMessage, int]:
    etx = data.find(bytes((ETX,)), pos + 1)
    if etx < 0:
        # Some captures stop after "!": the data is whole, only ETX and BCC are missing.
        lines, end = _lines(data, pos + 1, len(data))
        if not end:
            raise IncompleteFrame("data block without ETX or '!'", offset=len(data))
        return DataMessage(lines, end=True, framed=True), len(data)
    if etx + 1 >= len(data):
        raise IncompleteFrame("no BCC after ETX", offset=etx + 1)
    given = data[etx + 1]
    ok = _check(data[pos + 1 : etx + 1], given, etx + 1, check_bcc, _kamstrup(data[:pos]))
    lines, end = _lines(data, pos + 1, etx)
    return DataMessage(lines, end=end, framed=True, bcc=given, bcc_ok=ok), etx + 2


def _kamstrup(before: bytes) -> bool:
    return b"/KAM" in before.upper()


def _unframed_data(data: bytes, pos: int) -> tuple[DataMessage, int]:
    """Data lines without STX: up to and including '!', or up to the next "/" line."""
    mark = re.compile(rb"!|\n/").search(data, pos)
    stop = len(data) if mark is None else mark.start() + 1
    lines, end = _lines(data, pos, stop)
    return DataMessage(lines, end=end, framed=False), stop


def _lines(data: bytes, start: int, stop: int) -> tuple[tuple[tuple[DataSet, ...], ...], bool]:
    """Data lines between start and stop, and whether the end mark '!' closed them."""
    lines: list[tuple[DataSet, ...]] = []
    current: list[DataSet] = []
    ended = False
    pos = start
    while pos < stop:
        byte = data[pos]
        if byte == ord("!"):
            if data[pos + 1 : stop].strip(b"\r\n"):
                raise FrameError("data after the end mark '!'", offset=pos + 1)
            ended = True
            break
        if byte in b"\r\n":
            if current:
                lines.append(tuple(current))
                current = []
            pos += 1
        elif byte in b" \t":
            pos += 1
        else:
            data_set, pos = _data_set(data, pos, stop)
            current.append(data_set)
    if current:
        lines.append(tuple(current))
    return tuple(lines), ended


def _data_set(data: bytes, pos: int, stop: int) -> tuple[DataSet, int]:
    opening = data.find(b"(", pos, stop)
    if opening < 0:
        raise FrameError("data line without '('", offset=pos)
    address = _text(data[pos:opening])
    if _BAD_ADDRESS.search(address):
        raise FrameError(f"address {address!r} holds characters no address has", offset=pos)
    values = []
    pos = opening
    while pos < stop and data[pos] == ord("("):
        closing = data.find(b")", pos, stop)
        if closing < 0:
            raise IncompleteFrame("data set without ')'", offset=stop)
        inner = _text(data[pos + 1 : closing])
        if "(" in inner or "\r" in inner or "\n" in inner:
            raise FrameError(f"value {inner!r} runs past its line", offset=pos)
        value, star, unit = inner.partition("*")
        values.append(DataValue(value, unit if star else None))
        pos = closing + 1
    return DataSet(address.strip(), tuple(values)), pos


def _command(data: bytes, pos: int, *, check_bcc: bool) -> tuple[CommandMessage, int]:
    head = _text(data[pos + 1 : pos + 3])
    if len(head) < 2:
        raise IncompleteFrame("command message cut short", offset=len(data))
    if not (head[0].isalpha() and head[1].isdigit()):
        raise FrameError(f"command {head!r} is not a letter and a digit", offset=pos + 1)
    etx = data.find(bytes((ETX,)), pos + 3)
    if etx < 0 or etx + 1 >= len(data):
        raise IncompleteFrame("command message without ETX and BCC", offset=len(data))
    ok = _check(data[pos + 1 : etx + 1], data[etx + 1], etx + 1, check_bcc, False)
    data_sets = None
    if etx > pos + 3:
        if data[pos + 3] != STX:
            raise FrameError("command data does not start with STX", offset=pos + 3)
        data_sets = _command_data(data, pos + 4, etx)
    return CommandMessage(head[0], head[1], data_sets, data[etx + 1], ok), etx + 2


def _command_data(data: bytes, start: int, stop: int) -> tuple[DataSet, ...]:
    found = []
    pos = start
    while pos < stop:
        data_set, pos = _data_set(data, pos, stop)
        found.append(data_set)
    return tuple(found)


# ---------------------------------------------------------------- decode for the CLI


class IecDecoder:
    """``meter-gateway decode iec62056-21``: a readout or any part of a session, as text."""

    input_kind: ClassVar[Literal["hex", "text"]] = "text"

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode every message in the input; records come from its data blocks."""
        del key, auth_key  # IEC 62056-21 is not encrypted
        if not data.strip(bytes(_NOISE)):
            raise IncompleteFrame("no message in the input", offset=len(data))
        messages = parse(data)
        frame: dict[str, Any] = {"messages": [_kind(m) for m in messages]}
        meter: dict[str, Any] = {}
        data_sets: list[DataSet] = []
        for message in messages:
            _describe(message, frame, meter, data_sets)
        found = records(data_sets)
        if "id" not in meter:
            # The meter id (96.1.0), else the device address (0.0.0): the first of each.
            ids: dict[tuple[int, int, int], str] = {}
            for r in found:
                if isinstance(r.value, str):
                    code = obis_key(r.obis)
                    if code is not None and code in _ID_KEYS and code not in ids:
                        ids[code] = r.value
            for wanted in _ID_KEYS:
                if wanted in ids:
                    meter["id"] = ids[wanted]
                    break
        if len(messages) == 1 and isinstance(messages[0], Ack | Nak):
            frame["name"] = "ACK" if isinstance(messages[0], Ack) else "NAK"
        return Decoded(protocol="iec62056-21", meter=meter, frame=frame, records=found)


def _kind(message: Message) -> str:
    kinds = {
        SignOn: "sign_on",
        Identification: "identification",
        OptionSelect: "option_select",
        CommandMessage: "command",
        Ack: "ack",
        Nak: "nak",
    }
    if isinstance(message, DataMessage):
        return "readout" if message.end else "data"
    return kinds[type(message)]


def _describe(
    message: Message, frame: dict[str, Any], meter: dict[str, Any], data_sets: list[DataSet]
) -> None:
    if isinstance(message, SignOn):
        frame["address"] = message.address
    elif isinstance(message, Identification):
        meter["manufacturer"] = message.manufacturer.upper()
        meter["identification"] = message.identification
        frame |= {
            "manufacturer": message.manufacturer,
            "baud_char": message.baud_char,
            "mode": message.mode,
            "baud": message.baud,
            "identification": message.identification,
            "slow_reaction": message.slow_reaction,
        }
        if message.enhanced is not None:
            frame["enhanced_id"] = message.enhanced
    elif isinstance(message, OptionSelect):
        frame["option"] = {
            "protocol_control": message.protocol_control,
            "baud_char": message.baud_char,
            "baud": message.baud,
            "mode": message.mode,
        }
    elif isinstance(message, DataMessage):
        found = message.data_sets
        data_sets.extend(found)
        frame |= {"stx": message.framed, "etx": message.bcc is not None, "end": message.end}
        if message.bcc is not None:
            frame |= {"bcc": f"{message.bcc:02X}", "bcc_ok": message.bcc_ok}
        frame["data_sets"] = frame.get("data_sets", 0) + len(found)
    elif isinstance(message, CommandMessage):
        frame["command"] = f"{message.command}{message.command_type}"
        frame |= {"bcc": f"{message.bcc:02X}", "bcc_ok": message.bcc_ok}
        if message.data_sets and message.command != "P":  # a password stays off the output
            frame["command_data"] = [str(ds) for ds in message.data_sets]
