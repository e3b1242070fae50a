"""The meter node's application without a stick: channels, answers, the reporting policy."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.engine import Register
from modules.codecs.errors import FrameError
from modules.codecs.zwave.cc.association import (
    AssociationGet,
    AssociationRemove,
    AssociationReport,
    AssociationSet,
)
from modules.codecs.zwave.cc.base import CommandClassId
from modules.codecs.zwave.cc.multichannel import (
    MultiChannelCmdEncap,
    MultiChannelEndPointGet,
    MultiChannelEndPointReport,
)
from modules.codecs.zwave.cc.version import (
    ManufacturerSpecificGet,
    ManufacturerSpecificReport,
    VersionCommandClassGet,
    VersionCommandClassReport,
)
from modules.codecs.zwave.dispatch import parse_command
from modules.codecs.zwave.meter import (
    MeterGet,
    MeterReport,
    MeterSupportedGet,
    MeterSupportedReport,
)
from modules.codecs.zwave.security.s0 import S0CommandsSupportedGet, S0CommandsSupportedReport
from modules.codecs.zwave.security.s2 import S2CommandsSupportedGet, S2CommandsSupportedReport
from modules.zwave.node import Identity, MeterNode
from modules.zwave.values import Channel, ReportPolicy, channels_for, obis_for, read_value

NOW = datetime(2026, 1, 1, tzinfo=UTC)


REGISTERS = {
    "1-0:1.8.0": Register("1-0:1.8.0", Decimal("12345.6789"), "kWh", NOW),
    "1-0:2.8.0": Register("1-0:2.8.0", Decimal("5.5"), "kWh", NOW),
    "1-0:1.7.0": Register("1-0:1.7.0", 1234.56, "W", NOW),
    "1-0:2.7.0": Register("1-0:2.7.0", 0.0, "W", NOW),
    "1-0:3.7.0": Register("1-0:3.7.0", 250.0, "var", NOW),
    "1-0:3.8.0": Register("1-0:3.8.0", Decimal("7.25"), "kvarh", NOW),
    "1-0:13.7.0": Register("1-0:13.7.0", 0.981, None, NOW),
    "1-0:52.7.0": Register("1-0:52.7.0", 231.26, "V", NOW),
}


def node(codes: tuple[str, ...], **policy: float) -> MeterNode:
    options = {"min_interval_s": 10.0, "interval_s": 0.0, "delta_kwh": 0.1, "delta_pct": 10.0}
    return MeterNode(
        channels_for(codes),
        Identity(manufacturer_id=0x1234, product_type=0x0382, product_id=7),
        ReportPolicy(**(options | policy)),
    )


def ask(target: MeterNode, payload: bytes, now: float = 0.0) -> list[object]:
    return [parse_command(answer) for answer in target.handle(payload, REGISTERS, now)]


def test_display_codes_become_channels_and_the_rest_is_left_out() -> None:
    channels = channels_for(("1-0:1.8.0", "1-0:1.6.0", "1-0:2.7.0", "1-0:52.7.0", "1.8.0"))
    assert channels == (
        Channel(0, 1, 0, "1-0:1.8.0"),
        Channel(0, 2, 2, "1-0:2.7.0"),
        Channel(2, 0, 4, "1-0:52.7.0"),
    )
    assert obis_for(0, 2, 8) == "1-0:4.8.0"
    assert obis_for(3, 1, 5) == "1-0:71.7.0"  # current has no direction
    assert obis_for(0, 1, 3) is None  # pulse count: no register


def test_values_are_converted_and_rounded_for_the_air() -> None:
    assert read_value(REGISTERS, "1-0:1.8.0", 0) == Decimal("12345.678")  # floored, 1 Wh
    assert read_value(REGISTERS, "1-0:1.7.0", 2) == Decimal("1234.6")
    assert read_value(REGISTERS, "1-0:3.7.0", 7) == Decimal("0.250")  # var -> kvar
    assert read_value(REGISTERS, "1-0:4.8.0", 8) is None  # unknown stays unknown
    text = {"x": Register("x", "on", None, NOW)}
    assert read_value(text, "x", 2) is None


def test_supported_report_and_every_get_agree() -> None:
    target = node(("1-0:1.8.0", "1-0:1.7.0", "1-0:2.7.0", "1-0:13.7.0", "1-0:3.8.0"))
    (supported,) = ask(target, MeterSupportedGet().encode())
    assert isinstance(supported, MeterSupportedReport)
    assert supported.scales == (0, 2, 6, 8) and supported.rate_types == (1, 2)
    for rate in supported.rate_types:
        for scale in supported.scales:
            answers = ask(target, MeterGet(scale, rate, True).encode())
            if (rate, scale) == (2, 8):
                assert answers == []  # R- is unknown to this meter: silence, not 0
                continue
            (report,) = answers
            assert isinstance(report, MeterReport)
            assert (report.scale, report.rate_type) == (scale, rate)
    (v1,) = ask(target, MeterGet().encode())  # V1: the first value of the list
    assert v1 == MeterReport.of(1, 0, Decimal("12345.678"), rate_type=1)
    (pf,) = ask(target, MeterGet(6).encode())  # V3 form without rate type
    assert isinstance(pf, MeterReport) and pf.rate_type == 1 and pf.value == Decimal("0.981")


def test_phase_values_answer_through_their_end_point() -> None:
    target = node(("1-0:1.8.0", "1-0:52.7.0"))
    (count,) = ask(target, MultiChannelEndPointGet().encode())
    assert count == MultiChannelEndPointReport(2, identical=True)
    get = MultiChannelCmdEncap(0, 2, MeterGet(4, 1, True).encode())
    (answer,) = ask(target, get.encode())
    assert isinstance(answer, MultiChannelCmdEncap) and answer.source_end_point == 2
    report = parse_command(answer.payload)
    assert isinstance(report, MeterReport) and report.value == Decimal("231.3")
    assert ask(target, MultiChannelCmdEncap(0, 1, MeterGet(4).encode()).encode()) == []


def test_identity_versions_and_the_lifeline() -> None:
    target = node(("1-0:1.8.0",))
    assert ask(target, ManufacturerSpecificGet().encode()) == [
        ManufacturerSpecificReport(0x1234, 0x0382, 7)
    ]
    assert ask(target, VersionCommandClassGet(0x32).encode()) == [
        VersionCommandClassReport(0x32, 4)
    ]
    assert ask(target, VersionCommandClassGet(0x60).encode()) == [
        VersionCommandClassReport(0x60, 0)  # no end points in this list
    ]
    assert ask(target, AssociationSet(1, (1, 5)).encode()) == []
    assert ask(target, AssociationSet(2, (9,)).encode()) == []  # there is no group 2
    assert ask(target, AssociationGet(1).encode()) == [AssociationReport(1, 5, (1, 5))]
    ask(target, AssociationRemove(1, (5,)).encode())
    assert target.lifeline == (1,)
    ask(target, AssociationRemove(0).encode())
    assert not target.lifeline


def test_a_get_sent_to_many_nodes_is_not_answered_and_garbage_is_refused() -> None:
    target = node(("1-0:1.8.0",))
    assert target.handle(MeterGet(0, 1, True).encode(), REGISTERS, 0.0, rx_status=0x08) == []
    with pytest.raises(FrameError):
        target.handle(b"\x32\x02\x21", REGISTERS, 0.0)  # a report cut short


def test_reports_on_change_with_min_interval_delta_and_period() -> None:
    target = node(("1-0:1.8.0", "1-0:1.7.0"), min_interval_s=10.0, interval_s=100.0)
    first = target.reports_due(REGISTERS, 0.0)
    assert len(first) == 2  # everything once at the start
    assert target.reports_due(REGISTERS, 5.0) == []
    changed = dict(REGISTERS)
    changed["1-0:1.7.0"] = Register("1-0:1.7.0", 1300.0, "W", NOW)  # +5 %: too little
    changed["1-0:1.8.0"] = Register("1-0:1.8.0", Decimal("12345.8"), "kWh", NOW)  # +0.122 kWh
    assert target.reports_due(changed, 5.0) == []  # too soon
    (energy,) = [parse_command(p) for p in target.reports_due(changed, 12.0)]
    assert isinstance(energy, MeterReport) and energy.scale == 0
    assert energy.previous_value == Decimal("12345.678") and energy.delta_time_s == 12
    assert target.reports_due(changed, 50.0) == []
    assert len(target.reports_due(changed, 101.0)) == 1  # power: its period is up


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=24))
def test_any_payload_gives_answers_or_the_codec_error(payload: bytes) -> None:
    target = node(("1-0:1.8.0", "1-0:2.7.0", "1-0:32.7.0"))
    try:
        answers = target.handle(payload, REGISTERS, 0.0)
    except FrameError:
        return
    for answer in answers:
        parse_command(answer)


def test_end_points_list_their_meter_class_as_secure() -> None:
    # Z-Wave JS asks every end point of a secure node what it supports securely.
    phases = node(("1-0:1.8.0", "1-0:52.7.0"))
    phases.security_classes = (CommandClassId.SECURITY_2, CommandClassId.SECURITY)
    for question, report in (
        (S2CommandsSupportedGet(), S2CommandsSupportedReport((CommandClassId.METER,))),
        (S0CommandsSupportedGet(), S0CommandsSupportedReport((CommandClassId.METER,))),
    ):
        asked = MultiChannelCmdEncap(0, 2, question.encode()).encode()  # to end point 2 (L2)
        assert ask(phases, asked) == [MultiChannelCmdEncap(2, 0, report.encode())]
        assert ask(phases, MultiChannelCmdEncap(0, 3, question.encode()).encode()) == []
    phases.security_classes = ()
    asked = MultiChannelCmdEncap(0, 2, S2CommandsSupportedGet().encode()).encode()
    assert ask(phases, asked) == []  # a node without security has nothing to list
