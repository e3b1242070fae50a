"""wM-Bus receivers, sans-IO: bytes from a dongle in, telegrams (with RSSI) and replies out.

Each receiver is named explicitly in the config (no probing: probing upsets ``/dev/ttyAMA0``
and other people's devices). A receiver knows its line speed, the commands that put it into
the wanted link modes (``setup``), and how to cut its byte stream into telegrams (``feed``).
The device side of each protocol (``*Device`` classes) is here too, for the emulator and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol

import msgspec

from gateway.errors import ConfigError, FatalAdapterError

__all__ = [
    "LINK_MODES",
    "RECEIVERS",
    "Device",
    "Heard",
    "Receiver",
    "Rejected",
    "Reply",
    "TwoRoundSetup",
    "check_link_mode_status",
    "check_modes",
    "make_device",
    "make_receiver",
]

DllCrcs = Literal["auto", "A", "B", "none"]

LINK_MODES = ("C1", "T1", "S1", "N1a", "N1b", "N1c", "N1d", "N1e", "N1f")

# What each receiver can listen to at once (EN 13757-4 modes; N modes at 169 MHz only).
_ALLOWED: dict[str, tuple[frozenset[str], ...]] = {
    "im871a": tuple(frozenset(m) for m in (["C1"], ["T1"], ["S1"], ["C1", "T1"])),
    "im170a": tuple(frozenset([m]) for m in ("N1a", "N1b", "N1c", "N1d", "N1e", "N1f")),
    "iu891a": tuple(frozenset(m) for m in (["C1"], ["T1"], ["S1"], ["C1", "T1"])),
    "amb8465": tuple(frozenset(m) for m in (["C1"], ["T1"], ["S1"], ["C1", "T1"])),
    "amb8665": tuple(frozenset(m) for m in (["C1"], ["T1"], ["S1"], ["C1", "T1"])),
    # culfw's C mode ("brc") hears C1 and T1 together; "brt" T1 only.
    "cul": tuple(frozenset(m) for m in (["C1"], ["T1"], ["S1"], ["C1", "T1"])),
}
RECEIVERS = ("im871a", "im170a", "iu891a", "amb8465", "amb8665", "cul", "rtlwmbus", "hex")


class Heard(msgspec.Struct, frozen=True):
    """One telegram as the receiver delivered it (L field first)."""

    telegram: bytes
    dll_crcs: DllCrcs = "auto"  # what the receiver leaves of the DLL CRCs
    rssi_dbm: float | None = None
    lqi: int | None = None
    mode: str | None = None  # link mode, where the receiver says


class Reply(msgspec.Struct, frozen=True):
    """A receiver's answer to a command."""

    name: str
    ok: bool = True
    detail: str = ""
    payload: bytes = b""


class Rejected(msgspec.Struct, frozen=True):
    """Bytes that looked like a frame but were not a good one (bad CRC, bad hex, ...)."""

    reason: str
    raw: bytes = b""


Item = Heard | Reply | Rejected


class Receiver(Protocol):
    """The host side of one receiver type."""

    kind: str
    baudrate: int
    device_info: str  # what the device said about itself during setup

    def setup(self, reply: Reply | None) -> bytes | None:
        """The next command to send (``None`` first, then each reply), or None when set up.

        Raises FatalAdapterError when a reply says the device cannot do what was asked.
        """
        ...

    def feed(self, data: bytes) -> list[Item]:
        """Bytes from the device in; whatever they complete out."""
        ...


class Device(Protocol):
    """The device side of one receiver type (emulator and tests)."""

    def answer(self, data: bytes) -> bytes:
        """Bytes from the host in; the device's replies out."""
        ...

    def indication(self, telegram: bytes, rssi_dbm: float) -> bytes:
        """A received telegram (L field first, no DLL CRCs) as the device reports it."""
        ...


class TwoRoundSetup:
    """``setup`` for a stick set up in two rounds: a request and its answer, twice."""

    FIRST_ANSWER: ClassVar[str]  # the Reply name that ends the first round
    SECOND_ANSWER: ClassVar[str]
    _round = 0

    def setup(self, reply: Reply | None) -> bytes | None:
        """The first request, the second once the first answer came, None after the second."""
        if reply is None:
            self._round = 1
            return self._first_request()
        if self._round == 1 and reply.name == self.FIRST_ANSWER:
            request = self._second_request(reply)
            self._round = 2
            return request
        if self._round == 2 and reply.name == self.SECOND_ANSWER:
            self._check_second_answer(reply)
            self._round = 3
            return None
        return b""  # not the answer we wait for

    def _first_request(self) -> bytes:
        raise NotImplementedError

    def _second_request(self, first_answer: Reply) -> bytes:
        raise NotImplementedError

    def _check_second_answer(self, answer: Reply) -> None:
        raise NotImplementedError


def check_link_mode_status(kind: str, link_mode: int, answer: Reply) -> None:
    """FatalAdapterError unless the answer's status byte (when there is one) is 0."""
    if answer.payload[:1] not in (b"", b"\x00"):
        raise FatalAdapterError(
            f"{kind} refused link mode 0x{link_mode:02X} (status 0x{answer.payload[0]:02X})"
        )


def check_modes(receiver: str, modes: Sequence[str]) -> None:
    """Refuse link modes the receiver cannot listen to at once (ConfigError)."""
    wanted = frozenset(modes)
    unknown = wanted - set(LINK_MODES)
    if unknown:
        raise ConfigError(
            f"unknown link mode {sorted(unknown)[0]!r} (known: {', '.join(LINK_MODES)})"
        )
    allowed = _ALLOWED.get(receiver)
    if allowed is None:
        return  # software receivers hear whatever their source gives them
    if wanted not in allowed:
        choices = " or ".join("+".join(sorted(m)) for m in allowed)
        raise ConfigError(f"{receiver} cannot listen to {'+'.join(sorted(wanted))}: use {choices}")


def make_receiver(kind: str, modes: Sequence[str]) -> Receiver:
    """The host side of a receiver type, set up for these link modes."""
    # Only the configured type's module is imported: a gateway holds one or two of the four
    # framings in memory, not all of them.
    match kind:
        case "im871a" | "im170a":
            from modules.wmbus.receivers import imst  # noqa: PLC0415

            return imst.Im871a(modes, kind=kind)
        case "iu891a":
            from modules.wmbus.receivers import imst  # noqa: PLC0415

            return imst.Iu891a(modes)
        case "amb8465" | "amb8665":
            from modules.wmbus.receivers import amber  # noqa: PLC0415

            return amber.Amber(modes, kind=kind)
        case "cul":
            from modules.wmbus.receivers import cul  # noqa: PLC0415

            return cul.Cul(modes)
        case "rtlwmbus":
            from modules.wmbus.receivers import lines  # noqa: PLC0415

            return lines.RtlWmbus()
        case "hex":
            from modules.wmbus.receivers import lines  # noqa: PLC0415

            return lines.HexLines()
    raise ConfigError(f"unknown receiver {kind!r} (known: {', '.join(RECEIVERS)})")


def make_device(kind: str) -> Device:
    """The device side of a receiver type, for the emulator."""
    from modules.wmbus.receivers import amber, cul, imst, lines  # noqa: PLC0415

    match kind:
        case "im871a" | "im170a":
            return imst.Im871aDevice()
        case "iu891a":
            return imst.Iu891aDevice()
        case "amb8465" | "amb8665":
            return amber.AmberDevice()
        case "cul":
            return cul.CulDevice()
        case "rtlwmbus":
            return lines.RtlWmbusDevice()
        case "hex":
            return lines.HexDevice()
    raise ConfigError(f"unknown receiver {kind!r} (known: {', '.join(RECEIVERS)})")
