"""Z-Wave Serial API set-up messages: identity, node information, resets and learn mode.

Init data, capabilities, version, home id, the node information we announce, soft reset and
restart notice, factory reset, learn mode (inclusion and exclusion of this node) and
application updates. Layouts: INS12350 and zwave-js
``packages/serial/src/serialapi/``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import msgspec

from modules.codecs.zwave.api.messages import (
    AcceptedResponse,
    ApplicationUpdateStatus,
    ByteMessage,
    FunctionId,
    LearnMode,
    LearnStatus,
    SerialMessage,
    bitmask,
    enum_name,
    from_bitmask,
)
from modules.codecs.zwave.cc.base import (
    ByteLayout,
    LibraryType,
    Reader,
    check_u8,
    encode_cc_list,
    parse_cc_list,
    plain_fields,
)
from modules.codecs.zwave.serial import FrameType

__all__ = [
    "NODEMASK_BYTES",
    "ApplNodeInformationRequest",
    "ApplicationUpdate",
    "GetCapabilitiesRequest",
    "GetCapabilitiesResponse",
    "GetInitDataRequest",
    "GetInitDataResponse",
    "GetVersionRequest",
    "GetVersionResponse",
    "MemoryGetIdRequest",
    "MemoryGetIdResponse",
    "SerialApiStarted",
    "SetDefaultCallback",
    "SetDefaultRequest",
    "SetLearnModeCallback",
    "SetLearnModeRequest",
    "SetLearnModeResponse",
    "SoftResetRequest",
]

NODEMASK_BYTES = 29  # 232 classic node ids, one bit each
_CAPABILITY_MASK_BYTES = 32  # one bit per function id 1..256
_VERSION_TEXT_BYTES = 12  # "Z-Wave 4.05" and its NUL
_SMART_START = frozenset({0x85, 0x86, 0x87})  # layouts with home ids, not plain node info

# ------------------------------------------------------------------------------ initialisation


class GetInitDataRequest(SerialMessage, frozen=True):
    """SERIAL_API_GET_INIT_DATA request."""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.SERIAL_API_GET_INIT_DATA
    ROLE: ClassVar[str] = "request"


class GetInitDataResponse(SerialMessage, frozen=True):
    """SERIAL_API_GET_INIT_DATA response: API version, capability bits, node list, chip."""

    api_version: int
    capabilities: int  # bit 0 end node, 1 timers, 2 secondary controller, 3 SIS
    node_ids: tuple[int, ...] = ()
    chip_type: int | None = None
    chip_version: int | None = None

    TYPE: ClassVar[int] = FrameType.RES
    FUNCTION: ClassVar[int] = FunctionId.SERIAL_API_GET_INIT_DATA
    ROLE: ClassVar[str] = "response"

    def params(self) -> bytes:
        """Version, capabilities, node bitmask, optional chip type and version."""
        check_u8("init data field", self.api_version, self.capabilities)
        out = bytes((self.api_version, self.capabilities, NODEMASK_BYTES))
        out += bitmask(self.node_ids, NODEMASK_BYTES)
        if self.chip_type is None or self.chip_version is None:
            if self.chip_type is not None or self.chip_version is not None:
                raise ValueError("chip type and chip version come together")
            return out
        check_u8("chip", self.chip_type, self.chip_version)
        return out + bytes((self.chip_type, self.chip_version))

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The response."""
        version = reader.u8("API version")
        capabilities = reader.u8("capabilities")
        mask = reader.take(reader.u8("node list length"), "node list")
        chip: tuple[int | None, int | None] = (None, None)
        if reader.remaining >= 2:
            chip = (reader.u8("chip type"), reader.u8("chip version"))
        return cls(version, capabilities, from_bitmask(mask), *chip)

    def fields(self) -> dict[str, Any]:
        """Adds the capability bits by name."""
        return {
            **plain_fields(self),
            "end_node": bool(self.capabilities & 0x01),
            "secondary": bool(self.capabilities & 0x04),
            "sis": bool(self.capabilities & 0x08),
        }


class ApplNodeInformationRequest(SerialMessage, frozen=True):
    """SERIAL_API_APPL_NODE_INFORMATION: the node information frame the module will send."""

    device_options: int
    generic_type: int
    specific_type: int
    supported: tuple[int, ...] = ()
    controlled: tuple[int, ...] = ()

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.SERIAL_API_APPL_NODE_INFORMATION
    ROLE: ClassVar[str] = "request"

    def params(self) -> bytes:
        """Options, device classes and the command class list."""
        return _node_information(
            self.device_options,
            self.generic_type,
            self.specific_type,
            self.supported,
            self.controlled,
            what="node information field",
        )

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The request."""
        return cls(*_parse_node_information(reader))


def _node_information(
    device_options: int,
    generic_type: int,
    specific_type: int,
    supported: tuple[int, ...],
    controlled: tuple[int, ...],
    *,
    what: str,
) -> bytes:
    """Options, device classes, class list length and class list (``what`` names the bytes)."""
    check_u8(what, device_options, generic_type, specific_type)
    classes = encode_cc_list(supported, controlled)
    check_u8("command class list length", len(classes))
    return bytes((device_options, generic_type, specific_type, len(classes))) + classes


def _parse_node_information(
    reader: Reader,
) -> tuple[int, int, int, tuple[int, ...], tuple[int, ...]]:
    """Options, generic and specific type, supported and controlled classes."""
    options = reader.u8("device options")
    generic = reader.u8("generic type")
    specific = reader.u8("specific type")
    at = reader.offset + 1
    classes = reader.take(reader.u8("command class list length"), "command class list")
    return (options, generic, specific, *parse_cc_list(classes, base=at))


class SoftResetRequest(SerialMessage, frozen=True):
    """SERIAL_API_SOFT_RESET: restart the module (no response; 700-series send STARTED)."""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.SERIAL_API_SOFT_RESET
    ROLE: ClassVar[str] = "request"


class SerialApiStarted(SerialMessage, frozen=True):
    """SERIAL_API_STARTED: the module (re)started; it says why and what it is."""

    wake_up_reason: int
    watchdog_started: bool
    device_options: int
    generic_type: int
    specific_type: int
    supported: tuple[int, ...] = ()
    controlled: tuple[int, ...] = ()
    supported_protocols: int | None = None  # bit 0: Z-Wave Long Range

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.SERIAL_API_STARTED
    ROLE: ClassVar[str] = "unsolicited"

    def params(self) -> bytes:
        """Reason, watchdog, options, device classes, class list, optional protocols."""
        check_u8("started field", self.wake_up_reason)
        out = bytes((self.wake_up_reason, int(self.watchdog_started)))
        out += _node_information(
            self.device_options,
            self.generic_type,
            self.specific_type,
            self.supported,
            self.controlled,
            what="started field",
        )
        if self.supported_protocols is None:
            return out
        check_u8("supported protocols", self.supported_protocols)
        return out + bytes((self.supported_protocols,))

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The notification."""
        reason = reader.u8("wake up reason")
        watchdog = reader.u8("watchdog started") == 0x01
        node = _parse_node_information(reader)
        protocols = reader.u8("supported protocols") if reader.remaining else None
        return cls(reason, watchdog, *node, protocols)


class GetCapabilitiesRequest(SerialMessage, frozen=True):
    """SERIAL_API_GET_CAPABILITIES request."""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.SERIAL_API_GET_CAPABILITIES
    ROLE: ClassVar[str] = "request"


class GetCapabilitiesResponse(SerialMessage, frozen=True):
    """SERIAL_API_GET_CAPABILITIES response: firmware version, product ids, function ids."""

    application_version: int
    application_revision: int
    manufacturer_id: int
    product_type: int
    product_id: int
    function_ids: tuple[int, ...] = ()

    TYPE: ClassVar[int] = FrameType.RES
    FUNCTION: ClassVar[int] = FunctionId.SERIAL_API_GET_CAPABILITIES
    ROLE: ClassVar[str] = "response"

    def params(self) -> bytes:
        """Versions, three 16-bit ids and the 32-byte function bitmask."""
        check_u8("version", self.application_version, self.application_revision)
        ids = (self.manufacturer_id, self.product_type, self.product_id)
        for value in ids:
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"product ids are 16-bit, got {value}")
        out = bytes((self.application_version, self.application_revision))
        out += b"".join(value.to_bytes(2, "big") for value in ids)
        return out + bitmask(self.function_ids, _CAPABILITY_MASK_BYTES)

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The response; a short function bitmask is read as far as it goes."""
        version = reader.u8("application version")
        revision = reader.u8("application revision")
        ids = (reader.u16("manufacturer id"), reader.u16("product type"), reader.u16("product id"))
        return cls(version, revision, *ids, from_bitmask(reader.rest()))


class GetVersionRequest(SerialMessage, frozen=True):
    """ZW_GET_VERSION request."""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_GET_VERSION
    ROLE: ClassVar[str] = "request"


class GetVersionResponse(SerialMessage, frozen=True):
    """ZW_GET_VERSION response: "Z-Wave x.yy" and the protocol library type."""

    version: str
    library_type: int

    TYPE: ClassVar[int] = FrameType.RES
    FUNCTION: ClassVar[int] = FunctionId.ZW_GET_VERSION
    ROLE: ClassVar[str] = "response"

    def params(self) -> bytes:
        """NUL-terminated text padded to 12 bytes, then the library type."""
        text = self.version.encode("ascii")
        if b"\x00" in text:
            raise ValueError("the version text cannot hold NUL")
        check_u8("library type", self.library_type)
        return text.ljust(_VERSION_TEXT_BYTES - 1, b"\x00") + b"\x00" + bytes((self.library_type,))

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """Everything before the last byte is the text (zwave-js GetControllerVersionResponse)."""
        data = reader.rest()
        if not data:
            raise reader.invalid("no library type", back=0)
        text = data[:-1].split(b"\x00", 1)[0]
        return cls(text.decode("ascii", errors="replace"), data[-1])

    def fields(self) -> dict[str, Any]:
        """Adds the library name."""
        return {
            **plain_fields(self),
            "library_type_name": enum_name(LibraryType, self.library_type),
        }


class MemoryGetIdRequest(SerialMessage, frozen=True):
    """MEMORY_GET_ID request."""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.MEMORY_GET_ID
    ROLE: ClassVar[str] = "request"


class MemoryGetIdResponse(SerialMessage, frozen=True):
    """MEMORY_GET_ID response: the network's home id and this node's id (0: not included)."""

    home_id: int
    node_id: int

    TYPE: ClassVar[int] = FrameType.RES
    FUNCTION: ClassVar[int] = FunctionId.MEMORY_GET_ID
    ROLE: ClassVar[str] = "response"

    def params(self) -> bytes:
        """Home id (32-bit big-endian) and node id."""
        if not 0 <= self.home_id <= 0xFFFFFFFF:
            raise ValueError("the home id is 32-bit")
        check_u8("node id", self.node_id)
        return self.home_id.to_bytes(4, "big") + bytes((self.node_id,))

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The response."""
        return cls(reader.u32("home id"), reader.u8("node id"))

    def fields(self) -> dict[str, Any]:
        """The home id as hex, as controllers show it."""
        return {**plain_fields(self), "home_id": f"{self.home_id:08x}"}


class SetDefaultRequest(ByteMessage, frozen=True):
    """ZW_SET_DEFAULT: reset the module to factory defaults (leaves the network)."""

    callback_id: int = 0

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SET_DEFAULT
    ROLE: ClassVar[str] = "request"
    LAYOUT: ClassVar[ByteLayout] = (("callback_id", "callback id"),)
    CHECK: ClassVar[str] = "callback id"


class SetDefaultCallback(ByteMessage, frozen=True):
    """ZW_SET_DEFAULT callback: the reset is done."""

    callback_id: int

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SET_DEFAULT
    ROLE: ClassVar[str] = "callback"
    LAYOUT: ClassVar[ByteLayout] = (("callback_id", "callback id"),)
    CHECK: ClassVar[str] = "callback id"


class NodeInfo(msgspec.Struct, frozen=True):
    """A node information frame's content: device classes and command classes."""

    basic_type: int
    generic_type: int
    specific_type: int
    supported: tuple[int, ...] = ()
    controlled: tuple[int, ...] = ()


class ApplicationUpdate(SerialMessage, frozen=True):
    """ZW_APPLICATION_UPDATE: a node information frame arrived, or a network change happened."""

    status: int
    node_id: int = 0
    node_info: NodeInfo | None = None
    data: bytes = b""  # SmartStart updates: everything after the node id, uninterpreted

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_APPLICATION_UPDATE
    ROLE: ClassVar[str] = "unsolicited"

    def params(self) -> bytes:
        """Status, node id, length, then the node information (or the SmartStart bytes)."""
        check_u8("application update field", self.status, self.node_id)
        if self.status in _SMART_START:
            if self.node_info is not None:
                raise ValueError("SmartStart updates carry their bytes in data")
            return bytes((self.status, self.node_id)) + self.data
        if self.data:
            raise ValueError("only SmartStart updates carry uninterpreted data")
        info = b""
        if self.node_info is not None:
            node = self.node_info
            check_u8("device class", node.basic_type, node.generic_type, node.specific_type)
            classes = encode_cc_list(node.supported, node.controlled)
            info = bytes((node.basic_type, node.generic_type, node.specific_type)) + classes
        check_u8("node information length", len(info))
        return bytes((self.status, self.node_id, len(info))) + info

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The update; SmartStart updates keep their bytes uninterpreted (as zwave-js does)."""
        status = reader.u8("status")
        node_id = reader.u8("node id")
        if status in _SMART_START:
            return cls(status, node_id, data=reader.rest())
        if not reader.remaining:
            return cls(status, node_id)
        length = reader.u8("node information length")
        if length == 0:
            return cls(status, node_id)
        if length < 3:
            raise reader.invalid(f"node information of {length} byte(s) lacks device classes")
        basic = reader.u8("basic type")
        generic = reader.u8("generic type")
        specific = reader.u8("specific type")
        at = reader.offset
        classes = reader.take(length - 3, "command class list")
        return cls(
            status, node_id, NodeInfo(basic, generic, specific, *parse_cc_list(classes, base=at))
        )

    def fields(self) -> dict[str, Any]:
        """Adds the status name."""
        return {
            **plain_fields(self),
            "status_name": enum_name(ApplicationUpdateStatus, self.status),
        }


# --------------------------------------------------------------------------------- learn mode


class SetLearnModeRequest(ByteMessage, frozen=True):
    """ZW_SET_LEARN_MODE: start or stop inclusion/exclusion of this node."""

    mode: int
    callback_id: int = 0

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SET_LEARN_MODE
    ROLE: ClassVar[str] = "request"
    LAYOUT: ClassVar[ByteLayout] = (("mode", "mode"), ("callback_id", "callback id"))
    CHECK: ClassVar[str] = "learn mode field"

    def fields(self) -> dict[str, Any]:
        """Adds the mode name."""
        return {**plain_fields(self), "mode_name": enum_name(LearnMode, self.mode)}


class SetLearnModeResponse(AcceptedResponse, frozen=True):
    """ZW_SET_LEARN_MODE response (700-series modules; 500-series end nodes send none)."""

    TYPE: ClassVar[int] = FrameType.RES
    FUNCTION: ClassVar[int] = FunctionId.ZW_SET_LEARN_MODE
    ROLE: ClassVar[str] = "response"


class SetLearnModeCallback(SerialMessage, frozen=True):
    """ZW_SET_LEARN_MODE callback: progress, and the node id we were given (0 once excluded)."""

    callback_id: int
    status: int
    node_id: int
    message: bytes = b""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SET_LEARN_MODE
    ROLE: ClassVar[str] = "callback"

    def params(self) -> bytes:
        """Callback id, status, node id, message length and message."""
        check_u8("learn mode callback field", self.callback_id, self.status, self.node_id)
        check_u8("message length", len(self.message))
        head = bytes((self.callback_id, self.status, self.node_id, len(self.message)))
        return head + self.message

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The callback; the message length may be missing."""
        head = (reader.u8("callback id"), reader.u8("status"), reader.u8("node id"))
        message = reader.take(reader.u8("message length"), "message") if reader.remaining else b""
        return cls(*head, message)

    def fields(self) -> dict[str, Any]:
        """Adds the status name."""
        return {**plain_fields(self), "status_name": enum_name(LearnStatus, self.status)}
