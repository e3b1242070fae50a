"""Z-Wave Serial API transport messages: commands received from and sent to other nodes.

Commands other nodes sent us (APPLICATION_COMMAND_HANDLER and its bridge form) and commands we
send (ZW_SEND_DATA, ZW_SEND_NODE_INFORMATION) with their responses, callbacks and transmit
reports. Layouts: INS12350 and zwave-js
``packages/serial/src/serialapi/``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from modules.codecs.zwave.api.messages import (
    DEFAULT_TX_OPTIONS,
    PARAMS_AT,
    AcceptedResponse,
    ByteMessage,
    FunctionId,
    RxStatus,
    SerialMessage,
    TxOption,
    TxStatus,
    enum_name,
    flag_names,
    signed_byte,
)
from modules.codecs.zwave.cc.base import ByteLayout, Reader, check_u8, plain_fields
from modules.codecs.zwave.serial import FrameType

__all__ = [
    "ApplicationCommand",
    "BridgeApplicationCommand",
    "SendDataAbortRequest",
    "SendDataCallback",
    "SendDataRequest",
    "SendDataResponse",
    "SendNodeInformationCallback",
    "SendNodeInformationRequest",
    "SendNodeInformationResponse",
    "tx_report_fields",
]


def _rssi(value: int) -> int:
    if not -128 <= value <= 127:
        raise ValueError(f"RSSI is a signed byte, got {value}")
    return value & 0xFF


# -------------------------------------------------------------------------------- application


class ApplicationCommand(SerialMessage, frozen=True):
    """APPLICATION_COMMAND_HANDLER: a command class payload another node sent us."""

    rx_status: int
    source_node_id: int
    payload: bytes
    rssi: int | None = None  # dBm; 127 (0x7F) means not available
    security_key: int | None = None

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.APPLICATION_COMMAND_HANDLER
    ROLE: ClassVar[str] = "unsolicited"
    PAYLOAD_AT: ClassVar[int] = PARAMS_AT + 3

    def params(self) -> bytes:
        """Status, source, length, payload, then optional RSSI and security key."""
        check_u8(
            "application command field", self.rx_status, self.source_node_id, len(self.payload)
        )
        out = bytes((self.rx_status, self.source_node_id, len(self.payload))) + self.payload
        return out + _trailer(self.rssi, self.security_key)

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The message; bytes after the security key are ignored."""
        status = reader.u8("rx status")
        source = reader.u8("source node id")
        payload = reader.take(reader.u8("command length"), "command")
        return cls(status, source, payload, *_parse_trailer(reader))

    def fields(self) -> dict[str, Any]:
        """Adds the status bits by name."""
        return {**plain_fields(self), "rx_flags": flag_names(RxStatus, self.rx_status)}


class BridgeApplicationCommand(SerialMessage, frozen=True):
    """APPLICATION_COMMAND_HANDLER_BRIDGE: as 0x04, plus destination and multicast mask."""

    rx_status: int
    destination_node_id: int
    source_node_id: int
    payload: bytes
    multicast_mask: bytes = b""
    rssi: int | None = None
    security_key: int | None = None

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.APPLICATION_COMMAND_HANDLER_BRIDGE
    ROLE: ClassVar[str] = "unsolicited"
    PAYLOAD_AT: ClassVar[int] = PARAMS_AT + 4

    def params(self) -> bytes:
        """Status, destination, source, payload, multicast mask, optional RSSI and key."""
        head = (self.rx_status, self.destination_node_id, self.source_node_id, len(self.payload))
        check_u8("bridge command field", *head, len(self.multicast_mask))
        out = bytes(head) + self.payload + bytes((len(self.multicast_mask),)) + self.multicast_mask
        return out + _trailer(self.rssi, self.security_key)

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The message; the mask and the trailer may be missing (zwave-js issue #4335)."""
        status = reader.u8("rx status")
        destination = reader.u8("destination node id")
        source = reader.u8("source node id")
        payload = reader.take(reader.u8("command length"), "command")
        mask = b""
        if reader.remaining:
            mask = reader.take(reader.u8("multicast mask length"), "multicast mask")
        return cls(status, destination, source, payload, mask, *_parse_trailer(reader))

    def fields(self) -> dict[str, Any]:
        """Adds the status bits by name."""
        return {**plain_fields(self), "rx_flags": flag_names(RxStatus, self.rx_status)}


def _trailer(rssi: int | None, security_key: int | None) -> bytes:
    if rssi is None:
        if security_key is not None:
            raise ValueError("a security key byte follows the RSSI byte")
        return b""
    if security_key is None:
        return bytes((_rssi(rssi),))
    check_u8("security key", security_key)
    return bytes((_rssi(rssi), security_key))


def _parse_trailer(reader: Reader) -> tuple[int | None, int | None]:
    rssi = signed_byte(reader.u8("rssi")) if reader.remaining else None
    key = reader.u8("security key") if reader.remaining else None
    return rssi, key


# ---------------------------------------------------------------------------------- transport


class SendDataRequest(SerialMessage, frozen=True):
    """ZW_SEND_DATA: send a command class payload to a node; callback id 0 means no callback."""

    node_id: int
    payload: bytes
    tx_options: int = DEFAULT_TX_OPTIONS
    callback_id: int = 0

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SEND_DATA
    ROLE: ClassVar[str] = "request"
    PAYLOAD_AT: ClassVar[int] = PARAMS_AT + 2

    def params(self) -> bytes:
        """Node, length, payload, transmit options, callback id."""
        check_u8(
            "send data field", self.node_id, len(self.payload), self.tx_options, self.callback_id
        )
        tail = bytes((self.tx_options, self.callback_id))
        return bytes((self.node_id, len(self.payload))) + self.payload + tail

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The request."""
        node_id = reader.u8("node id")
        payload = reader.take(reader.u8("data length"), "data")
        return cls(node_id, payload, reader.u8("tx options"), reader.u8("callback id"))

    def fields(self) -> dict[str, Any]:
        """Adds the option bits by name."""
        return {**plain_fields(self), "tx_flags": flag_names(TxOption, self.tx_options)}


class SendDataResponse(AcceptedResponse, frozen=True):
    """ZW_SEND_DATA response: the frame was queued (a callback follows) or refused."""

    TYPE: ClassVar[int] = FrameType.RES
    FUNCTION: ClassVar[int] = FunctionId.ZW_SEND_DATA
    ROLE: ClassVar[str] = "response"


class SendDataCallback(SerialMessage, frozen=True):
    """ZW_SEND_DATA callback: how the transmission went, with an optional transmit report."""

    callback_id: int
    tx_status: int
    tx_report: bytes = b""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SEND_DATA
    ROLE: ClassVar[str] = "callback"

    def params(self) -> bytes:
        """Callback id, status, report."""
        check_u8("send data callback field", self.callback_id, self.tx_status)
        return bytes((self.callback_id, self.tx_status)) + self.tx_report

    @classmethod
    def parse_params(cls, reader: Reader) -> Self:
        """The callback."""
        return cls(reader.u8("callback id"), reader.u8("tx status"), reader.rest())

    def fields(self) -> dict[str, Any]:
        """Adds the status name and the report's fields."""
        out = {**plain_fields(self), "tx_status_name": enum_name(TxStatus, self.tx_status)}
        if self.tx_report:
            out["report"] = tx_report_fields(self.tx_report)
        return out


class SendDataAbortRequest(SerialMessage, frozen=True):
    """ZW_SEND_DATA_ABORT: stop the transmission in progress."""

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SEND_DATA_ABORT
    ROLE: ClassVar[str] = "request"


class SendNodeInformationRequest(ByteMessage, frozen=True):
    """ZW_SEND_NODE_INFORMATION: broadcast (0xFF) or send our node information frame."""

    node_id: int = 0xFF
    tx_options: int = DEFAULT_TX_OPTIONS
    callback_id: int = 0

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SEND_NODE_INFORMATION
    ROLE: ClassVar[str] = "request"
    LAYOUT: ClassVar[ByteLayout] = (
        ("node_id", "node id"),
        ("tx_options", "tx options"),
        ("callback_id", "callback id"),
    )
    CHECK: ClassVar[str] = "send node information field"


class SendNodeInformationResponse(AcceptedResponse, frozen=True):
    """ZW_SEND_NODE_INFORMATION response."""

    TYPE: ClassVar[int] = FrameType.RES
    FUNCTION: ClassVar[int] = FunctionId.ZW_SEND_NODE_INFORMATION
    ROLE: ClassVar[str] = "response"


class SendNodeInformationCallback(ByteMessage, frozen=True):
    """ZW_SEND_NODE_INFORMATION callback."""

    callback_id: int
    tx_status: int

    TYPE: ClassVar[int] = FrameType.REQ
    FUNCTION: ClassVar[int] = FunctionId.ZW_SEND_NODE_INFORMATION
    ROLE: ClassVar[str] = "callback"
    LAYOUT: ClassVar[ByteLayout] = (("callback_id", "callback id"), ("tx_status", "tx status"))
    CHECK: ClassVar[str] = "callback field"

    def fields(self) -> dict[str, Any]:
        """Adds the status name."""
        return {**plain_fields(self), "tx_status_name": enum_name(TxStatus, self.tx_status)}


_TX_REPORT: tuple[tuple[str, int, int, bool], ...] = (
    # name, offset, size, signed (zwave-js parseTXReport in SendDataShared.ts)
    ("tx_ticks_10ms", 0, 2, False),
    ("repeaters", 2, 1, False),
    ("ack_rssi_dbm", 3, 1, True),
    ("ack_channel", 8, 1, False),
    ("tx_channel", 9, 1, False),
    ("route_scheme_state", 10, 1, False),
    ("routing_attempts", 16, 1, False),
    ("failed_route_last_functional_node", 17, 1, False),
    ("failed_route_first_non_functional_node", 18, 1, False),
    ("tx_power_dbm", 19, 1, True),
    ("noise_floor_dbm", 20, 1, True),
)


def tx_report_fields(report: bytes) -> dict[str, Any]:
    """The transmit report fields present in ``report`` (it grew over firmware versions)."""
    out: dict[str, Any] = {}
    for name, offset, size, signed in _TX_REPORT:
        if len(report) >= offset + size:
            out[name] = int.from_bytes(report[offset : offset + size], "big", signed=signed)
    if len(report) >= 8:
        out["ack_repeater_rssi_dbm"] = [signed_byte(byte) for byte in report[4:8]]
    if len(report) >= 15:
        out["repeater_node_ids"] = list(report[11:15])
    if len(report) >= 16:
        out["route_speed"] = report[15] & 0x07
        out["beam_1000ms"] = bool(report[15] & 0x40)
        out["beam_250ms"] = bool(report[15] & 0x20)
    return out
