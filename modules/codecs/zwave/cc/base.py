"""Z-Wave command class basics: ids, the payload reader, the command base class, class lists.

A command is a frozen msgspec Struct (Meter in ``zwave.meter``, Version and Manufacturer
Specific in ``zwave.cc.version``, Association and Z-Wave Plus Info in ``zwave.cc.association``):
``encode()`` gives the payload starting with the command class byte, ``parse_body(reader)``
reads the bytes after the command byte. Structs rather than dataclasses because a gateway loads
about a hundred of these classes and a dataclass carries its own generated ``__init__``,
``__eq__``, ``__repr__`` and ``__hash__`` (about 14 kB each); a Struct's live in msgspec's C
code (bench/startup.py's idle RSS). Receivers ignore trailing bytes, as the Z-Wave
Application Command Class specification (SDS13781) asks of nodes that meet a newer version of
a command. Constants: zwave-js/specs ``API_includes/ZW_classcmd.h``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import IntEnum
from typing import Any, ClassVar, Self

import msgspec

from modules.codecs.errors import FrameError, IncompleteFrame

__all__ = [
    "COMMAND_CLASS_MARK",
    "EXTENDED_CC_FIRST",
    "ByteCommand",
    "ByteLayout",
    "CcCommand",
    "CommandClassId",
    "LibraryType",
    "NoOperation",
    "Reader",
    "UnknownCommand",
    "cc_name",
    "check_length",
    "check_u8",
    "check_u16",
    "encode_cc_list",
    "pack_bytes",
    "parse_cc_list",
    "plain_fields",
    "read_bytes",
]


class CommandClassId(IntEnum):
    """Command class identifiers (ZW_classcmd.h) the gateway names in its output."""

    NO_OPERATION = 0x00
    BASIC = 0x20
    APPLICATION_STATUS = 0x22
    SWITCH_BINARY = 0x25
    SENSOR_MULTILEVEL = 0x31
    METER = 0x32
    TRANSPORT_SERVICE = 0x55
    CRC_16_ENCAP = 0x56
    ASSOCIATION_GRP_INFO = 0x59
    DEVICE_RESET_LOCALLY = 0x5A
    CENTRAL_SCENE = 0x5B
    ANTITHEFT = 0x5D
    ZWAVEPLUS_INFO = 0x5E
    MULTI_CHANNEL = 0x60
    SUPERVISION = 0x6C
    CONFIGURATION = 0x70
    NOTIFICATION = 0x71
    MANUFACTURER_SPECIFIC = 0x72
    POWERLEVEL = 0x73
    FIRMWARE_UPDATE_MD = 0x7A
    BATTERY = 0x80
    WAKE_UP = 0x84
    ASSOCIATION = 0x85
    VERSION = 0x86
    INDICATOR = 0x87
    MULTI_CHANNEL_ASSOCIATION = 0x8E
    MULTI_CMD = 0x8F
    SECURITY = 0x98
    SECURITY_2 = 0x9F


COMMAND_CLASS_MARK = 0xEF  # separates supported from controlled classes in a node information list
EXTENDED_CC_FIRST = 0xF1  # a first byte from here on starts a two-byte command class id


class LibraryType(IntEnum):
    """Z-Wave protocol library types (Version Report, ZW_GetVersion)."""

    STATIC_CONTROLLER = 0x01
    CONTROLLER = 0x02
    ENHANCED_END_NODE = 0x03
    END_NODE = 0x04
    INSTALLER = 0x05
    ROUTING_END_NODE = 0x06
    BRIDGE_CONTROLLER = 0x07
    DEVICE_UNDER_TEST = 0x08
    AV_REMOTE = 0x0A
    AV_DEVICE = 0x0B


def cc_name(cc: int) -> str:
    """The ZW_classcmd.h name of a command class, or its hex id when the gateway has no name."""
    try:
        return CommandClassId(cc).name
    except ValueError:
        return f"0x{cc:02X}"


class Reader:
    """A cursor over received bytes that raises the codec's errors with absolute byte offsets."""

    __slots__ = ("_base", "_data", "_pos")

    def __init__(self, data: bytes, *, base: int = 0) -> None:
        self._data = data
        self._pos = 0
        self._base = base

    @property
    def offset(self) -> int:
        """The absolute offset of the next byte (``base`` + position)."""
        return self._base + self._pos

    @property
    def remaining(self) -> int:
        """How many bytes are left."""
        return len(self._data) - self._pos

    def u8(self, what: str) -> int:
        """One unsigned byte."""
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        """A big-endian unsigned 16-bit integer."""
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        """A big-endian unsigned 32-bit integer."""
        return int.from_bytes(self.take(4, what), "big")

    def signed(self, size: int, what: str) -> int:
        """A big-endian two's complement integer of ``size`` bytes."""
        return int.from_bytes(self.take(size, what), "big", signed=True)

    def take(self, count: int, what: str) -> bytes:
        """Exactly ``count`` bytes, or IncompleteFrame at the first missing byte."""
        if count > self.remaining:
            raise IncompleteFrame(
                f"{what} needs {count} byte(s), {self.remaining} left", offset=self.offset
            )
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def rest(self) -> bytes:
        """Every byte that is left."""
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    def invalid(self, message: str, *, back: int = 1) -> FrameError:
        """A ``bad_frame`` error pointing ``back`` bytes before the cursor (the field just read)."""
        return FrameError(message, offset=self.offset - back, code="bad_frame")


def plain_fields(command: object) -> dict[str, Any]:
    """A Struct's fields as JSON-ready values: bytes as hex, tuples as lists."""
    if not isinstance(command, msgspec.Struct):
        raise TypeError(f"{type(command).__name__} is not a Struct")
    return {name: _plain(getattr(command, name)) for name in command.__struct_fields__}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, msgspec.Struct):
        return plain_fields(value)
    if isinstance(value, bool | int | str | Decimal | float) or value is None:
        return int(value) if isinstance(value, IntEnum) else value
    return str(value)


class CcCommand(msgspec.Struct, frozen=True):
    """Base of every command: the class and command ids and the payload codec."""

    CC: ClassVar[int]
    COMMAND: ClassVar[int]
    NAME: ClassVar[str]

    def encode(self) -> bytes:
        """The payload: command class, command and body."""
        return _cc_bytes(self.CC) + bytes((self.COMMAND,)) + self.body()

    def body(self) -> bytes:
        """The bytes after the command byte."""
        return b""

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The command from the bytes after its command byte."""
        del reader
        return cls()

    def fields(self) -> dict[str, Any]:
        """The command's facts for ``decode`` output (JSON-ready)."""
        return plain_fields(self)


# A body of one-byte fields: (attribute, how a short frame names it), in wire order.
ByteLayout = tuple[tuple[str, str], ...]


def pack_bytes(message: object, layout: ByteLayout, what: str) -> bytes:
    """The ``layout`` attributes of ``message``, one unsigned byte each (``what`` names them)."""
    values = [getattr(message, name) for name, _ in layout]
    check_u8(what, *values)
    return bytes(values)


def read_bytes(reader: Reader, layout: ByteLayout) -> list[int]:
    """One byte per ``layout`` entry, in order."""
    return [reader.u8(label) for _, label in layout]


class ByteCommand(CcCommand, frozen=True):
    """A command whose body is its fields, one unsigned byte each, as ``LAYOUT`` lists them."""

    LAYOUT: ClassVar[ByteLayout]
    CHECK: ClassVar[str]  # how an encoding error names the fields

    def body(self) -> bytes:
        """The fields, one byte each."""
        return pack_bytes(self, self.LAYOUT, self.CHECK)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The fields, one byte each."""
        return cls(*read_bytes(reader, cls.LAYOUT))


def _cc_bytes(cc: int) -> bytes:
    return cc.to_bytes(2 if cc > 0xFF else 1, "big")


def check_u8(what: str, *values: int) -> None:
    """ValueError unless every value fits one unsigned byte."""
    for value in values:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{what} must fit in one byte, got {value}")


def check_length(what: str, value: bytes, size: int) -> bytes:
    """``value`` itself, or ValueError unless it is exactly ``size`` bytes (keys, nonces)."""
    if len(value) != size:
        raise ValueError(f"{what} is {size} bytes, got {len(value)}")
    return value


def check_u16(what: str, value: int) -> None:
    """ValueError unless the value fits two unsigned bytes."""
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} must fit in two bytes, got {value}")


def encode_cc_list(supported: Iterable[int], controlled: Iterable[int] = ()) -> bytes:
    """A node information class list: supported classes, then MARK and controlled classes."""
    out = bytearray()
    for cc in supported:
        out += _list_cc(cc)
    controlled = tuple(controlled)
    if controlled:
        out.append(COMMAND_CLASS_MARK)
        for cc in controlled:
            out += _list_cc(cc)
    return bytes(out)


def _list_cc(cc: int) -> bytes:
    if 0 <= cc < EXTENDED_CC_FIRST and cc != COMMAND_CLASS_MARK:
        return bytes((cc,))
    if EXTENDED_CC_FIRST << 8 <= cc <= 0xFFFF:
        return cc.to_bytes(2, "big")
    raise ValueError(f"not a listable command class id: {cc:#x}")


def parse_cc_list(data: bytes, *, base: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(supported, controlled) from a node information class list."""
    reader = Reader(data, base=base)
    supported: list[int] = []
    controlled: list[int] = []
    target = supported
    while reader.remaining:
        cc = reader.u8("command class")
        if cc == COMMAND_CLASS_MARK:
            target = controlled
            continue
        if cc >= EXTENDED_CC_FIRST:
            cc = cc << 8 | reader.u8("extended command class")
        target.append(cc)
    return tuple(supported), tuple(controlled)


# ---------------------------------------------------------------------------------- generic


class NoOperation(CcCommand, frozen=True):
    """The NOP frame controllers send as a ping; it has no command byte."""

    CC: ClassVar[int] = CommandClassId.NO_OPERATION
    COMMAND: ClassVar[int] = 0
    NAME: ClassVar[str] = "NO_OPERATION"

    def encode(self) -> bytes:
        """The single byte 0x00."""
        return b"\x00"


class UnknownCommand(CcCommand, frozen=True):
    """A command the gateway does not interpret: its ids and body kept as received."""

    cc: int
    command: int
    data: bytes = b""

    CC: ClassVar[int] = -1
    COMMAND: ClassVar[int] = -1
    NAME: ClassVar[str] = "UNKNOWN"

    def encode(self) -> bytes:
        """The payload as received."""
        return _cc_bytes(self.cc) + bytes((self.command,)) + self.data
