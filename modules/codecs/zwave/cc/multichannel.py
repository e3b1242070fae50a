"""Multi Channel CC (0x60, V3/V4): end points and command encapsulation.

A meter with per-phase values exposes each phase as an end point (1..3) carrying its own Meter
CC; a controller addresses an end point, and the node answers from it, by wrapping the command in
Multi Channel Command Encapsulation. Layouts: SDS13781 and zwave-js ``MultiChannelCC.ts``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from modules.codecs.zwave.cc.base import (
    CcCommand,
    CommandClassId,
    Reader,
    check_u8,
    encode_cc_list,
    parse_cc_list,
    plain_fields,
)

__all__ = [
    "COMMANDS",
    "MultiChannelCapabilityGet",
    "MultiChannelCapabilityReport",
    "MultiChannelCmdEncap",
    "MultiChannelEndPointGet",
    "MultiChannelEndPointReport",
]

_END_POINT_MASK = 0x7F


def _check_end_point(*end_points: int) -> None:
    for end_point in end_points:
        if not 0 <= end_point <= _END_POINT_MASK:
            raise ValueError(f"an end point is 0..127, got {end_point}")


class MultiChannelEndPointGet(CcCommand, frozen=True):
    """Multi Channel End Point Get: how many end points the node has."""

    CC: ClassVar[int] = CommandClassId.MULTI_CHANNEL
    COMMAND: ClassVar[int] = 0x07
    NAME: ClassVar[str] = "MULTI_CHANNEL_END_POINT_GET"


class MultiChannelEndPointReport(CcCommand, frozen=True):
    """Multi Channel End Point Report; ``aggregated`` None is the V3 layout."""

    end_points: int
    identical: bool = False
    dynamic: bool = False
    aggregated: int | None = None

    CC: ClassVar[int] = CommandClassId.MULTI_CHANNEL
    COMMAND: ClassVar[int] = 0x08
    NAME: ClassVar[str] = "MULTI_CHANNEL_END_POINT_REPORT"

    def body(self) -> bytes:
        """Dynamic/identical bits, individual count, optional aggregated count (V4)."""
        _check_end_point(self.end_points)
        out = bytes((self.dynamic << 7 | self.identical << 6, self.end_points))
        if self.aggregated is None:
            return out
        _check_end_point(self.aggregated)
        return out + bytes((self.aggregated,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report."""
        flags = reader.u8("end point flags")
        count = reader.u8("end points") & _END_POINT_MASK
        aggregated = (
            reader.u8("aggregated end points") & _END_POINT_MASK if reader.remaining else None
        )
        return cls(count, bool(flags & 0x40), bool(flags & 0x80), aggregated)


class MultiChannelCapabilityGet(CcCommand, frozen=True):
    """Multi Channel Capability Get: the device class and command classes of one end point."""

    end_point: int

    CC: ClassVar[int] = CommandClassId.MULTI_CHANNEL
    COMMAND: ClassVar[int] = 0x09
    NAME: ClassVar[str] = "MULTI_CHANNEL_CAPABILITY_GET"

    def body(self) -> bytes:
        """The end point."""
        _check_end_point(self.end_point)
        return bytes((self.end_point,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The end point."""
        return cls(reader.u8("end point") & _END_POINT_MASK)


class MultiChannelCapabilityReport(CcCommand, frozen=True):
    """Multi Channel Capability Report: an end point's device classes and command classes."""

    end_point: int
    generic_type: int
    specific_type: int
    supported: tuple[int, ...] = ()
    dynamic: bool = False

    CC: ClassVar[int] = CommandClassId.MULTI_CHANNEL
    COMMAND: ClassVar[int] = 0x0A
    NAME: ClassVar[str] = "MULTI_CHANNEL_CAPABILITY_REPORT"

    def body(self) -> bytes:
        """End point, device classes, command class list."""
        _check_end_point(self.end_point)
        check_u8("device class", self.generic_type, self.specific_type)
        head = (self.dynamic << 7 | self.end_point, self.generic_type, self.specific_type)
        return bytes(head) + encode_cc_list(self.supported)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report; controlled classes after a MARK are not part of an end point's list."""
        flags = reader.u8("end point")
        generic = reader.u8("generic type")
        specific = reader.u8("specific type")
        at = reader.offset
        supported, _ = parse_cc_list(reader.rest(), base=at)
        return cls(flags & _END_POINT_MASK, generic, specific, supported, bool(flags & 0x80))


class MultiChannelCmdEncap(CcCommand, frozen=True):
    """Multi Channel Command Encapsulation: ``payload`` is the command of one end point."""

    source_end_point: int
    destination_end_point: int
    payload: bytes
    bit_address: bool = False  # the destination is a bitmask of end points 1..7

    CC: ClassVar[int] = CommandClassId.MULTI_CHANNEL
    COMMAND: ClassVar[int] = 0x0D
    NAME: ClassVar[str] = "MULTI_CHANNEL_CMD_ENCAP"
    PAYLOAD_AT: ClassVar[int] = 4  # class, command, source, destination

    def body(self) -> bytes:
        """Source, bit-address flag and destination, then the encapsulated command."""
        _check_end_point(self.source_end_point, self.destination_end_point)
        destination = self.bit_address << 7 | self.destination_end_point
        return bytes((self.source_end_point, destination)) + self.payload

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The encapsulation; the payload is parsed by the caller."""
        source = reader.u8("source end point") & _END_POINT_MASK
        destination = reader.u8("destination end point")
        payload = reader.rest()
        return cls(source, destination & _END_POINT_MASK, payload, bool(destination & 0x80))

    def fields(self) -> dict[str, Any]:
        """Source and destination; the payload is described by the caller."""
        out = plain_fields(self)
        del out["payload"]
        return out


COMMANDS: dict[tuple[int, int], type[CcCommand]] = {
    (cls.CC, cls.COMMAND): cls
    for cls in (
        MultiChannelEndPointGet,
        MultiChannelEndPointReport,
        MultiChannelCapabilityGet,
        MultiChannelCapabilityReport,
        MultiChannelCmdEncap,
    )
}
