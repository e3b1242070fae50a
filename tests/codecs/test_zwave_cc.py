"""The command classes a Z-Wave Plus meter node answers, and the Serial API set-up messages."""

from __future__ import annotations

import json

import pytest

from modules.codecs.errors import FrameError, IncompleteFrame
from modules.codecs.records import to_json
from modules.codecs.zwave.api.messages import (
    APPLICATION_NODEINFO_LISTENING,
    GENERIC_TYPE_METER,
    SPECIFIC_TYPE_SIMPLE_METER,
    LearnMode,
    LearnStatus,
)
from modules.codecs.zwave.api.node import (
    ApplicationUpdate,
    ApplNodeInformationRequest,
    GetInitDataResponse,
    GetVersionResponse,
    NodeInfo,
    SetLearnModeCallback,
    SetLearnModeRequest,
)
from modules.codecs.zwave.api.transport import (
    ApplicationCommand,
    SendDataCallback,
    SendDataRequest,
)
from modules.codecs.zwave.cc.association import (
    LIFELINE_GROUP,
    AssociationGet,
    AssociationGroupCommandListReport,
    AssociationGroupInfoReport,
    AssociationGroupNameReport,
    AssociationReport,
    AssociationSet,
    GroupInfo,
    ZwavePlusInfoReport,
)
from modules.codecs.zwave.cc.base import (
    CommandClassId,
    NoOperation,
    UnknownCommand,
    encode_cc_list,
    parse_cc_list,
)
from modules.codecs.zwave.cc.multichannel import (
    MultiChannelCapabilityReport,
    MultiChannelCmdEncap,
    MultiChannelEndPointReport,
)
from modules.codecs.zwave.cc.version import (
    DeviceSpecificReport,
    ManufacturerSpecificReport,
    VersionCommandClassGet,
    VersionCommandClassReport,
    VersionReport,
)
from modules.codecs.zwave.dispatch import ZwaveDecoder, parse_command, parse_message
from modules.codecs.zwave.meter import MeterGet
from modules.codecs.zwave.serial import DataFrame, parse_frame

METER_NODE_CLASSES = (
    CommandClassId.ZWAVEPLUS_INFO,
    CommandClassId.ASSOCIATION,
    CommandClassId.VERSION,
    CommandClassId.MANUFACTURER_SPECIFIC,
    CommandClassId.DEVICE_RESET_LOCALLY,
    CommandClassId.METER,
)


def decode(wire: bytes) -> dict[str, object]:
    decoded = ZwaveDecoder().decode(wire, key=None, auth_key=None)
    result: dict[str, object] = json.loads(to_json(decoded))
    return result


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (ZwavePlusInfoReport(), "5e0202050017001700"),
        (ManufacturerSpecificReport(0x0086, 0x0002, 0x0064), "7205008600020064"),
        (VersionCommandClassGet(CommandClassId.METER), "861332"),
        (VersionCommandClassReport(CommandClassId.METER, 6), "86143206"),
        (VersionReport(3, 7, 18, 1, 2), "86120307120102"),
        (VersionReport(3, 7, 18, 1, 2, 1, ((2, 0),)), "861203071201020101" + "0200"),
        (AssociationSet(LIFELINE_GROUP, (1,)), "85010101"),
        (AssociationGet(LIFELINE_GROUP), "850201"),
        (AssociationReport(LIFELINE_GROUP, 5, (1, 7)), "85030105000107"),
        (DeviceSpecificReport(1, 0, b"382L"), "720701043338324c"),
        (AssociationGroupNameReport(LIFELINE_GROUP, "Lifeline"), "590201084c6966656c696e65"),
        (AssociationGroupInfoReport((GroupInfo(LIFELINE_GROUP),)), "59040101000001000000"),
        (
            AssociationGroupCommandListReport(LIFELINE_GROUP, ((0x5A, 0x01), (0x32, 0x02))),
            "590601045a013202",
        ),
        (MultiChannelEndPointReport(3, identical=True), "60084003"),
        (MultiChannelCapabilityReport(2, 0x31, 0x01, (0x32,)), "600a02310132"),
        (MultiChannelCmdEncap(0, 3, bytes.fromhex("320138"), True), "600d0083320138"),
        (NoOperation(), "00"),
        (UnknownCommand(0x20, 0x01, b"\xff"), "2001ff"),
    ],
)
def test_exact_bytes(command: object, wire: str) -> None:
    assert command.encode().hex() == wire  # type: ignore[attr-defined]
    assert parse_command(bytes.fromhex(wire)) == command


def test_cc_list_with_mark_and_extended_ids() -> None:
    listed = encode_cc_list((0x5E, 0x32, 0xF101), (0x20,))
    assert listed.hex() == "5e32f101ef20"
    assert parse_cc_list(listed) == ((0x5E, 0x32, 0xF101), (0x20,))
    with pytest.raises(ValueError):
        encode_cc_list((CommandClassId.NO_OPERATION, 0xEF))


def test_trailing_bytes_of_a_newer_version_are_ignored() -> None:
    assert parse_command(bytes.fromhex("850201ffff")) == AssociationGet(1)


def test_truncated_command_reports_the_missing_byte() -> None:
    with pytest.raises(IncompleteFrame) as caught:
        parse_command(bytes.fromhex("720500860002"))
    assert caught.value.offset == 6


def test_device_specific_report_shows_text() -> None:
    frame = decode(DeviceSpecificReport(1, 0, b"382L").encode())["frame"]
    assert isinstance(frame, dict)
    assert frame["text"] == "382L"
    assert frame["command"] == "DEVICE_SPECIFIC_REPORT"


def test_encoders_refuse_out_of_range_fields() -> None:
    for command in (
        AssociationSet(256),
        AssociationReport(1, 5, (300,)),
        ManufacturerSpecificReport(0x10000, 0, 0),
        VersionReport(1, 2, 3, 4, 5, None, ((1, 2),)),
        DeviceSpecificReport(8, 0, b""),
        DeviceSpecificReport(0, 0, bytes(32)),
    ):
        with pytest.raises(ValueError):
            command.encode()


# --------------------------------------------------------------- the node's Serial API set-up


def test_node_information_of_a_meter_node() -> None:
    request = ApplNodeInformationRequest(
        APPLICATION_NODEINFO_LISTENING,
        GENERIC_TYPE_METER,
        SPECIFIC_TYPE_SIMPLE_METER,
        METER_NODE_CLASSES,
    )
    assert request.frame().params.hex() == "013101065e8586725a32"
    assert parse_message(parse_frame(request.encode())) == request


def test_inclusion_sequence() -> None:
    start = SetLearnModeRequest(LearnMode.NWI, 7)
    assert start.frame().params.hex() == "0207"
    assert parse_message(parse_frame(start.encode())) == start
    done = SetLearnModeCallback(7, LearnStatus.ASSIGN_NODEID_DONE, 12)
    parsed = parse_message(parse_frame(done.encode()))
    assert parsed == done
    frame = decode(done.encode())["frame"]
    assert isinstance(frame, dict)
    assert (frame["status_name"], frame["node_id"], frame["role"]) == (
        "ASSIGN_NODEID_DONE",
        12,
        "callback",
    )


def test_learn_mode_callback_without_message_length() -> None:
    frame = DataFrame(0x00, 0x50, bytes.fromhex("070001"))
    assert parse_message(frame) == SetLearnModeCallback(7, 0, 1)


def test_controller_meter_get_arrives_as_application_command() -> None:
    incoming = ApplicationCommand(0, 1, MeterGet.for_version(6, 8, 1).encode(), -60, 0)
    result = decode(incoming.encode())
    frame = result["frame"]
    assert isinstance(frame, dict)
    assert (frame["command"], frame["scale"], frame["rate_type"]) == ("METER_GET", 8, 1)
    assert (frame["source_node_id"], frame["rssi"]) == (1, -60)
    assert result["records"] == []


def test_outgoing_report_to_the_lifeline() -> None:
    send = SendDataRequest(1, ZwavePlusInfoReport().encode(), callback_id=3)
    frame = decode(send.encode())["frame"]
    assert isinstance(frame, dict)
    assert (frame["command"], frame["node_id"], frame["role"]) == (
        "ZWAVEPLUS_INFO_REPORT",
        1,
        "request",
    )
    assert frame["installer_icon"] == 0x1700
    callback = SendDataCallback(3, 1)
    assert parse_message(parse_frame(callback.encode())) == callback


def test_version_response_and_init_data() -> None:
    version = GetVersionResponse("Z-Wave 6.07", 6)
    assert version.encode()[4:17] == b"Z-Wave 6.07\x00\x06"
    assert parse_message(parse_frame(version.encode())) == version
    init = GetInitDataResponse(8, 0x01, (1, 12, 232), 7, 0)
    wire = init.encode()
    assert wire[6] == 29  # node list length
    assert wire[7] == 0x01 and wire[8] == 0x08 and wire[35] == 0x80
    assert parse_message(parse_frame(wire)) == init
    frame = decode(wire)["frame"]
    assert isinstance(frame, dict)
    assert frame["end_node"] is True


def test_application_update_node_info() -> None:
    update = ApplicationUpdate(0x84, 5, NodeInfo(4, 0x31, 0x01, (0x32, 0x86)))
    assert update.encode()[4:12].hex() == "8405050431013286"
    assert parse_message(parse_frame(update.encode())) == update
    truncated = DataFrame(0x00, 0x49, bytes.fromhex("8405050431"))
    with pytest.raises(IncompleteFrame) as caught:
        parse_message(truncated)
    assert caught.value.offset == 4 + 5  # the node information ends early


def test_short_node_info_is_invalid() -> None:
    with pytest.raises(FrameError) as caught:
        parse_message(DataFrame(0x00, 0x49, bytes.fromhex("8405020431")))
    assert (caught.value.code, caught.value.offset) == ("bad_frame", 4 + 2)


def test_per_phase_report_in_multi_channel_encapsulation() -> None:
    inner = bytes.fromhex("3202214400013707012d00013707")
    wire = ApplicationCommand(0, 1, MultiChannelCmdEncap(2, 0, inner).encode()).encode()
    result = decode(wire)
    frame = result["frame"]
    assert isinstance(frame, dict)
    assert (frame["command"], frame["source_end_point"]) == ("MULTI_CHANNEL_CMD_ENCAP", 2)
    assert frame["encapsulated"]["command"] == "METER_REPORT"
    records = result["records"]
    assert isinstance(records, list)
    (record,) = records
    assert (record["name"], record["value"], record["subunit"]) == ("energy_import", 796.23, 2)


def test_error_inside_encapsulation_points_into_the_frame() -> None:
    wire = ApplicationCommand(0, 1, MultiChannelCmdEncap(2, 0, bytes.fromhex("3202")).encode())
    with pytest.raises(IncompleteFrame) as caught:
        ZwaveDecoder().decode(wire.encode(), key=None, auth_key=None)
    assert caught.value.offset == 4 + 3 + 4 + 2  # params, payload, encapsulated, report header
