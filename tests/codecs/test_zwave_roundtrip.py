"""Hypothesis round trips for every Z-Wave encoder: command classes and Serial API messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.codecs.zwave.api import node as zwave_api_node
from modules.codecs.zwave.api import transport as zwave_api_transport
from modules.codecs.zwave.api.messages import (
    AcceptedResponse,
    ByteMessage,
    SerialMessage,
    UnknownMessage,
)
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
    NodeInfo,
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
from modules.codecs.zwave.cc.association import (
    AssociationGet,
    AssociationGroupCommandListGet,
    AssociationGroupCommandListReport,
    AssociationGroupInfoGet,
    AssociationGroupInfoReport,
    AssociationGroupingsGet,
    AssociationGroupingsReport,
    AssociationGroupNameGet,
    AssociationGroupNameReport,
    AssociationRemove,
    AssociationReport,
    AssociationSet,
    AssociationSpecificGroupGet,
    AssociationSpecificGroupReport,
    DeviceResetLocallyNotification,
    GroupInfo,
    ZwavePlusInfoGet,
    ZwavePlusInfoReport,
)
from modules.codecs.zwave.cc.base import CcCommand, NoOperation, UnknownCommand
from modules.codecs.zwave.cc.multichannel import (
    MultiChannelCapabilityGet,
    MultiChannelCapabilityReport,
    MultiChannelCmdEncap,
    MultiChannelEndPointGet,
    MultiChannelEndPointReport,
)
from modules.codecs.zwave.cc.version import (
    DeviceSpecificGet,
    DeviceSpecificReport,
    ManufacturerSpecificGet,
    ManufacturerSpecificReport,
    VersionCapabilitiesGet,
    VersionCapabilitiesReport,
    VersionCommandClassGet,
    VersionCommandClassReport,
    VersionGet,
    VersionReport,
    VersionZWaveSoftwareGet,
    VersionZWaveSoftwareReport,
)
from modules.codecs.zwave.dispatch import COMMANDS, parse_command, parse_message
from modules.codecs.zwave.meter import (
    MeterGet,
    MeterReport,
    MeterReset,
    MeterSupportedGet,
    MeterSupportedReport,
)
from modules.codecs.zwave.security import s0, s2
from modules.codecs.zwave.serial import parse_frame

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
triple = st.tuples(u8, u8, u8)
nodes = st.lists(st.integers(1, 232), max_size=12).map(tuple)
rssi = st.integers(-128, 127)
cc_ids = st.one_of(st.integers(0, 0xF0).filter(lambda cc: cc != 0xEF), st.integers(0xF100, 0xFFFF))
cc_lists = st.lists(cc_ids, max_size=12).map(tuple)
end_points = st.integers(0, 127)


def sorted_unique(
    elements: st.SearchStrategy[int], **kwargs: Any
) -> st.SearchStrategy[tuple[int, ...]]:
    return st.sets(elements, **kwargs).map(lambda found: tuple(sorted(found)))


@st.composite
def meter_values(draw: st.DrawFn) -> tuple[int, int, Decimal, Decimal]:
    """(precision, size, value, previous) that fit the size."""
    precision = draw(st.integers(0, 7))
    size = draw(st.sampled_from((1, 2, 4)))
    limit = 1 << (8 * size - 1)
    raw = st.integers(-limit, limit - 1)
    value, previous = draw(raw), draw(raw)
    return (
        precision,
        size,
        Decimal(value).scaleb(-precision),
        Decimal(previous).scaleb(-precision),
    )


@st.composite
def meter_reports(draw: st.DrawFn) -> MeterReport:
    precision, size, value, previous = draw(meter_values())
    meter_type, rate_type = draw(st.integers(0, 31)), draw(st.integers(0, 3))
    layout = draw(st.sampled_from(("v1", "no_previous", "previous")))
    if layout == "v1":
        scale = draw(st.integers(0, 7))
        return MeterReport(meter_type, scale, value, rate_type, precision, size)
    scale = draw(st.integers(0, 7 + 255))
    if layout == "no_previous":
        return MeterReport(meter_type, scale, value, rate_type, precision, size, 0)
    delta = draw(st.integers(1, 0xFFFF))
    return MeterReport(meter_type, scale, value, rate_type, precision, size, delta, previous)


@st.composite
def meter_resets(draw: st.DrawFn) -> MeterReset:
    if draw(st.booleans()):
        return MeterReset()
    precision, size, value, _ = draw(meter_values())
    return MeterReset(
        draw(st.integers(0, 31)),
        draw(st.integers(0, 7 + 255)),
        draw(st.integers(0, 3)),
        value,
        precision,
        size,
    )


meter_gets = st.one_of(
    st.just(MeterGet()),
    st.builds(MeterGet, st.integers(0, 7), st.integers(0, 3)),
    st.builds(MeterGet, st.integers(0, 7 + 255), st.integers(0, 3), st.just(True)),
)
version_reports = st.one_of(
    st.builds(VersionReport, u8, u8, u8, u8, u8),
    st.builds(
        VersionReport,
        u8,
        u8,
        u8,
        u8,
        u8,
        hardware_version=u8,
        firmware_targets=st.lists(st.tuples(u8, u8), max_size=5).map(tuple),
    ),
)
unknown_commands = st.builds(
    UnknownCommand,
    cc_ids.filter(lambda cc: cc != 0),
    u8,
    st.binary(max_size=20),
).filter(lambda command: (command.cc, command.command) not in COMMANDS)

CC_STRATEGIES: dict[type[CcCommand], st.SearchStrategy[Any]] = {
    NoOperation: st.just(NoOperation()),
    UnknownCommand: unknown_commands,
    VersionGet: st.just(VersionGet()),
    VersionReport: version_reports,
    VersionCommandClassGet: st.builds(VersionCommandClassGet, u8),
    VersionCommandClassReport: st.builds(VersionCommandClassReport, u8, u8),
    VersionCapabilitiesGet: st.just(VersionCapabilitiesGet()),
    VersionCapabilitiesReport: st.builds(
        VersionCapabilitiesReport, st.booleans(), st.booleans(), st.booleans()
    ),
    VersionZWaveSoftwareGet: st.just(VersionZWaveSoftwareGet()),
    VersionZWaveSoftwareReport: st.builds(
        VersionZWaveSoftwareReport, triple, triple, u16, triple, u16, triple, u16, triple, u16
    ),
    ManufacturerSpecificGet: st.just(ManufacturerSpecificGet()),
    ManufacturerSpecificReport: st.builds(ManufacturerSpecificReport, u16, u16, u16),
    DeviceSpecificGet: st.builds(DeviceSpecificGet, st.integers(0, 7)),
    DeviceSpecificReport: st.builds(
        DeviceSpecificReport, st.integers(0, 7), st.integers(0, 7), st.binary(max_size=31)
    ),
    AssociationSet: st.builds(AssociationSet, u8, nodes),
    AssociationGet: st.builds(AssociationGet, u8),
    AssociationReport: st.builds(AssociationReport, u8, u8, nodes, u8),
    AssociationRemove: st.builds(AssociationRemove, u8, nodes),
    AssociationGroupingsGet: st.just(AssociationGroupingsGet()),
    AssociationGroupingsReport: st.builds(AssociationGroupingsReport, u8),
    AssociationSpecificGroupGet: st.just(AssociationSpecificGroupGet()),
    AssociationSpecificGroupReport: st.builds(AssociationSpecificGroupReport, u8),
    AssociationGroupNameGet: st.builds(AssociationGroupNameGet, u8),
    AssociationGroupNameReport: st.builds(AssociationGroupNameReport, u8, st.text(max_size=42)),
    AssociationGroupInfoGet: st.builds(AssociationGroupInfoGet, u8, st.booleans(), st.booleans()),
    AssociationGroupInfoReport: st.builds(
        AssociationGroupInfoReport,
        st.lists(st.builds(GroupInfo, u8, u16, u8, u16), max_size=5).map(tuple),
        st.booleans(),
        st.booleans(),
    ),
    AssociationGroupCommandListGet: st.builds(AssociationGroupCommandListGet, u8, st.booleans()),
    AssociationGroupCommandListReport: st.builds(
        AssociationGroupCommandListReport,
        u8,
        st.lists(st.tuples(cc_ids, u8), max_size=10).map(tuple),
    ),
    ZwavePlusInfoGet: st.just(ZwavePlusInfoGet()),
    ZwavePlusInfoReport: st.builds(ZwavePlusInfoReport, u8, u8, u8, u16, u16),
    DeviceResetLocallyNotification: st.just(DeviceResetLocallyNotification()),
    MultiChannelEndPointGet: st.just(MultiChannelEndPointGet()),
    MultiChannelEndPointReport: st.builds(
        MultiChannelEndPointReport, end_points, st.booleans(), st.booleans(), st.none() | end_points
    ),
    MultiChannelCapabilityGet: st.builds(MultiChannelCapabilityGet, end_points),
    MultiChannelCapabilityReport: st.builds(
        MultiChannelCapabilityReport, end_points, u8, u8, cc_lists, st.booleans()
    ),
    MultiChannelCmdEncap: st.builds(
        MultiChannelCmdEncap, end_points, end_points, st.binary(max_size=30), st.booleans()
    ),
    MeterGet: meter_gets,
    MeterReport: meter_reports(),
    MeterSupportedGet: st.just(MeterSupportedGet()),
    MeterSupportedReport: st.builds(
        MeterSupportedReport,
        st.integers(0, 31),
        sorted_unique(st.integers(0, 7 + 8 * 4 - 1), max_size=12),
        st.sampled_from(((), (1,), (2,), (1, 2))),
        st.booleans(),
    ),
    MeterReset: meter_resets(),
    s2.NonceGet: st.builds(s2.NonceGet, u8),
    s2.NonceReport: st.one_of(
        st.builds(
            s2.NonceReport, u8, st.just(True), st.booleans(), st.binary(min_size=16, max_size=16)
        ),
        st.builds(s2.NonceReport, u8, st.just(False), st.booleans(), st.just(b"")),
    ),
    s2.MessageEncapsulation: st.builds(
        s2.MessageEncapsulation,
        u8,
        st.lists(
            st.builds(s2.Extension, st.integers(0, 0x3F), st.binary(max_size=20), st.booleans()),
            max_size=3,
        ).map(tuple),
        st.binary(min_size=8, max_size=40),
        st.booleans(),
    ),
    s2.KexGet: st.just(s2.KexGet()),
    s2.KexReport: st.builds(s2.KexReport, u8, st.booleans(), st.booleans(), u8, u8),
    s2.KexSet: st.builds(s2.KexSet, u8, st.booleans(), st.booleans(), u8, u8),
    s2.KexFail: st.builds(s2.KexFail, u8),
    s2.PublicKeyReport: st.builds(
        s2.PublicKeyReport, st.binary(min_size=32, max_size=32), st.booleans()
    ),
    s2.NetworkKeyGet: st.builds(s2.NetworkKeyGet, u8),
    s2.NetworkKeyReport: st.builds(s2.NetworkKeyReport, u8, st.binary(min_size=16, max_size=16)),
    s2.NetworkKeyVerify: st.just(s2.NetworkKeyVerify()),
    s2.TransferEnd: st.builds(s2.TransferEnd, st.booleans(), st.booleans()),
    s2.S2CommandsSupportedGet: st.just(s2.S2CommandsSupportedGet()),
    s2.S2CommandsSupportedReport: st.builds(s2.S2CommandsSupportedReport, cc_lists),
    s0.S0CommandsSupportedGet: st.just(s0.S0CommandsSupportedGet()),
    s0.S0CommandsSupportedReport: st.builds(s0.S0CommandsSupportedReport, cc_lists, cc_lists, u8),
    s0.S0SchemeGet: st.builds(s0.S0SchemeGet, u8),
    s0.S0SchemeReport: st.builds(s0.S0SchemeReport, u8),
    s0.S0SchemeInherit: st.builds(s0.S0SchemeInherit, u8),
    s0.S0NetworkKeySet: st.builds(s0.S0NetworkKeySet, st.binary(min_size=16, max_size=16)),
    s0.S0NetworkKeyVerify: st.just(s0.S0NetworkKeyVerify()),
    s0.S0NonceGet: st.just(s0.S0NonceGet()),
    s0.S0NonceReport: st.builds(s0.S0NonceReport, st.binary(min_size=8, max_size=8)),
    s0.S0MessageEncapsulation: st.builds(
        s0.S0MessageEncapsulation,
        st.binary(min_size=8, max_size=8),
        st.binary(max_size=30),
        u8,
        st.binary(min_size=8, max_size=8),
    ),
    s0.COMMANDS[0x98, 0xC1]: st.builds(
        s0.S0MessageEncapsulation,
        st.binary(min_size=8, max_size=8),
        st.binary(max_size=30),
        u8,
        st.binary(min_size=8, max_size=8),
        st.just(True),
    ),
}


@pytest.mark.parametrize("cls", list(CC_STRATEGIES), ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_command_round_trip(cls: type[CcCommand], data: st.DataObject) -> None:
    command = data.draw(CC_STRATEGIES[cls])
    payload = command.encode()
    assert parse_command(payload) == command
    # The payload starts with the class and command ids the registry dispatches on.
    if cls not in (NoOperation, UnknownCommand):
        assert payload[0] == cls.CC
        assert payload[1] == cls.COMMAND


def test_every_registered_command_has_a_round_trip() -> None:
    assert set(COMMANDS.values()) <= set(CC_STRATEGIES)


node_infos = st.builds(NodeInfo, u8, u8, u8, cc_lists, cc_lists)
version_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=20
)

MESSAGE_STRATEGIES: dict[type[SerialMessage], st.SearchStrategy[Any]] = {
    GetInitDataRequest: st.just(GetInitDataRequest()),
    GetInitDataResponse: st.one_of(
        st.builds(GetInitDataResponse, u8, u8, sorted_unique(st.integers(1, 232), max_size=20)),
        st.builds(
            GetInitDataResponse, u8, u8, sorted_unique(st.integers(1, 232), max_size=20), u8, u8
        ),
    ),
    ApplNodeInformationRequest: st.builds(
        ApplNodeInformationRequest, u8, u8, u8, cc_lists, cc_lists
    ),
    SoftResetRequest: st.just(SoftResetRequest()),
    SerialApiStarted: st.builds(
        SerialApiStarted, u8, st.booleans(), u8, u8, u8, cc_lists, cc_lists, st.none() | u8
    ),
    GetCapabilitiesRequest: st.just(GetCapabilitiesRequest()),
    GetCapabilitiesResponse: st.builds(
        GetCapabilitiesResponse,
        u8,
        u8,
        u16,
        u16,
        u16,
        sorted_unique(st.integers(1, 256), max_size=40),
    ),
    GetVersionRequest: st.just(GetVersionRequest()),
    GetVersionResponse: st.builds(GetVersionResponse, version_text, u8),
    MemoryGetIdRequest: st.just(MemoryGetIdRequest()),
    MemoryGetIdResponse: st.builds(MemoryGetIdResponse, st.integers(0, 0xFFFFFFFF), u8),
    SetDefaultRequest: st.builds(SetDefaultRequest, u8),
    SetDefaultCallback: st.builds(SetDefaultCallback, u8),
    ApplicationUpdate: st.one_of(
        st.builds(ApplicationUpdate, u8.filter(lambda s: not 0x85 <= s <= 0x87), u8, node_infos),
        st.builds(ApplicationUpdate, u8.filter(lambda s: not 0x85 <= s <= 0x87), u8),
        st.builds(
            ApplicationUpdate, st.integers(0x85, 0x87), u8, st.none(), st.binary(max_size=30)
        ),
    ),
    ApplicationCommand: st.one_of(
        st.builds(ApplicationCommand, u8, u8, st.binary(max_size=60)),
        st.builds(ApplicationCommand, u8, u8, st.binary(max_size=60), rssi, st.none() | u8),
    ),
    BridgeApplicationCommand: st.one_of(
        st.builds(BridgeApplicationCommand, u8, u8, u8, st.binary(max_size=60)),
        st.builds(
            BridgeApplicationCommand,
            u8,
            u8,
            u8,
            st.binary(max_size=60),
            st.binary(max_size=29),
            rssi,
            st.none() | u8,
        ),
    ),
    SendDataRequest: st.builds(SendDataRequest, u8, st.binary(max_size=60), u8, u8),
    SendDataResponse: st.builds(SendDataResponse, st.booleans()),
    # Real transmit reports are absent or at least 17 bytes; status is 0..5.
    SendDataCallback: st.builds(
        SendDataCallback,
        u8,
        st.integers(0, 5),
        st.just(b"") | st.binary(min_size=17, max_size=24),
    ),
    SendDataAbortRequest: st.just(SendDataAbortRequest()),
    SendNodeInformationRequest: st.builds(SendNodeInformationRequest, u8, u8, u8),
    SendNodeInformationResponse: st.builds(SendNodeInformationResponse, st.booleans()),
    SendNodeInformationCallback: st.builds(SendNodeInformationCallback, u8, u8),
    SetLearnModeRequest: st.builds(SetLearnModeRequest, u8, u8),
    SetLearnModeResponse: st.builds(SetLearnModeResponse, st.booleans()),
    SetLearnModeCallback: st.builds(SetLearnModeCallback, u8, u8, u8, st.binary(max_size=40)),
}


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_message_round_trip(cls: type[SerialMessage], data: st.DataObject) -> None:
    message = data.draw(MESSAGE_STRATEGIES[cls])
    frame = parse_frame(message.encode())
    assert (frame.type, frame.function_id) == (cls.TYPE, cls.FUNCTION)
    from_host = cls.ROLE == "request"
    assert parse_message(frame, from_host=from_host) == message
    # Without the direction, the layout alone must pick the same message; ZW_SET_DEFAULT's
    # request and callback are both one callback id byte, so only the direction tells them apart.
    if cls is not SetDefaultCallback:
        assert parse_message(frame) == message


def test_every_message_class_has_a_round_trip() -> None:
    defined = {
        value
        for module in (zwave_api_node, zwave_api_transport)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, SerialMessage)
    }
    assert defined - {SerialMessage, AcceptedResponse, ByteMessage} <= set(MESSAGE_STRATEGIES)


@settings(max_examples=100, deadline=None)
@given(frame_type=st.integers(2, 0xFF), function_id=u8, params=st.binary(max_size=40))
def test_reserved_frame_types_round_trip_as_unknown(
    frame_type: int, function_id: int, params: bytes
) -> None:
    message = UnknownMessage(frame_type, function_id, params)
    assert parse_message(parse_frame(message.encode())) == message
