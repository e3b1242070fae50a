"""The meter node's application: what it reports, and how it answers the other nodes.

Pure: command class payloads in, payloads out; registers and a monotonic clock are passed in.
The channels (``values.py``) come from the meter's display list; L1..L3 values are Multi
Channel end points 1..3, each with its own Meter CC, so a display can show per-phase voltage
next to the totals of the root device.

What every answer keeps consistent (zwave-js drops reports that contradict the Supported
Report): an end point advertises the scales of its channels and the rate types they use, and a
report always carries an advertised scale and rate type. A Get for a direction the list does
not hold is answered from the register of that direction when the meter has it; a value the
meter does not know is never answered with 0, it is not answered at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

import msgspec

from gateway.engine import Register
from modules.codecs.zwave.api.messages import (
    GENERIC_TYPE_METER,
    SPECIFIC_TYPE_SIMPLE_METER,
    RxStatus,
)
from modules.codecs.zwave.cc.association import (
    AGI_PROFILE_LIFELINE,
    LIFELINE_GROUP,
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
    GroupInfo,
    ZwavePlusInfoGet,
    ZwavePlusInfoReport,
)
from modules.codecs.zwave.cc.base import CcCommand, CommandClassId
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
    VersionCommandClassGet,
    VersionCommandClassReport,
    VersionGet,
    VersionReport,
)
from modules.codecs.zwave.dispatch import parse_command
from modules.codecs.zwave.meter import (
    MeterGet,
    MeterReport,
    MeterSupportedGet,
    MeterSupportedReport,
    RateType,
    scale_info,
)
from modules.codecs.zwave.security.s0 import S0CommandsSupportedGet, S0CommandsSupportedReport
from modules.codecs.zwave.security.s2 import S2CommandsSupportedGet, S2CommandsSupportedReport
from modules.zwave.values import ELECTRIC, Channel, ReportPolicy, obis_for, read_value

__all__ = ["CC_VERSIONS", "LIFELINE_MAX_NODES", "EndPoint", "Identity", "MeterNode"]
LIFELINE_MAX_NODES = 5  # Z-Wave Plus asks for at least one; a controller and a display or two
MAX_DELTA_TIME_S = 0xFFFE  # 0xFFFF means "unknown" to zwave-js (Meter Report delta time)
_BROADCAST_OR_MULTICAST = RxStatus.TYPE_BROAD | RxStatus.TYPE_MULTI

# The command class versions the node implements (answered to Version Command Class Get).
_ROOT_CLASSES: dict[int, int] = {
    CommandClassId.ZWAVEPLUS_INFO: 2,  # Z-Wave Plus: listed first in the node information
    CommandClassId.ASSOCIATION: 2,
    CommandClassId.ASSOCIATION_GRP_INFO: 1,
    CommandClassId.VERSION: 2,
    CommandClassId.MANUFACTURER_SPECIFIC: 2,
}
CC_VERSIONS: dict[int, int] = {
    **_ROOT_CLASSES,
    CommandClassId.METER: 4,  # V4: rate type in Get, kvar/kvarh through Scale 2
    CommandClassId.MULTI_CHANNEL: 3,
    CommandClassId.SECURITY: 1,
    CommandClassId.SECURITY_2: 1,
}
# Classes a securely included node still answers in the clear (and lists in its node
# information for every controller); the rest only at its highest security class.
_OPEN_CLASSES = frozenset(
    (CommandClassId.ZWAVEPLUS_INFO, CommandClassId.SECURITY, CommandClassId.SECURITY_2)
)


class EndPoint(msgspec.Struct, frozen=True):
    """What one end point advertises in its Meter Supported Report."""

    number: int
    scales: tuple[int, ...]
    rate_types: tuple[int, ...]

    @property
    def default_rate(self) -> int:
        """The rate type of values without a direction: one the end point advertised."""
        return self.rate_types[0]

    def rate_for(self, requested: int) -> int:
        """The rate type that answers a Get: the requested one when advertised, else default."""
        return requested if requested in self.rate_types else self.default_rate


def _end_points(channels: Sequence[Channel]) -> dict[int, EndPoint]:
    out: dict[int, EndPoint] = {}
    for number in sorted({c.end_point for c in channels}):
        mine = [c for c in channels if c.end_point == number]
        scales = tuple(dict.fromkeys(c.scale for c in mine))
        rates = {c.rate_type for c in mine} & {RateType.IMPORT, RateType.EXPORT}
        ordered = tuple(r for r in (RateType.IMPORT, RateType.EXPORT) if r in rates)
        out[number] = EndPoint(number, scales, tuple(int(r) for r in ordered) or (RateType.IMPORT,))
    return out


class Identity(msgspec.Struct, frozen=True):
    """How the node introduces itself (Version and Manufacturer Specific Reports)."""

    manufacturer_id: int = 0xFFFF
    product_type: int = 0x0382
    product_id: int = 0x0001
    library_type: int = 0x03  # enhanced end node, until the stick says otherwise
    protocol_version: tuple[int, int] = (0, 0)
    application_version: tuple[int, int] = (0, 0)
    serial_number: str = ""


class MeterNode:
    """The application behind the stick: answers commands, decides unsolicited reports."""

    def __init__(
        self,
        channels: Sequence[Channel],
        identity: Identity,
        policy: ReportPolicy,
        *,
        lifeline: Iterable[int] = (),
        security_classes: Iterable[int] = (),
    ) -> None:
        self.channels = tuple(channels)
        self.security_classes = tuple(security_classes)  # S2 and/or S0, when offered
        self.identity = identity
        self.policy = policy
        self.end_points = _end_points(self.channels)
        self.lifeline: tuple[int, ...] = tuple(lifeline)[:LIFELINE_MAX_NODES]

    @property
    def phase_end_points(self) -> int:
        """How many Multi Channel end points the node has (0: none)."""
        return max(self.end_points, default=0)

    def supported_classes(self) -> tuple[int, ...]:
        """The root device's command classes, for its node information frame."""
        classes = list(_ROOT_CLASSES)
        if 0 in self.end_points:
            classes.append(CommandClassId.METER)
        if self.phase_end_points:
            classes.append(CommandClassId.MULTI_CHANNEL)
        return (*classes, *self.security_classes)

    def node_information(self, *, secure: bool) -> tuple[int, ...]:
        """The classes the node information frame lists: all of them, or once the node is
        securely included only those it still answers in the clear (the rest are listed by
        the Security 2 / Security 0 Commands Supported Reports)."""
        everything = self.supported_classes()
        return tuple(cc for cc in everything if cc in _OPEN_CLASSES) if secure else everything

    def secure_classes(self) -> tuple[int, ...]:
        """The classes answered only securely once the node is securely included."""
        return tuple(cc for cc in self.supported_classes() if cc not in _OPEN_CLASSES)

    def handle(
        self,
        payload: bytes,
        registers: Mapping[str, Register],
        now: float,
        *,
        rx_status: int = 0,
    ) -> list[bytes]:
        """The payloads answering one received command (FrameError when it is malformed)."""
        answers = self._answer(parse_command(payload), registers, now)
        if rx_status & _BROADCAST_OR_MULTICAST:
            return []  # a Get sent to many nodes is not answered (it would flood the network)
        return answers

    def reports_due(self, registers: Mapping[str, Register], now: float) -> list[bytes]:
        """Unsolicited Meter Reports for the lifeline, noted as sent."""
        out: list[bytes] = []
        for channel in self.channels:
            value = read_value(registers, channel.obis, channel.scale)
            if value is None:
                continue
            rate = self.end_points[channel.end_point].rate_for(channel.rate_type)
            key = (channel.end_point, rate, channel.scale)
            if not self.policy.due(key, value, now):
                continue
            out.append(self._report(key, value, now, to_end_point=0))
            self.policy.note(key, value, now)
        return out

    # internals ---------------------------------------------------------------------------------

    def _answer(
        self, command: CcCommand, registers: Mapping[str, Register], now: float
    ) -> list[bytes]:
        if isinstance(command, MultiChannelCmdEncap):
            return self._encapsulated(command, registers, now)
        meter = self._meter(command, 0, registers, now)
        if meter is not None:
            return meter
        reply = self._plain(command)
        return [] if reply is None else [reply.encode()]

    def _plain(self, command: CcCommand) -> CcCommand | None:
        ident = self.identity
        if isinstance(command, VersionGet):
            return VersionReport(
                ident.library_type,
                *ident.protocol_version,
                *ident.application_version,
                hardware_version=1,
            )
        if isinstance(command, VersionCommandClassGet):
            version = CC_VERSIONS.get(command.requested_cc, 0)
            if command.requested_cc not in self.supported_classes():
                version = 0
            return VersionCommandClassReport(command.requested_cc, version)
        if isinstance(command, ManufacturerSpecificGet):
            return ManufacturerSpecificReport(
                ident.manufacturer_id, ident.product_type, ident.product_id
            )
        if isinstance(command, DeviceSpecificGet):
            serial = ident.serial_number.encode("utf-8")[:0x1F]
            return DeviceSpecificReport(1, 0, serial)  # type 1 serial number, format 0 UTF-8
        if isinstance(command, ZwavePlusInfoGet):
            return ZwavePlusInfoReport()
        if isinstance(command, MultiChannelEndPointGet) and self.phase_end_points:
            return MultiChannelEndPointReport(self.phase_end_points, identical=True)
        if isinstance(command, MultiChannelCapabilityGet) and command.end_point in self.end_points:
            return MultiChannelCapabilityReport(
                command.end_point,
                GENERIC_TYPE_METER,
                SPECIFIC_TYPE_SIMPLE_METER,
                (CommandClassId.METER,),
            )
        return self._association(command)

    def _association(self, command: CcCommand) -> CcCommand | None:
        if isinstance(command, AssociationSet):
            if command.group == LIFELINE_GROUP:
                added = [n for n in command.node_ids if n and n not in self.lifeline]
                self._set_lifeline((*self.lifeline, *added)[:LIFELINE_MAX_NODES])
            return None
        if isinstance(command, AssociationRemove):
            if command.group in (0, LIFELINE_GROUP):
                kept = [n for n in self.lifeline if command.node_ids and n not in command.node_ids]
                self._set_lifeline(tuple(kept))
            return None
        if isinstance(command, AssociationGet):
            # An unsupported group is answered as the lifeline (SDS13782 Association Get).
            return AssociationReport(LIFELINE_GROUP, LIFELINE_MAX_NODES, self.lifeline)
        if isinstance(command, AssociationGroupingsGet):
            return AssociationGroupingsReport(1)
        if isinstance(command, AssociationSpecificGroupGet):
            return AssociationSpecificGroupReport(0)
        if isinstance(command, AssociationGroupNameGet):
            return AssociationGroupNameReport(LIFELINE_GROUP, "Lifeline")
        if isinstance(command, AssociationGroupInfoGet):
            info = GroupInfo(LIFELINE_GROUP, AGI_PROFILE_LIFELINE)
            return AssociationGroupInfoReport((info,), list_mode=command.list_mode)
        if isinstance(command, AssociationGroupCommandListGet):
            listed = ((CommandClassId.METER, MeterReport.COMMAND),)
            return AssociationGroupCommandListReport(LIFELINE_GROUP, listed)
        return None

    def _set_lifeline(self, nodes: tuple[int, ...]) -> None:
        if nodes != self.lifeline:
            self.lifeline = nodes
            self.policy.forget()  # whoever is new on the lifeline gets every value at once

    def _encapsulated(
        self, command: MultiChannelCmdEncap, registers: Mapping[str, Register], now: float
    ) -> list[bytes]:
        if command.bit_address:
            return []  # multi-end-point addressing is for actuators; a Get must be singlecast
        target = command.destination_end_point
        inner = parse_command(command.payload)
        if target == 0:
            answers = self._answer(inner, registers, now)
        elif isinstance(inner, S2CommandsSupportedGet | S0CommandsSupportedGet):
            answers = self._end_point_secure_classes(inner, target)
        else:
            answers = self._meter(inner, target, registers, now) or []
        return [
            MultiChannelCmdEncap(target, command.source_end_point, answer).encode()
            for answer in answers
        ]

    def _end_point_secure_classes(
        self, command: S2CommandsSupportedGet | S0CommandsSupportedGet, end_point: int
    ) -> list[bytes]:
        """A secure controller asks each end point what it supports securely: its Meter CC.

        Only commands at the node's highest class get here (the security layer saw to it).
        """
        if end_point not in self.end_points or not self.security_classes:
            return []
        if isinstance(command, S2CommandsSupportedGet):
            return [S2CommandsSupportedReport((CommandClassId.METER,)).encode()]
        return [S0CommandsSupportedReport((CommandClassId.METER,)).encode()]

    def _meter(
        self, command: CcCommand, end_point: int, registers: Mapping[str, Register], now: float
    ) -> list[bytes] | None:
        """Answers to a Meter command at one end point; None when it is no Meter command."""
        if not isinstance(command, MeterGet | MeterSupportedGet):
            return [] if command.CC == CommandClassId.METER else None
        advertised = self.end_points.get(end_point)
        if advertised is None:
            return []
        if isinstance(command, MeterSupportedGet):
            report = MeterSupportedReport(ELECTRIC, advertised.scales, advertised.rate_types)
            return [report.encode()]
        scale = command.scale
        if scale is None or scale not in advertised.scales:
            # A V1 Get, or a scale we do not have: the default (first) value answers.
            first = next(c for c in self.channels if c.end_point == end_point)
            scale, requested = first.scale, first.rate_type
        else:
            requested = command.rate_type
        rate = advertised.rate_for(requested)
        info = scale_info(ELECTRIC, scale)
        if info is not None and info.directional and requested == RateType.UNSPECIFIED:
            rate = self._known_direction(end_point, scale, advertised, registers)
        code = obis_for(end_point, rate, scale)
        value = None if code is None else read_value(registers, code, scale)
        if value is None:
            return []  # unknown: silence, never a made-up 0
        return [self._report((end_point, rate, scale), value, now, to_end_point=None)]

    def _known_direction(
        self, end_point: int, scale: int, advertised: EndPoint, registers: Mapping[str, Register]
    ) -> int:
        """For a Get without a rate type: the advertised direction the meter has a value for."""
        for rate in advertised.rate_types:
            code = obis_for(end_point, rate, scale)
            if code is not None and read_value(registers, code, scale) is not None:
                return rate
        return advertised.default_rate

    def _report(
        self, key: tuple[int, int, int], value: Decimal, now: float, *, to_end_point: int | None
    ) -> bytes:
        """A Meter Report (with previous value for energy), encapsulated for end points 1..3.

        ``to_end_point`` None leaves the encapsulation to the caller (a Get's answer).
        """
        end_point, rate, scale = key
        info = scale_info(ELECTRIC, scale)
        delta_s, previous = 0, None
        last = self.policy.last(key)
        if info is not None and info.accumulating and last is not None:
            elapsed = round(now - last[1])
            if 0 < elapsed <= MAX_DELTA_TIME_S:
                delta_s, previous = elapsed, last[0]
        report = MeterReport.of(
            ELECTRIC,
            scale,
            value,
            rate_type=rate,
            delta_time_s=delta_s,
            previous_value=previous,
        ).encode()
        if end_point and to_end_point is not None:
            return MultiChannelCmdEncap(end_point, to_end_point, report).encode()
        return report
