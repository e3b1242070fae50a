"""Z-Wave codec: command class dispatch and the ``meter-gateway decode zwave`` decoder.

The pieces live beside this module, each sans-IO:
- ``zwave.serial``: Serial API data frames, ACK/NAK/CAN, the stream extractor and timing;
- ``zwave.api.messages``, ``zwave.api.node``, ``zwave.api.transport``: the Serial API messages;
- ``zwave.cc.base``, ``zwave.cc.version``, ``zwave.cc.association``: the command class basics
  and the classes every Z-Wave Plus node answers;
- ``zwave.meter``: the Meter Command Class V1..V6;
- ``zwave.security``: the Security 2 and Security 0 command classes and their crypto.

This module ties them together: ``parse_message`` (a data frame's message, by direction),
``parse_command`` (a command class payload) and the decoder.

``decode`` takes a whole data frame, a single control byte or a bare command class payload.
A Meter Report gives one record (``raw.meter_type``, ``raw.rate_type``, ``raw.scale``) in Home
Assistant units; everything else is described in ``frame``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal

from modules.codecs.errors import IncompleteFrame
from modules.codecs.records import Decoded, Record
from modules.codecs.zwave import meter as zwave_meter
from modules.codecs.zwave.api.messages import PARAMS_AT, FunctionId, SerialMessage, UnknownMessage
from modules.codecs.zwave.api.node import (
    ApplicationUpdate,
    ApplNodeInformationRequest,
    GetCapabilitiesRequest,
    GetCapabilitiesResponse,
    GetInitDataRequest,
    GetInitDataResponse,
    GetVersionRequest,
    GetVersionResponse,
    MemoryGetIdRequest,
    MemoryGetIdResponse,
    SerialApiStarted,
    SetDefaultCallback,
    SetDefaultRequest,
    SetLearnModeCallback,
    SetLearnModeRequest,
    SetLearnModeResponse,
    SoftResetRequest,
)
from modules.codecs.zwave.api.transport import (
    ApplicationCommand,
    BridgeApplicationCommand,
    SendDataAbortRequest,
    SendDataCallback,
    SendDataRequest,
    SendDataResponse,
    SendNodeInformationCallback,
    SendNodeInformationRequest,
    SendNodeInformationResponse,
)
from modules.codecs.zwave.cc import association as zwave_cc_association
from modules.codecs.zwave.cc import multichannel as zwave_cc_multichannel
from modules.codecs.zwave.cc import version as zwave_cc_version
from modules.codecs.zwave.cc.base import (
    EXTENDED_CC_FIRST,
    CcCommand,
    CommandClassId,
    NoOperation,
    Reader,
    UnknownCommand,
    cc_name,
)
from modules.codecs.zwave.cc.multichannel import MultiChannelCmdEncap
from modules.codecs.zwave.meter import MeterReport, report_record
from modules.codecs.zwave.security import s0 as zwave_s0
from modules.codecs.zwave.security import s2 as zwave_s2
from modules.codecs.zwave.serial import SOF, ControlByte, DataFrame, FrameType, parse_frame

__all__ = [
    "COMMANDS",
    "ZwaveDecoder",
    "command_payload",
    "describe_command",
    "parse_command",
    "parse_message",
]

PROTOCOL = "zwave"

COMMANDS: dict[tuple[int, int], type[CcCommand]] = {
    **zwave_cc_version.COMMANDS,
    **zwave_cc_association.COMMANDS,
    **zwave_cc_multichannel.COMMANDS,
    **zwave_meter.COMMANDS,
    **zwave_s2.COMMANDS,
    **zwave_s0.COMMANDS,
}

_Message = type[SerialMessage]


def _message_table(
    host: Iterable[_Message], module: Iterable[_Message]
) -> dict[tuple[int, int], tuple[_Message | None, _Message | None]]:
    table: dict[tuple[int, int], tuple[_Message | None, _Message | None]] = {}
    for cls in host:
        table[cls.TYPE, cls.FUNCTION] = (cls, None)
    for cls in module:
        sent_by_host, _ = table.get((cls.TYPE, cls.FUNCTION), (None, None))
        table[cls.TYPE, cls.FUNCTION] = (sent_by_host, cls)
    return table


# (frame type, function id) -> (the message the host sends, the message the module sends)
_MESSAGES = _message_table(
    host=(
        GetInitDataRequest,
        ApplNodeInformationRequest,
        SoftResetRequest,
        GetCapabilitiesRequest,
        GetVersionRequest,
        MemoryGetIdRequest,
        SetDefaultRequest,
        SendDataRequest,
        SendDataAbortRequest,
        SendNodeInformationRequest,
        SetLearnModeRequest,
    ),
    module=(
        GetInitDataResponse,
        ApplicationCommand,
        BridgeApplicationCommand,
        SerialApiStarted,
        GetCapabilitiesResponse,
        GetVersionResponse,
        MemoryGetIdResponse,
        SetDefaultCallback,
        ApplicationUpdate,
        SendDataResponse,
        SendDataCallback,
        SendNodeInformationResponse,
        SendNodeInformationCallback,
        SetLearnModeResponse,
        SetLearnModeCallback,
    ),
)

# A host request and a module callback share REQ and the function id; their layouts differ.
_SENT_BY_HOST: dict[int, Callable[[bytes], bool]] = {
    FunctionId.ZW_SEND_DATA: lambda params: len(params) >= 4 and len(params) == params[1] + 4,
    FunctionId.ZW_SEND_NODE_INFORMATION: lambda params: len(params) == 3,
    FunctionId.ZW_SET_LEARN_MODE: lambda params: len(params) == 2,
}


def parse_message(frame: DataFrame, *, from_host: bool | None = None) -> SerialMessage:
    """The message in a data frame; ``from_host`` None guesses the direction from the layout.

    The host (the gateway) parses with ``from_host=False``, a module emulator with True.
    """
    host, module = _MESSAGES.get((frame.type, frame.function_id), (None, None))
    if from_host is None:
        if host is not None and module is not None:
            guess = _SENT_BY_HOST.get(frame.function_id)
            from_host = guess(frame.params) if guess else True
        else:
            from_host = module is None
    chosen = host if from_host else module
    if chosen is None:
        return UnknownMessage(frame.type, frame.function_id, frame.params)
    return chosen.parse_params(Reader(frame.params, base=PARAMS_AT))


def command_payload(message: SerialMessage) -> tuple[bytes, int] | None:
    """The command class payload a message carries and its offset in the data frame, if any."""
    if isinstance(message, ApplicationCommand | BridgeApplicationCommand | SendDataRequest):
        return (message.payload, message.PAYLOAD_AT) if message.payload else None
    return None


def parse_command(payload: bytes, *, base: int = 0) -> CcCommand:
    """The command in a command class payload; ``base`` is its offset for error positions."""
    reader = Reader(payload, base=base)
    cc = reader.u8("command class")
    if cc == CommandClassId.NO_OPERATION:
        return NoOperation()
    if cc >= EXTENDED_CC_FIRST:
        cc = cc << 8 | reader.u8("extended command class")
    command = reader.u8("command")
    known = COMMANDS.get((cc, command))
    if known is None:
        return UnknownCommand(cc, command, reader.rest())
    return known.parse_body(reader)


def describe_command(command: CcCommand) -> dict[str, Any]:
    """A command's ids, names and facts as ``decode`` prints them in ``frame``."""
    if isinstance(command, UnknownCommand):
        return {
            "command_class": cc_name(command.cc),
            "command_class_id": command.cc,
            "command": f"0x{command.command:02X}",
            "command_id": command.command,
            "data": command.data.hex(),
        }
    head: dict[str, Any] = {
        "command_class": cc_name(command.CC),
        "command_class_id": command.CC,
        "command": command.NAME,
    }
    if not isinstance(command, NoOperation):
        head["command_id"] = command.COMMAND
    return {**head, **command.fields()}


class ZwaveDecoder:
    """``meter-gateway decode zwave``: a data frame, a control byte or a command class payload."""

    input_kind: ClassVar[Literal["hex", "text"]] = "hex"

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode one input; raises FrameError (bad_crc, truncated, bad_frame) when it cannot."""
        del key, auth_key  # Z-Wave security (S0/S2) is not spoken on the serial link
        if not data:
            raise IncompleteFrame("no bytes", offset=0)
        if len(data) == 1 and data[0] in _CONTROL_BYTES:
            control = ControlByte(data[0])
            return Decoded(
                PROTOCOL, frame={"layer": "control", "name": control.name, "value": data[0]}
            )
        if data[0] == SOF:
            return self._data_frame(data)
        frame, records = _command(data, base=0)
        return Decoded(PROTOCOL, frame={"layer": "command_class", **frame}, records=records)

    def _data_frame(self, data: bytes) -> Decoded:
        raw = parse_frame(data)
        message = parse_message(raw)
        frame: dict[str, Any] = {
            "layer": "serial_api",
            "type": _enum_name(FrameType, raw.type),
            "function": _enum_name(FunctionId, raw.function_id),
            "function_id": raw.function_id,
            "role": message.ROLE,
            "length": data[1],
            "checksum": data[-1],
        }
        if isinstance(message, UnknownMessage):
            frame["params"] = raw.params.hex()
        else:
            _merge(frame, message.fields(), "message_")
        carried = command_payload(message)
        if carried is None:
            return Decoded(PROTOCOL, frame=frame)
        described, records = _command(*carried)
        _merge(frame, described, "cc_")
        return Decoded(PROTOCOL, frame=frame, records=records)


def _command(payload: bytes, base: int, end_point: int = 0) -> tuple[dict[str, Any], list[Record]]:
    """A payload's description and records; an encapsulated command is described inside."""
    command = parse_command(payload, base=base)
    described = describe_command(command)
    if isinstance(command, MultiChannelCmdEncap) and command.payload:
        inner, records = _command(
            command.payload, base + command.PAYLOAD_AT, command.source_end_point
        )
        described["encapsulated"] = inner
        return described, records
    if isinstance(command, MeterReport):
        return described, [report_record(command, end_point=end_point)]
    return described, []


def _merge(frame: dict[str, Any], fields: dict[str, Any], prefix: str) -> None:
    """Add fields to the flat frame description; a name already taken gets the prefix."""
    for name, value in fields.items():
        frame[f"{prefix}{name}" if name in frame else name] = value


_CONTROL_BYTES = frozenset(int(byte) for byte in ControlByte)


def _enum_name(enum: type[FrameType] | type[FunctionId], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:02X}"
