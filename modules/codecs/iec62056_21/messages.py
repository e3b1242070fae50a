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
from decimal import Decimal
from types import FunctionType
from typing import Any, ClassVar, Final, Literal

from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame
from modules.codecs.iec62056_21.data import (
    NUMBER,
    TEXT_VALUES,
    DataSet,
    DataValue,
    address_facts,
    ha_unit,
    normalize_obis,
    obis_key,
    records,
    value_of,
)
from modules.codecs.records import Decoded, Record

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

SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
ACK: Final = 0x06
NAK: Final = 0x15
CR: Final = 0x0D
LF: Final = 0x0A
CRLF: Final = b"\r\n"
INITIAL_BAUD: Final = 300  # sign-on and identification always run at 300 baud 7E1 (modes A, B, C)
MODE_C_BAUD: Final = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
MODE_B_BAUD: Final = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
OPTION_MODES: Final = {"0": "data_readout", "1": "programming", "2": "binary"}
_NOISE = frozenset(b"\r\n\t \x00\x7f\xff")
_METER_ID, _DEVICE_ADDRESS = (96, 1, 0), (0, 0, 0)
# A character no data-set address holds: outside printable ASCII, or a delimiter.
_BAD_ADDRESS = re.compile(r"[^\x20-\x7e]|[)!/]")


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
        return _mode(self.baud_char)

    @property
    def baud(self) -> int:
        """The highest baud rate the meter offers."""
        return _offered_baud(self.baud_char)

    @property
    def slow_reaction(self) -> bool:
        """A lower-case third letter: the meter needs 20 ms before it answers."""
        return self.manufacturer[2:3].islower()


def _mode(baud_char: str) -> Literal["A", "B", "C"]:
    if baud_char in MODE_C_BAUD:
        return "C"
    return "B" if baud_char in MODE_B_BAUD else "A"


def _offered_baud(baud_char: str) -> int:
    return MODE_C_BAUD.get(baud_char) or MODE_B_BAUD.get(baud_char) or INITIAL_BAUD


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
        return _option_mode(self.mode_char)


def _option_mode(mode_char: str) -> str:
    return OPTION_MODES.get(mode_char) or f"manufacturer_{mode_char}"


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
    return _bcc_of(data, 0, len(data))


def _bcc_of(data: bytes, start: int, stop: int) -> int:
    """The block check character of ``data[start:stop]``."""
    if COMPILED:
        # Compiled, an indexed loop is C over the bytes and costs least at every length.
        check = 0
        for index in range(start, stop):
            check ^= data[index]
        return check
    block = data[start:stop]
    if len(block) < _BCC_FOLD_FROM:
        check = 0
        for byte in block:
            check ^= byte
        return check
    # Interpreted, longer blocks: the bytes as one integer, folded onto itself half over half
    # down to one byte, the same XOR in a few big-integer steps instead of one interpreted
    # step per byte.
    check = int.from_bytes(block, "little")
    shift = 4 << (len(block) - 1).bit_length()  # bits: half the next power of two in bytes
    while shift >= BITS_PER_BYTE:
        check ^= check >> shift
        shift >>= 1
    return check & 0xFF


# Compiled with mypyc (scripts/compile-codecs), functions are not Python functions, and the
# BCC takes the shape that costs least in each build (timeit, a 13-200 byte block: the indexed
# loop compiled 0.03-0.15 us, the fold 0.45-1.1 us).
COMPILED: Final = type(_bcc_of) is not FunctionType
# Bytes; counted by callgrind, interpreted, the plain loop costs less below it.
_BCC_FOLD_FROM: Final = 32
BITS_PER_BYTE: Final = 8


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
    if not _sign_on_address_ok(address):
        raise FrameError(
            f"sign-on device address {address!r} is not 0-32 letters/digits", offset=pos + 2
        )
    end = bang + 1
    end += 2 if data[end : end + 2] == CRLF else 1 if data[end : end + 1] == b"\n" else 0
    return SignOn(address), end


def _sign_on_address_ok(address: str) -> bool:
    """Up to 32 letters, digits (str.isalnum's) and spaces."""
    letters = address.replace(" ", "")
    return len(address) <= _SIGN_ON_ADDRESS_MAX and (not letters or letters.isalnum())


def _identification(data: bytes, pos: int) -> tuple[Identification, int]:
    end = _line_end(data, pos)
    line = _text(data[pos + 1 : end]).rstrip("\r")
    fields = _identification_fields(line)
    if fields is None:
        raise FrameError(f"identification {line!r} does not start /XXXZ", offset=pos)
    return Identification(*fields), end + 1


def _identification_fields(line: str) -> tuple[str, str, str, str | None] | None:
    """Manufacturer, baud character, identification and enhanced id of ``XXXZ[\\W]ident``."""
    if len(line) < 4 or not line[:3].isalpha() or not line[:3].isascii():
        return None
    manufacturer, baud_char, rest = line[:3], line[3], line[4:]
    enhanced = None
    if rest.startswith("\\") and len(rest) >= 2:
        enhanced, rest = rest[1], rest[2:]
    return manufacturer, baud_char, rest, enhanced


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

_PROTOCOL: Final = "iec62056-21"
_NOISE_BYTES = bytes(sorted(_NOISE))


class IecDecoder:
    """``meter-gateway decode iec62056-21``: a readout or any part of a session, as text."""

    input_kind: ClassVar[Literal["hex", "text"]] = "text"

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode every message in the input; records come from its data blocks."""
        del key, auth_key  # IEC 62056-21 is not encrypted
        # An input of one message of a usual shape (sign-on, identification, option select,
        # command, data block) is read on a short path that builds no message objects; any
        # other input, and any message with something wrong, takes the general path, which
        # words every error. Both give the same result.
        first = data[0] if len(data) > 1 else 0  # 0: no short path
        decoded = None
        if first == STX:
            decoded = _one_data_block(data)
        elif first == _SLASH:
            decoded = _one_slash(data)
        elif first == SOH:
            decoded = _one_command(data)
        elif first == ACK:
            decoded = _one_option_select(data)
        if decoded is not None:
            return decoded
        return _decode_general(data)


def _decode_general(data: bytes) -> Decoded:
    if not data.strip(_NOISE_BYTES):
        raise IncompleteFrame("no message in the input", offset=len(data))
    messages = parse(data)
    frame: dict[str, Any] = {"messages": [_kind(m) for m in messages]}
    meter: dict[str, Any] = {}
    data_sets: list[DataSet] = []
    for message in messages:
        _describe(message, frame, meter, data_sets)
    found = records(data_sets)
    _meter_id(meter, found)
    if len(messages) == 1 and isinstance(messages[0], Ack | Nak):
        frame["name"] = "ACK" if isinstance(messages[0], Ack) else "NAK"
    return Decoded(protocol=_PROTOCOL, meter=meter, frame=frame, records=found)


def _meter_id(meter: dict[str, Any], found: list[Record]) -> None:
    """The meter id (96.1.0), else the device address (0.0.0): the first of each."""
    if "id" in meter:
        return
    address = None
    for r in found:
        if isinstance(r.value, str):
            code = obis_key(r.obis)
            if code == _METER_ID:
                meter["id"] = r.value
                return
            if code == _DEVICE_ADDRESS and address is None:
                address = r.value
    if address is not None:
        meter["id"] = address


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
        fields = (message.manufacturer, message.baud_char, message.identification)
        _identification_facts(frame, meter, (*fields, message.enhanced))
    elif isinstance(message, OptionSelect):
        frame["option"] = _option_facts(
            message.protocol_control, message.baud_char, message.mode_char
        )
    elif isinstance(message, DataMessage):
        found = message.data_sets
        data_sets.extend(found)
        _data_facts(
            frame,
            framed=message.framed,
            end=message.end,
            given=message.bcc,
            bcc_ok=message.bcc_ok,
            count=len(found),
        )
    elif isinstance(message, CommandMessage):
        shown = None
        if message.data_sets and message.command != "P":  # a password stays off the output
            shown = [str(ds) for ds in message.data_sets]
        _command_facts(frame, message.command + message.command_type, message.bcc, shown)


def _identification_facts(
    frame: dict[str, Any], meter: dict[str, Any], fields: tuple[str, str, str, str | None]
) -> None:
    manufacturer, baud_char, identification, enhanced = fields
    meter["manufacturer"] = manufacturer.upper()
    meter["identification"] = identification
    frame["manufacturer"] = manufacturer
    frame["baud_char"] = baud_char
    frame["mode"] = _mode(baud_char)
    frame["baud"] = _offered_baud(baud_char)
    frame["identification"] = identification
    frame["slow_reaction"] = manufacturer[2:3].islower()
    if enhanced is not None:
        frame["enhanced_id"] = enhanced


def _option_facts(protocol_control: str, baud_char: str, mode_char: str) -> dict[str, Any]:
    return {
        "protocol_control": protocol_control,
        "baud_char": baud_char,
        "baud": MODE_C_BAUD.get(baud_char, INITIAL_BAUD),
        "mode": _option_mode(mode_char),
    }


def _data_facts(
    frame: dict[str, Any],
    *,
    framed: bool,
    end: bool,
    given: int | None,
    bcc_ok: bool | None,
    count: int,
) -> None:
    frame["stx"] = framed
    frame["etx"] = given is not None
    frame["end"] = end
    if given is not None:
        frame["bcc"] = f"{given:02X}"
        frame["bcc_ok"] = bcc_ok
    frame["data_sets"] = frame.get("data_sets", 0) + count


def _command_facts(
    frame: dict[str, Any], command: str, given: int | None, shown: list[str] | None
) -> None:
    frame["command"] = command
    frame["bcc"] = f"{given:02X}"
    frame["bcc_ok"] = True
    if shown is not None:
        frame["command_data"] = shown


# ---------------------------------------------------------------- one message, short path
# Each returns None unless the input is exactly one message of its shape with nothing wrong,
# and otherwise what _decode_general gives for it (the frame facts written out as _describe
# writes them; tests/codecs/test_iec62056_21.py holds both paths to the same output).
# Delimiters are checked by index and with `in` rather than bytes.find, which parses its
# arguments on every call.

_QUESTION: Final = ord("?")
_SLASH: Final = ord("/")
# Spaces and line ends a data block may hold between its data sets.
_BETWEEN: Final = " \t\r\n"
_LINE_ENDS: Final = "\r\n"
# Addresses and units are looked up here first, by the text as written (a dict lookup, where
# the lru_cache of data.address_facts costs a call and a key); bounded: a stream of garbled
# addresses must not grow them without end. Per address: its record name, its OBIS code and
# whether its value may be a number.
_FACTS: Final[dict[str, tuple[str, str | None, bool]]] = {}
_HA_UNITS: Final[dict[str, str | None]] = {}
_CACHED_MAX: Final = 1024
_UNSEEN: Final = "\x00unseen"  # no unit is spelled so: not yet in _HA_UNITS


def _one_slash(data: bytes) -> Decoded | None:
    """``/?address!CRLF`` or ``/XXXZ[\\W]ident CRLF``."""
    last = len(data) - 1
    if data[1] == _QUESTION:
        if (
            last < _SIGN_ON_MIN
            or data[last - 2] != BANG
            or data[last - 1] != CR
            or data[last] != LF
        ):
            return None
        address = data[2 : last - 2].decode("latin-1")
        if address and ("!" in address or not _sign_on_address_ok(address)):
            return None
        return Decoded(_PROTOCOL, {}, {"messages": ["sign_on"], "address": address}, [])
    if data[last] != LF:
        return None
    line = data[1:last].decode("latin-1")
    if "\n" in line:
        return None
    fields = _identification_fields(line.rstrip("\r"))
    if fields is None:
        return None
    manufacturer, baud_char, identification, enhanced = fields
    # The facts _identification_facts gives, for this one message.
    frame: dict[str, Any] = {
        "messages": ["identification"],
        "manufacturer": manufacturer,
        "baud_char": baud_char,
        "mode": _mode(baud_char),
        "baud": _offered_baud(baud_char),
        "identification": identification,
        "slow_reaction": manufacturer[2:3].islower(),
    }
    if enhanced is not None:
        frame["enhanced_id"] = enhanced
    meter = {"manufacturer": manufacturer.upper(), "identification": identification}
    return Decoded(_PROTOCOL, meter, frame, [])


def _one_option_select(data: bytes) -> Decoded | None:
    """``ACK V Z Y CRLF``."""
    if len(data) != _OPTION_SELECT_BYTES or data[4] != CR or data[5] != LF:
        return None
    option = data[1:4]
    if not option.isalnum():
        return None
    text = option.decode("latin-1")
    baud_char = text[1]
    facts = {
        "protocol_control": text[0],
        "baud_char": baud_char,
        "baud": MODE_C_BAUD.get(baud_char, INITIAL_BAUD),
        "mode": _option_mode(text[2]),
    }
    return Decoded(_PROTOCOL, {}, {"messages": ["option_select"], "option": facts}, [])


def _address_ok(text: str) -> bool:
    """Empty, or characters an address holds: printable ASCII but for "(", ")", "!" and "/"
    (the callers' split on "(" leaves none of the first)."""
    return not text or (
        text.isascii()
        and text.isprintable()
        and "!" not in text
        and ")" not in text
        and "/" not in text
    )


def _one_command(data: bytes) -> Decoded | None:
    """``SOH C D [STX data-sets] ETX BCC``: data sets one after another, nothing between."""
    last = len(data) - 1
    if last < _COMMAND_MIN:
        return None
    head = data[1:3].decode("latin-1")
    if not (head[0].isalpha() and head[1].isdigit()):
        return None
    etx = last - 1
    if data[etx] != ETX or _bcc_of(data, 1, last) != data[last]:
        return None
    shown: list[str] | None = None
    if etx > _COMMAND_HEAD_END:
        if data[3] != STX:
            return None
        text = data[4:etx].decode("latin-1")
        if "\x03" in text:
            return None
        pieces = text.split("(")
        address = pieces[0]
        if not _address_ok(address) or (len(pieces) == 1 and address):
            return None
        # A data set as written, but for spaces around its address; a password stays off
        # the output.
        keep = head[0] != "P"
        sets: list[str] = []
        current = address.strip() if keep else ""
        final = len(pieces) - 1
        for index in range(1, final + 1):
            inner, closed, after = pieces[index].partition(")")
            if not closed or "\r" in inner or "\n" in inner:
                return None
            if keep:
                current += "(" + inner + ")"
            if after:
                if index == final or not _address_ok(after):
                    return None
                if keep:
                    sets.append(current)
                    current = after.strip()
        if final and keep:
            sets.append(current)
            shown = sets
    frame: dict[str, Any] = {
        "messages": ["command"],
        "command": head,
        "bcc": _HEX[data[last]],
        "bcc_ok": True,
    }
    if shown is not None:
        frame["command_data"] = shown
    return Decoded(_PROTOCOL, {}, frame, [])


def _block_end(tail: str) -> bool | None:
    """After the last data set (spaces and line ends taken off): whether it is the end mark
    "!" with line ends after it (True) or nothing (False); None for anything else."""
    if not tail:
        return False
    if tail[0] == "!" and not tail[1:].strip(_LINE_ENDS):
        return True
    return None


def _one_data_block(data: bytes) -> Decoded | None:
    """``STX data-lines [! CRLF] ETX BCC``."""
    last = len(data) - 1
    etx = last - 1
    if etx < 1 or data[etx] != ETX or _bcc_of(data, 1, last) != data[last]:
        return None
    # Split at every "(": the first piece holds the first data set's address, each other one
    # a value group up to its ")" and what follows: nothing (the next group of the same data
    # set), the next data set's address after spaces or line ends, or after the last group
    # the end mark. Anything else (a stray ")" or "!", a tab or line end inside an address,
    # a value group across lines, text after the end mark) is left to the general path.
    text = data[1:etx].decode("latin-1")
    if "\x03" in text:
        return None
    pieces = text.split("(")
    address = pieces[0].lstrip(_BETWEEN)
    found: list[Record] = []
    count = 0
    final = len(pieces) - 1
    end = _block_end(address) if not final else False
    if end is None or (final and not _address_ok(address)):
        return None
    address = address.rstrip()
    groups: list[tuple[str, str | None]] = []
    for index in range(1, final + 1):
        inner, closed, after = pieces[index].partition(")")
        if not closed or "\r" in inner or "\n" in inner:
            return None
        value, star, unit = inner.partition("*")
        groups.append((value, unit if star else None))
        if after or index == final:
            after = after.lstrip(_BETWEEN)
            if index == final:
                end = _block_end(after)
                if end is None:
                    return None
            elif not _address_ok(after):
                return None
            _add_records(found, address, groups)
            count += 1
            address, groups = after.rstrip(), []
    frame = {
        "messages": ["readout" if end else "data"],
        "stx": True,
        "etx": True,
        "end": end,
        "bcc": _HEX[data[last]],
        "bcc_ok": True,
        "data_sets": count,
    }
    meter: dict[str, Any] = {}
    if found:
        _meter_id(meter, found)
    return Decoded(_PROTOCOL, meter, frame, found)


def _add_records(found: list[Record], address: str, groups: list[tuple[str, str | None]]) -> None:
    """data.add_records, with the address's facts and the units from this module's tables."""
    facts = _FACTS.get(address)
    if facts is None:
        key, name, obis = address_facts(address)
        facts = (name, obis, key not in TEXT_VALUES)
        if len(_FACTS) >= _CACHED_MAX:
            _FACTS.clear()
        _FACTS[address] = facts
    name, obis, numeric = facts
    many = len(groups) > 1
    for index in range(len(groups)):
        value, unit = groups[index]
        text = value.strip()
        if not text:
            continue
        raw: dict[str, Any] = {"address": address, "value": value}
        shown_unit = None
        if unit is not None:
            raw["unit"] = unit
            shown_unit = _HA_UNITS.get(unit, _UNSEEN)
            if shown_unit is _UNSEEN:
                shown_unit = ha_unit(unit)
                if len(_HA_UNITS) >= _CACHED_MAX:
                    _HA_UNITS.clear()
                _HA_UNITS[unit] = shown_unit
        if many:
            raw["index"] = index
        number: Decimal | str = text
        if (unit or numeric) and (
            (text.isdigit() and text.isascii()) or NUMBER.fullmatch(text) is not None
        ):
            number = Decimal(text)
        found.append(
            Record(
                name if index == 0 else f"{name}_{index}",
                number,
                shown_unit,
                obis,
                0,
                0,
                0,
                "instantaneous",
                raw,
            )
        )


_SIGN_ON_ADDRESS_MAX: Final = 32
_SIGN_ON_MIN: Final = 4  # "/?!" CR LF: the index of the last byte
BANG: Final = ord("!")
_HEX: Final = tuple(f"{byte:02X}" for byte in range(256))
_OPTION_SELECT_BYTES: Final = 6
_COMMAND_MIN: Final = 4  # SOH C D ETX BCC: the index of the last byte
_COMMAND_HEAD_END: Final = 3  # SOH C D: where STX or ETX comes
