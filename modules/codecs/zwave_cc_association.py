"""Association (0x85, lifeline group 1), Z-Wave Plus Info (0x5E) and Device Reset Locally (0x5A).

What a Z-Wave Plus end node answers so a controller knows where to send its reports and how to
show it. Layouts: SDS13781 and zwave-js ``AssociationCC.ts`` / ``ZWavePlusCC.ts``.
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from typing import ClassVar, Self

from modules.codecs.zwave_cc import (
    CcCommand,
    CommandClassId,
    Reader,
    check_u8,
    check_u16,
)

__all__ = [
    "COMMANDS",
    "ICON_WHOLE_HOME_METER_SIMPLE",
    "LIFELINE_GROUP",
    "AssociationGet",
    "AssociationGroupingsGet",
    "AssociationGroupingsReport",
    "AssociationRemove",
    "AssociationReport",
    "AssociationSet",
    "AssociationSpecificGroupGet",
    "AssociationSpecificGroupReport",
    "DeviceResetLocallyNotification",
    "RoleType",
    "ZwavePlusInfoGet",
    "ZwavePlusInfoReport",
]

LIFELINE_GROUP = 1  # Z-Wave Plus: association group 1 receives the node's unsolicited reports
ICON_WHOLE_HOME_METER_SIMPLE = 0x1700  # ZW_classcmd.h ICON_TYPE_GENERIC_WHOLE_HOME_METER_SIMPLE


class RoleType(IntEnum):
    """Z-Wave Plus role types (ZWAVEPLUS_INFO_REPORT_ROLE_TYPE_*)."""

    CENTRAL_STATIC_CONTROLLER = 0x00
    SUB_STATIC_CONTROLLER = 0x01
    PORTABLE_CONTROLLER = 0x02
    PORTABLE_REPORTING_CONTROLLER = 0x03
    END_NODE_PORTABLE = 0x04
    END_NODE_ALWAYS_ON = 0x05
    END_NODE_SLEEPING_REPORTING = 0x06
    END_NODE_SLEEPING_LISTENING = 0x07
    NETWORK_AWARE_END_NODE = 0x08


# ------------------------------------------------------------------------------ Association 0x85


def _node_list(node_ids: tuple[int, ...]) -> bytes:
    check_u8("node id", *node_ids)
    return bytes(node_ids)


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationSet(CcCommand):
    """Association Set: add nodes to a group (group 1 is the lifeline)."""

    group: int
    node_ids: tuple[int, ...] = ()

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "ASSOCIATION_SET"

    def body(self) -> bytes:
        """Group, then node ids."""
        check_u8("group", self.group)
        return bytes((self.group,)) + _node_list(self.node_ids)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Group and node ids."""
        return cls(reader.u8("group"), tuple(reader.rest()))


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationGet(CcCommand):
    """Association Get: the members of one group."""

    group: int

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x02
    NAME: ClassVar[str] = "ASSOCIATION_GET"

    def body(self) -> bytes:
        """The group."""
        check_u8("group", self.group)
        return bytes((self.group,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The group."""
        return cls(reader.u8("group"))


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationReport(CcCommand):
    """Association Report: a group's capacity and members."""

    group: int
    max_nodes: int
    node_ids: tuple[int, ...] = ()
    reports_to_follow: int = 0

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x03
    NAME: ClassVar[str] = "ASSOCIATION_REPORT"

    def body(self) -> bytes:
        """Group, capacity, reports to follow, node ids."""
        check_u8("association report field", self.group, self.max_nodes, self.reports_to_follow)
        head = bytes((self.group, self.max_nodes, self.reports_to_follow))
        return head + _node_list(self.node_ids)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report."""
        group = reader.u8("group")
        max_nodes = reader.u8("max nodes supported")
        follow = reader.u8("reports to follow")
        return cls(group, max_nodes, tuple(reader.rest()), follow)


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationRemove(CcCommand):
    """Association Remove: group 0 means every group, no node ids means every node."""

    group: int
    node_ids: tuple[int, ...] = ()

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x04
    NAME: ClassVar[str] = "ASSOCIATION_REMOVE"

    def body(self) -> bytes:
        """Group, then node ids."""
        check_u8("group", self.group)
        return bytes((self.group,)) + _node_list(self.node_ids)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Group and node ids."""
        return cls(reader.u8("group"), tuple(reader.rest()))


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationGroupingsGet(CcCommand):
    """Association Groupings Get: how many groups the node has."""

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x05
    NAME: ClassVar[str] = "ASSOCIATION_GROUPINGS_GET"


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationGroupingsReport(CcCommand):
    """Association Groupings Report."""

    groupings: int

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x06
    NAME: ClassVar[str] = "ASSOCIATION_GROUPINGS_REPORT"

    def body(self) -> bytes:
        """The number of groups."""
        check_u8("groupings", self.groupings)
        return bytes((self.groupings,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The number of groups."""
        return cls(reader.u8("supported groupings"))


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationSpecificGroupGet(CcCommand):
    """Association Specific Group Get (V2)."""

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x0B
    NAME: ClassVar[str] = "ASSOCIATION_SPECIFIC_GROUP_GET"


@dataclasses.dataclass(frozen=True, slots=True)
class AssociationSpecificGroupReport(CcCommand):
    """Association Specific Group Report (V2); 0 when no button maps to a group."""

    group: int = 0

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x0C
    NAME: ClassVar[str] = "ASSOCIATION_SPECIFIC_GROUP_REPORT"

    def body(self) -> bytes:
        """The group."""
        check_u8("group", self.group)
        return bytes((self.group,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The group."""
        return cls(reader.u8("group"))


# ---------------------------------------------------------------------------- Z-Wave Plus 0x5E


@dataclasses.dataclass(frozen=True, slots=True)
class ZwavePlusInfoGet(CcCommand):
    """Z-Wave Plus Info Get."""

    CC: ClassVar[int] = CommandClassId.ZWAVEPLUS_INFO
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "ZWAVEPLUS_INFO_GET"


@dataclasses.dataclass(frozen=True, slots=True)
class ZwavePlusInfoReport(CcCommand):
    """Z-Wave Plus Info Report; the defaults describe an always-on whole-home meter."""

    version: int = 2
    role_type: int = RoleType.END_NODE_ALWAYS_ON
    node_type: int = 0x00  # a Z-Wave Plus node (0x02 would be a Z-Wave Plus for IP gateway)
    installer_icon: int = ICON_WHOLE_HOME_METER_SIMPLE
    user_icon: int = ICON_WHOLE_HOME_METER_SIMPLE

    CC: ClassVar[int] = CommandClassId.ZWAVEPLUS_INFO
    COMMAND: ClassVar[int] = 0x02
    NAME: ClassVar[str] = "ZWAVEPLUS_INFO_REPORT"

    def body(self) -> bytes:
        """Version, role, node type, two 16-bit icons."""
        check_u8("Z-Wave Plus field", self.version, self.role_type, self.node_type)
        check_u16("installer icon", self.installer_icon)
        check_u16("user icon", self.user_icon)
        return (
            bytes((self.version, self.role_type, self.node_type))
            + self.installer_icon.to_bytes(2, "big")
            + self.user_icon.to_bytes(2, "big")
        )

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report."""
        return cls(
            reader.u8("Z-Wave Plus version"),
            reader.u8("role type"),
            reader.u8("node type"),
            reader.u16("installer icon"),
            reader.u16("user icon"),
        )


# ----------------------------------------------------------------------- Device Reset Locally 0x5A


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceResetLocallyNotification(CcCommand):
    """Sent to the lifeline before a node resets itself to factory defaults."""

    CC: ClassVar[int] = CommandClassId.DEVICE_RESET_LOCALLY
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "DEVICE_RESET_LOCALLY_NOTIFICATION"


COMMANDS: dict[tuple[int, int], type[CcCommand]] = {
    (cls.CC, cls.COMMAND): cls
    for cls in (
        AssociationSet,
        AssociationGet,
        AssociationReport,
        AssociationRemove,
        AssociationGroupingsGet,
        AssociationGroupingsReport,
        AssociationSpecificGroupGet,
        AssociationSpecificGroupReport,
        ZwavePlusInfoGet,
        ZwavePlusInfoReport,
        DeviceResetLocallyNotification,
    )
}
