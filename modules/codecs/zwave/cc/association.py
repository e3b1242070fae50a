"""Association, Association Group Info, Z-Wave Plus Info and Device Reset Locally CCs.

What a Z-Wave Plus end node answers so a controller knows where to send its reports (the
lifeline, association group 1) and how to show the node. Layouts: SDS13781 and zwave-js
``AssociationCC.ts``, ``AssociationGroupInfoCC.ts`` and ``ZWavePlusCC.ts``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, Self

import msgspec

from modules.codecs.zwave.cc.base import (
    EXTENDED_CC_FIRST,
    ByteCommand,
    ByteLayout,
    CcCommand,
    CommandClassId,
    Reader,
    check_u8,
    check_u16,
)

__all__ = [
    "AGI_PROFILE_LIFELINE",
    "COMMANDS",
    "ICON_WHOLE_HOME_METER_SIMPLE",
    "LIFELINE_GROUP",
    "AssociationGet",
    "AssociationGroupCommandListGet",
    "AssociationGroupCommandListReport",
    "AssociationGroupInfoGet",
    "AssociationGroupInfoReport",
    "AssociationGroupNameGet",
    "AssociationGroupNameReport",
    "AssociationGroupingsGet",
    "AssociationGroupingsReport",
    "AssociationRemove",
    "AssociationReport",
    "AssociationSet",
    "AssociationSpecificGroupGet",
    "AssociationSpecificGroupReport",
    "DeviceResetLocallyNotification",
    "GroupInfo",
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


class _GroupMembers(CcCommand, frozen=True):
    """A command whose body is a group and the node ids it adds or removes."""

    group: int
    node_ids: tuple[int, ...] = ()

    def body(self) -> bytes:
        """Group, then node ids."""
        check_u8("group", self.group)
        return bytes((self.group,)) + _node_list(self.node_ids)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Group and node ids."""
        return cls(reader.u8("group"), tuple(reader.rest()))


class AssociationSet(_GroupMembers, frozen=True):
    """Association Set: add nodes to a group (group 1 is the lifeline)."""

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "ASSOCIATION_SET"


class AssociationGet(ByteCommand, frozen=True):
    """Association Get: the members of one group."""

    group: int

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x02
    NAME: ClassVar[str] = "ASSOCIATION_GET"
    LAYOUT: ClassVar[ByteLayout] = (("group", "group"),)
    CHECK: ClassVar[str] = "group"


class AssociationReport(CcCommand, frozen=True):
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


class AssociationRemove(_GroupMembers, frozen=True):
    """Association Remove: group 0 means every group, no node ids means every node."""

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x04
    NAME: ClassVar[str] = "ASSOCIATION_REMOVE"


class AssociationGroupingsGet(CcCommand, frozen=True):
    """Association Groupings Get: how many groups the node has."""

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x05
    NAME: ClassVar[str] = "ASSOCIATION_GROUPINGS_GET"


class AssociationGroupingsReport(ByteCommand, frozen=True):
    """Association Groupings Report."""

    groupings: int

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x06
    NAME: ClassVar[str] = "ASSOCIATION_GROUPINGS_REPORT"
    LAYOUT: ClassVar[ByteLayout] = (("groupings", "supported groupings"),)
    CHECK: ClassVar[str] = "groupings"


class AssociationSpecificGroupGet(CcCommand, frozen=True):
    """Association Specific Group Get (V2)."""

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x0B
    NAME: ClassVar[str] = "ASSOCIATION_SPECIFIC_GROUP_GET"


class AssociationSpecificGroupReport(ByteCommand, frozen=True):
    """Association Specific Group Report (V2); 0 when no button maps to a group."""

    group: int = 0

    CC: ClassVar[int] = CommandClassId.ASSOCIATION
    COMMAND: ClassVar[int] = 0x0C
    NAME: ClassVar[str] = "ASSOCIATION_SPECIFIC_GROUP_REPORT"
    LAYOUT: ClassVar[ByteLayout] = (("group", "group"),)
    CHECK: ClassVar[str] = "group"


# ---------------------------------------------------------------------------- Z-Wave Plus 0x5E


class ZwavePlusInfoGet(CcCommand, frozen=True):
    """Z-Wave Plus Info Get."""

    CC: ClassVar[int] = CommandClassId.ZWAVEPLUS_INFO
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "ZWAVEPLUS_INFO_GET"


class ZwavePlusInfoReport(CcCommand, frozen=True):
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


class DeviceResetLocallyNotification(CcCommand, frozen=True):
    """Sent to the lifeline before a node resets itself to factory defaults."""

    CC: ClassVar[int] = CommandClassId.DEVICE_RESET_LOCALLY
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "DEVICE_RESET_LOCALLY_NOTIFICATION"


# ------------------------------------------------------------------ Association Group Info 0x59

AGI_PROFILE_LIFELINE = 0x0001  # profile "General: Lifeline"
_GROUP_INFO_BYTES = 7  # group, mode, profile (2), reserved, event code (2)


class AssociationGroupNameGet(ByteCommand, frozen=True):
    """Association Group Name Get."""

    group: int

    CC: ClassVar[int] = CommandClassId.ASSOCIATION_GRP_INFO
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "ASSOCIATION_GROUP_NAME_GET"
    LAYOUT: ClassVar[ByteLayout] = (("group", "group"),)
    CHECK: ClassVar[str] = "group"


class AssociationGroupNameReport(CcCommand, frozen=True):
    """Association Group Name Report: the group's UTF-8 name ("Lifeline" for group 1)."""

    group: int
    name: str

    CC: ClassVar[int] = CommandClassId.ASSOCIATION_GRP_INFO
    COMMAND: ClassVar[int] = 0x02
    NAME: ClassVar[str] = "ASSOCIATION_GROUP_NAME_REPORT"

    def body(self) -> bytes:
        """Group, name length, name."""
        name = self.name.encode("utf-8")
        check_u8("group name field", self.group, len(name))
        return bytes((self.group, len(name))) + name

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report."""
        group = reader.u8("group")
        name = reader.take(reader.u8("name length"), "group name")
        return cls(group, name.decode("utf-8", errors="replace"))


class AssociationGroupInfoGet(CcCommand, frozen=True):
    """Association Group Info Get: one group, or every group in list mode."""

    group: int = 0
    list_mode: bool = False
    refresh_cache: bool = False

    CC: ClassVar[int] = CommandClassId.ASSOCIATION_GRP_INFO
    COMMAND: ClassVar[int] = 0x03
    NAME: ClassVar[str] = "ASSOCIATION_GROUP_INFO_GET"

    def body(self) -> bytes:
        """Refresh-cache and list-mode bits, then the group."""
        check_u8("group", self.group)
        return bytes((self.refresh_cache << 7 | self.list_mode << 6, self.group))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The request."""
        flags = reader.u8("options")
        return cls(reader.u8("group"), bool(flags & 0x40), bool(flags & 0x80))


class GroupInfo(msgspec.Struct, frozen=True):
    """One group's profile in an Association Group Info Report."""

    group: int
    profile: int = AGI_PROFILE_LIFELINE
    mode: int = 0
    event_code: int = 0


class AssociationGroupInfoReport(CcCommand, frozen=True):
    """Association Group Info Report: profiles of one or more groups."""

    groups: tuple[GroupInfo, ...]
    list_mode: bool = False
    dynamic: bool = False

    CC: ClassVar[int] = CommandClassId.ASSOCIATION_GRP_INFO
    COMMAND: ClassVar[int] = 0x04
    NAME: ClassVar[str] = "ASSOCIATION_GROUP_INFO_REPORT"

    def body(self) -> bytes:
        """Flags and group count, then 7 bytes per group."""
        if len(self.groups) > 0x3F:
            raise ValueError("an info report lists at most 63 groups")
        out = bytearray((self.list_mode << 7 | self.dynamic << 6 | len(self.groups),))
        for info in self.groups:
            check_u8("group info field", info.group, info.mode)
            check_u16("profile", info.profile)
            check_u16("event code", info.event_code)
            out += bytes((info.group, info.mode)) + info.profile.to_bytes(2, "big") + b"\x00"
            out += info.event_code.to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report."""
        flags = reader.u8("group count")
        groups = []
        for _ in range(flags & 0x3F):
            group, mode, profile_hi, profile_lo, _reserved, event_hi, event_lo = reader.take(
                _GROUP_INFO_BYTES, "group info"
            )
            groups.append(
                GroupInfo(group, profile_hi << 8 | profile_lo, mode, event_hi << 8 | event_lo)
            )
        return cls(tuple(groups), bool(flags & 0x80), bool(flags & 0x40))


class AssociationGroupCommandListGet(CcCommand, frozen=True):
    """Association Group Command List Get."""

    group: int
    allow_cache: bool = False

    CC: ClassVar[int] = CommandClassId.ASSOCIATION_GRP_INFO
    COMMAND: ClassVar[int] = 0x05
    NAME: ClassVar[str] = "ASSOCIATION_GROUP_COMMAND_LIST_GET"

    def body(self) -> bytes:
        """Allow-cache bit, then the group."""
        check_u8("group", self.group)
        return bytes((self.allow_cache << 7, self.group))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The request."""
        flags = reader.u8("options")
        return cls(reader.u8("group"), bool(flags & 0x80))


class AssociationGroupCommandListReport(CcCommand, frozen=True):
    """Association Group Command List Report: the (class, command) pairs a group receives."""

    group: int
    commands: tuple[tuple[int, int], ...]

    CC: ClassVar[int] = CommandClassId.ASSOCIATION_GRP_INFO
    COMMAND: ClassVar[int] = 0x06
    NAME: ClassVar[str] = "ASSOCIATION_GROUP_COMMAND_LIST_REPORT"

    def body(self) -> bytes:
        """Group, list length, then class and command ids."""
        listed = bytearray()
        for cc, command in self.commands:
            check_u8("command", command)
            if not 0 <= cc < EXTENDED_CC_FIRST and not EXTENDED_CC_FIRST << 8 <= cc <= 0xFFFF:
                raise ValueError(f"not a command class id: {cc:#x}")
            listed += cc.to_bytes(2 if cc > 0xFF else 1, "big") + bytes((command,))
        check_u8("command list field", self.group, len(listed))
        return bytes((self.group, len(listed))) + listed

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report."""
        group = reader.u8("group")
        at = reader.offset + 1
        listed = Reader(reader.take(reader.u8("command list length"), "command list"), base=at)
        commands = []
        while listed.remaining:
            cc = listed.u8("command class")
            if cc >= EXTENDED_CC_FIRST:
                cc = cc << 8 | listed.u8("extended command class")
            commands.append((cc, listed.u8("command")))
        return cls(group, tuple(commands))


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
        AssociationGroupNameGet,
        AssociationGroupNameReport,
        AssociationGroupInfoGet,
        AssociationGroupInfoReport,
        AssociationGroupCommandListGet,
        AssociationGroupCommandListReport,
    )
}
