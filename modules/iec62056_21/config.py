"""``[modules.iec]``: the IEC 62056-21 readout options (sign-on address, baud switching)."""

from __future__ import annotations

import msgspec

from modules.codecs.iec62056_21.messages import MODE_C_BAUD

__all__ = ["IecOptions"]


class IecOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the IEC 62056-21 readout session."""

    address: str = ""  # sign-on device address; empty asks whichever meter is on the line
    baud_switch: bool = True  # mode C: move to the meter's speed after the identification
    max_baudrate: int = 9600  # never ask for more (long IR cables, cheap heads)

    def __post_init__(self) -> None:
        if len(self.address) > 32 or not all(ch.isalnum() or ch == " " for ch in self.address):
            raise ValueError(
                "iec.address: 0 to 32 letters, digits or spaces (IEC 62056-21 request message)"
            )
        if self.max_baudrate not in MODE_C_BAUD.values():
            speeds = ", ".join(str(b) for b in sorted(MODE_C_BAUD.values()))
            raise ValueError(f"iec.max_baudrate must be one of {speeds}")
