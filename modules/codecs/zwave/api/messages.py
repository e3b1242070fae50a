"""Z-Wave Serial API messages: the function ids, the message base class and shared helpers.

Layouts from Silabs INS12350 ("Serial API Host Appl. Prg. Guide") and zwave-js
``packages/serial/src/serialapi/``. A message is a frozen Struct: ``encode()`` gives the
whole data frame and ``parse_params(reader)`` reads its parameters; ``zwave.parse_message``
picks the class for a frame. Node ids are 8-bit (the classic node id base type; 16-bit Long
Range ids need SERIAL_API_SETUP and are not used by an end node). The messages themselves are in
``zwave.api.node`` (set-up, learn mode) and ``zwave.api.transport`` (commands in and out).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Any, ClassVar, Self

import msgspec

from modules.codecs.zwave.cc.base import ByteLayout, Reader, pack_bytes, plain_fields, read_bytes
from modules.codecs.zwave.serial import DataFrame

__all__ = [
    "APPLICATION_NODEINFO_LISTENING",
    "BASIC_TYPE_ROUTING_END_NODE",
    "DEFAULT_TX_OPTIONS",
    "GENERIC_TYPE_METER",
    "PARAMS_AT",
    "SPECIFIC_TYPE_SIMPLE_METER",
    "AcceptedResponse",
    "ApplicationUpdateStatus",
    "ByteMessage",
    "FunctionId",
    "LearnMode",
    "LearnStatus",
    "RxStatus",
    "SerialMessage",
    "TxOption",
    "TxStatus",
    "UnknownMessage",
    "bitmask",
    "enum_name",
    "flag_names",
    "from_bitmask",
    "signed_byte",
]

PARAMS_AT = 4  # SOF, LEN, TYPE and FUNC_ID come before the parameters


class FunctionId(IntEnum):
    """Serial API function ids (FUNC_ID_* in the Silabs host API, without the prefix)."""

    SERIAL_API_GET_INIT_DATA = 0x02
    SERIAL_API_APPL_NODE_INFORMATION = 0x03
    APPLICATION_COMMAND_HANDLER = 0x04
    ZW_GET_CONTROLLER_CAPABILITIES = 0x05
    SERIAL_API_SET_TIMEOUTS = 0x06
    SERIAL_API_GET_CAPABILITIES = 0x07
    SERIAL_API_SOFT_RESET = 0x08
    ZW_GET_PROTOCOL_VERSION = 0x09
    SERIAL_API_STARTED = 0x0A
    SERIAL_API_SETUP = 0x0B
    ZW_SEND_NODE_INFORMATION = 0x12
    ZW_SEND_DATA = 0x13
    ZW_GET_VERSION = 0x15
    ZW_SEND_DATA_ABORT = 0x16
    MEMORY_GET_ID = 0x20
    ZW_GET_NODE_PROTOCOL_INFO = 0x41
    ZW_SET_DEFAULT = 0x42
    ZW_APPLICATION_UPDATE = 0x49
    ZW_ADD_NODE_TO_NETWORK = 0x4A
    ZW_REMOVE_NODE_FROM_NETWORK = 0x4B
    ZW_SET_LEARN_MODE = 0x50
    ZW_REQUEST_NODE_INFO = 0x60
    APPLICATION_COMMAND_HANDLER_BRIDGE = 0xA8
    ZW_SEND_DATA_BRIDGE = 0xA9


class TxOption(IntFlag):
    """ZW_SendData transmit options (ZW_transport_api.h TRANSMIT_OPTION_*)."""

    ACK = 0x01
    LOW_POWER = 0x02
    AUTO_ROUTE = 0x04
    NO_ROUTE = 0x10
    EXPLORE = 0x20


DEFAULT_TX_OPTIONS = TxOption.ACK | TxOption.AUTO_ROUTE | TxOption.EXPLORE  # 0x25, as zwave-js


class TxStatus(IntEnum):
    """ZW_SendData callback status (TRANSMIT_COMPLETE_*)."""

    OK = 0x00
    NO_ACK = 0x01
    FAIL = 0x02
    ROUTING_NOT_IDLE = 0x03
    NO_ROUTE = 0x04
    VERIFIED = 0x05


class RxStatus(IntFlag):
    """ApplicationCommandHandler receive status bits (RECEIVE_STATUS_*)."""

    ROUTED_BUSY = 0x01
    LOW_POWER = 0x02
    TYPE_BROAD = 0x04
    TYPE_MULTI = 0x08
    TYPE_EXPLORE = 0x10
    FOREIGN_FRAME = 0x40
    FOREIGN_HOMEID = 0x80


class LearnMode(IntEnum):
    """ZW_SetLearnMode modes of an end node (ZW_SET_LEARN_MODE_*)."""

    DISABLE = 0x00
    CLASSIC = 0x01  # direct range inclusion or exclusion
    NWI = 0x02  # network-wide inclusion
    NWE = 0x03  # network-wide exclusion


class LearnStatus(IntEnum):
    """ZW_SetLearnMode callback status of an end node (ZW_slave_api.h ASSIGN_*)."""

    ASSIGN_COMPLETE = 0x00  # learn mode is over; the node id says included (>0) or excluded (0)
    ASSIGN_NODEID_DONE = 0x01
    ASSIGN_RANGE_INFO_UPDATE = 0x02


class ApplicationUpdateStatus(IntEnum):
    """ZW_APPLICATION_UPDATE status (UPDATE_STATE_*)."""

    SUC_ID = 0x10
    DELETE_DONE = 0x20
    NEW_ID_ASSIGNED = 0x40
    ROUTING_PENDING = 0x80
    NODE_INFO_REQ_FAILED = 0x81
    NODE_INFO_REQ_DONE = 0x82
    NODE_INFO_RECEIVED = 0x84
    SMART_START_HOMEID_RECEIVED = 0x85
    SMART_START_NODE_INFO_RECEIVED = 0x86


APPLICATION_NODEINFO_LISTENING = 0x01  # always listening: a mains-powered node
BASIC_TYPE_ROUTING_END_NODE = 0x04
GENERIC_TYPE_METER = 0x31
SPECIFIC_TYPE_SIMPLE_METER = 0x01


def enum_name(enum: type[IntEnum], value: int) -> str | None:
    """The member name of a value, or None when the enum has no such member."""
    try:
        return enum(value).name
    except ValueError:
        return None


def flag_names(flags: type[IntFlag], value: int) -> list[str]:
    """The names of the flags set in a value."""
    return [str(flag.name) for flag in flags if value & flag]


def bitmask(numbers: tuple[int, ...], size: int) -> bytes:
    """A little-endian bit list of numbers from 1 (node ids, function ids)."""
    mask = bytearray(size)
    for number in numbers:
        if not 1 <= number <= 8 * size:
            raise ValueError(f"{number} is outside a {size}-byte bitmask")
        mask[(number - 1) // 8] |= 1 << ((number - 1) % 8)
    return bytes(mask)


def from_bitmask(mask: bytes) -> tuple[int, ...]:
    """The numbers (from 1) whose bits are set."""
    return tuple(
        8 * index + bit + 1
        for index, byte in enumerate(mask)
        for bit in range(8)
        if byte >> bit & 1
    )


def signed_byte(byte: int) -> int:
    """A byte read as two's complement (RSSI in dBm)."""
    return byte - 0x100 if byte >= 0x80 else byte


class SerialMessage(msgspec.Struct, frozen=True):
    """Base of every Serial API message: its frame type, function id and parameter codec."""

    TYPE: ClassVar[int]
    FUNCTION: ClassVar[int]
    ROLE: ClassVar[str]  # request, response, callback or unsolicited

    def params(self) -> bytes:
        """The bytes between function id and checksum."""
        return b""

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The message from its parameter bytes."""
        del reader
        return cls()

    def frame(self) -> DataFrame:
        """The data frame that carries the message."""
        return DataFrame(self.TYPE, self.FUNCTION, self.params())

    def encode(self) -> bytes:
        """The whole data frame as bytes."""
        return self.frame().encode()

    def fields(self) -> dict[str, Any]:
        """The message's facts for ``decode`` output (JSON-ready)."""
        return plain_fields(self)


class ByteMessage(SerialMessage, frozen=True):
    """A message whose parameters are its fields, one unsigned byte each, as ``LAYOUT`` lists."""

    LAYOUT: ClassVar[ByteLayout]
    CHECK: ClassVar[str]  # how an encoding error names the fields

    def params(self) -> bytes:
        """The fields, one byte each."""
        return pack_bytes(self, self.LAYOUT, self.CHECK)

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The fields, one byte each."""
        return cls(*read_bytes(reader, cls.LAYOUT))


class UnknownMessage(SerialMessage, frozen=True):
    """A message the gateway does not interpret, kept as received."""

    type: int
    function_id: int
    data: bytes = b""

    TYPE: ClassVar[int] = -1
    FUNCTION: ClassVar[int] = -1
    ROLE: ClassVar[str] = "unknown"

    def frame(self) -> DataFrame:
        """The frame as received."""
        return DataFrame(self.type, self.function_id, self.data)


class AcceptedResponse(SerialMessage, frozen=True):
    """A response whose one byte says whether the module accepted the request."""

    accepted: bool = True

    def params(self) -> bytes:
        """1 accepted, 0 refused."""
        return bytes((int(self.accepted),))

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """Any non-zero value is "accepted"."""
        return cls(reader.u8("return value") != 0)
