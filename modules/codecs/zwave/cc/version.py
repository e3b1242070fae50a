"""Version (0x86, V1..V3) and Manufacturer Specific (0x72, V1..V2): how a node identifies itself.

Layouts: SDS13781 and zwave-js ``VersionCC.ts`` / ``ManufacturerSpecificCC.ts``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from modules.codecs.zwave.cc.base import (
    ByteCommand,
    ByteLayout,
    CcCommand,
    CommandClassId,
    Reader,
    cc_name,
    check_u8,
    check_u16,
    plain_fields,
)

__all__ = [
    "COMMANDS",
    "DeviceSpecificGet",
    "DeviceSpecificReport",
    "ManufacturerSpecificGet",
    "ManufacturerSpecificReport",
    "Triple",
    "VersionCapabilitiesGet",
    "VersionCapabilitiesReport",
    "VersionCommandClassGet",
    "VersionCommandClassReport",
    "VersionGet",
    "VersionReport",
    "VersionZWaveSoftwareGet",
    "VersionZWaveSoftwareReport",
]

# ---------------------------------------------------------------------------------- Version 0x86


class VersionGet(CcCommand, frozen=True):
    """Version Get: asks for the library, protocol and firmware versions."""

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x11
    NAME: ClassVar[str] = "VERSION_GET"


class VersionReport(CcCommand, frozen=True):
    """Version Report; ``hardware_version`` None is the V1 layout without firmware targets."""

    library_type: int
    protocol_version: int
    protocol_sub_version: int
    application_version: int
    application_sub_version: int
    hardware_version: int | None = None
    firmware_targets: tuple[tuple[int, int], ...] = ()  # firmware 1..n (version, sub version)

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x12
    NAME: ClassVar[str] = "VERSION_REPORT"

    def body(self) -> bytes:
        """V1 five bytes, V2+ adds hardware version and the firmware targets."""
        head = (
            self.library_type,
            self.protocol_version,
            self.protocol_sub_version,
            self.application_version,
            self.application_sub_version,
        )
        check_u8("version field", *head)
        if self.hardware_version is None:
            if self.firmware_targets:
                raise ValueError("firmware targets need the V2 layout (a hardware version)")
            return bytes(head)
        check_u8("hardware version", self.hardware_version, len(self.firmware_targets))
        targets = [byte for target in self.firmware_targets for byte in target]
        check_u8("firmware target version", *targets)
        return bytes((*head, self.hardware_version, len(self.firmware_targets), *targets))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report, V1 or V2+ by its length."""
        library, protocol, protocol_sub, application, application_sub = reader.take(5, "versions")
        head = (library, protocol, protocol_sub, application, application_sub)
        if reader.remaining < 2:
            return cls(*head)
        hardware = reader.u8("hardware version")
        count = reader.u8("number of firmware targets")
        targets = tuple(
            (reader.u8("firmware version"), reader.u8("firmware sub version")) for _ in range(count)
        )
        return cls(*head, hardware_version=hardware, firmware_targets=targets)


class VersionCommandClassGet(ByteCommand, frozen=True):
    """Version Command Class Get: which version of ``requested_cc`` the node implements."""

    requested_cc: int

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x13
    NAME: ClassVar[str] = "VERSION_COMMAND_CLASS_GET"
    LAYOUT: ClassVar[ByteLayout] = (("requested_cc", "requested command class"),)
    CHECK: ClassVar[str] = "requested command class"

    def fields(self) -> dict[str, Any]:
        """Adds the class name."""
        return {**plain_fields(self), "requested_cc_name": cc_name(self.requested_cc)}


class VersionCommandClassReport(ByteCommand, frozen=True):
    """Version Command Class Report; version 0 means the class is not supported."""

    requested_cc: int
    version: int

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x14
    NAME: ClassVar[str] = "VERSION_COMMAND_CLASS_REPORT"
    LAYOUT: ClassVar[ByteLayout] = (
        ("requested_cc", "requested command class"),
        ("version", "command class version"),
    )
    CHECK: ClassVar[str] = "command class version"

    def fields(self) -> dict[str, Any]:
        """Adds the class name."""
        return {**plain_fields(self), "requested_cc_name": cc_name(self.requested_cc)}


class VersionCapabilitiesGet(CcCommand, frozen=True):
    """Version Capabilities Get (V3)."""

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x15
    NAME: ClassVar[str] = "VERSION_CAPABILITIES_GET"


class VersionCapabilitiesReport(CcCommand, frozen=True):
    """Version Capabilities Report (V3): which Version commands the node answers."""

    version: bool = True
    command_class: bool = True
    zwave_software: bool = False

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x16
    NAME: ClassVar[str] = "VERSION_CAPABILITIES_REPORT"

    def body(self) -> bytes:
        """Bit 0 V, bit 1 CC, bit 2 Z-Wave Software."""
        return bytes((self.version | self.command_class << 1 | self.zwave_software << 2,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The capability bits."""
        bits = reader.u8("capabilities")
        return cls(bool(bits & 0x01), bool(bits & 0x02), bool(bits & 0x04))


class VersionZWaveSoftwareGet(CcCommand, frozen=True):
    """Version Z-Wave Software Get (V3)."""

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x17
    NAME: ClassVar[str] = "VERSION_ZWAVE_SOFTWARE_GET"


Triple = tuple[int, int, int]


class VersionZWaveSoftwareReport(CcCommand, frozen=True):
    """Version Z-Wave Software Report (V3): (major, minor, patch) versions and build numbers."""

    sdk_version: Triple
    framework_api_version: Triple
    framework_build: int
    host_interface_version: Triple
    host_interface_build: int
    protocol_version: Triple
    protocol_build: int
    application_version: Triple
    application_build: int

    CC: ClassVar[int] = CommandClassId.VERSION
    COMMAND: ClassVar[int] = 0x18
    NAME: ClassVar[str] = "VERSION_ZWAVE_SOFTWARE_REPORT"

    def body(self) -> bytes:
        """Versions as 3 bytes, builds as 16-bit big-endian."""
        out = bytearray(bytes(self.sdk_version))
        pairs = (
            (self.framework_api_version, self.framework_build),
            (self.host_interface_version, self.host_interface_build),
            (self.protocol_version, self.protocol_build),
            (self.application_version, self.application_build),
        )
        for version, build in pairs:
            check_u8("version", *version)
            check_u16("build number", build)
            out += bytes(version) + build.to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The 23-byte report."""

        def triple(what: str) -> Triple:
            major, minor, patch = reader.take(3, what)
            return major, minor, patch

        return cls(
            triple("SDK version"),
            triple("framework API version"),
            reader.u16("framework build"),
            triple("host interface version"),
            reader.u16("host interface build"),
            triple("protocol version"),
            reader.u16("protocol build"),
            triple("application version"),
            reader.u16("application build"),
        )


# ---------------------------------------------------------------------- Manufacturer Specific 0x72


class ManufacturerSpecificGet(CcCommand, frozen=True):
    """Manufacturer Specific Get."""

    CC: ClassVar[int] = CommandClassId.MANUFACTURER_SPECIFIC
    COMMAND: ClassVar[int] = 0x04
    NAME: ClassVar[str] = "MANUFACTURER_SPECIFIC_GET"


class ManufacturerSpecificReport(CcCommand, frozen=True):
    """Manufacturer Specific Report: three 16-bit ids."""

    manufacturer_id: int
    product_type_id: int
    product_id: int

    CC: ClassVar[int] = CommandClassId.MANUFACTURER_SPECIFIC
    COMMAND: ClassVar[int] = 0x05
    NAME: ClassVar[str] = "MANUFACTURER_SPECIFIC_REPORT"

    def body(self) -> bytes:
        """Manufacturer, product type and product ids, big-endian."""
        ids = (self.manufacturer_id, self.product_type_id, self.product_id)
        for value in ids:
            check_u16("manufacturer specific id", value)
        return b"".join(value.to_bytes(2, "big") for value in ids)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The three ids."""
        return cls(reader.u16("manufacturer id"), reader.u16("product type"), reader.u16("product"))


class DeviceSpecificGet(CcCommand, frozen=True):
    """Device Specific Get (V2): 0 factory default, 1 serial number, 2 pseudo random."""

    device_id_type: int = 0

    CC: ClassVar[int] = CommandClassId.MANUFACTURER_SPECIFIC
    COMMAND: ClassVar[int] = 0x06
    NAME: ClassVar[str] = "DEVICE_SPECIFIC_GET"

    def body(self) -> bytes:
        """The id type in bits 0-2."""
        if not 0 <= self.device_id_type <= 7:
            raise ValueError("device id type is 3 bits")
        return bytes((self.device_id_type,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The id type."""
        return cls(reader.u8("device id type") & 0x07)


class DeviceSpecificReport(CcCommand, frozen=True):
    """Device Specific Report (V2): data format 0 is UTF-8 text, 1 binary."""

    device_id_type: int
    data_format: int
    data: bytes

    CC: ClassVar[int] = CommandClassId.MANUFACTURER_SPECIFIC
    COMMAND: ClassVar[int] = 0x07
    NAME: ClassVar[str] = "DEVICE_SPECIFIC_REPORT"

    def body(self) -> bytes:
        """Type, format and length bits, then the id."""
        if not 0 <= self.device_id_type <= 7 or not 0 <= self.data_format <= 7:
            raise ValueError("device id type and data format are 3 bits each")
        if len(self.data) > 0x1F:
            raise ValueError("a device id holds at most 31 bytes")
        return bytes((self.device_id_type, self.data_format << 5 | len(self.data))) + self.data

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The id and its format."""
        id_type = reader.u8("device id type") & 0x07
        layout = reader.u8("device id format")
        return cls(id_type, layout >> 5, reader.take(layout & 0x1F, "device id"))

    def fields(self) -> dict[str, Any]:
        """Adds the id as text when it is UTF-8."""
        out = plain_fields(self)
        if self.data_format == 0:
            out["text"] = self.data.decode("utf-8", errors="replace")
        return out


COMMANDS: dict[tuple[int, int], type[CcCommand]] = {
    (cls.CC, cls.COMMAND): cls
    for cls in (
        VersionGet,
        VersionReport,
        VersionCommandClassGet,
        VersionCommandClassReport,
        VersionCapabilitiesGet,
        VersionCapabilitiesReport,
        VersionZWaveSoftwareGet,
        VersionZWaveSoftwareReport,
        ManufacturerSpecificGet,
        ManufacturerSpecificReport,
        DeviceSpecificGet,
        DeviceSpecificReport,
    )
}
