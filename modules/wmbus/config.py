"""``[[modules]] type = "wmbus"``: one receiver, the meters it may hear, and their keys."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import msgspec

from gateway.config import ModuleConfig, read_secret
from gateway.errors import ConfigError
from modules.codecs.crypto import AES_KEY_BYTES
from modules.wmbus.pipeline import MeterEntry
from modules.wmbus.receivers import check_modes

__all__ = ["WmbusConfig", "WmbusMeterConfig", "meter_entries", "parse_key"]

ReceiverType = Literal["im871a", "im170a", "iu891a", "amb8465", "amb8665", "cul", "rtlwmbus", "hex"]
LinkMode = Literal["C1", "T1", "S1", "N1a", "N1b", "N1c", "N1d", "N1e", "N1f"]

_ID = re.compile(r"^[0-9A-Fa-f]{8}$")
_MANUFACTURER = re.compile(r"^[A-Z]{3}$")
# Repeaters re-send a telegram within a second or two; meters send a new one (new access
# number) every 16 s or more, so identical bytes inside this window are the same telegram.
DUPLICATE_WINDOW_S = 10.0
# Nothing heard for this long: reopen the device and set the link mode again (a stick that
# lost its configuration, a hung rtl_sdr). 0 turns it off.
SILENCE_TIMEOUT_S = 900.0


def parse_key(text: str, *, what: str = "key") -> bytes:
    """An AES-128 key from 32 hex digits (spaces allowed); ConfigError otherwise."""
    compact = text.replace(" ", "").replace(":", "")
    try:
        key = bytes.fromhex(compact)
    except ValueError:
        raise ConfigError(f"{what} is not hex") from None
    if len(key) != AES_KEY_BYTES:
        raise ConfigError(f"{what} has {len(key) * 2} hex digits, an AES-128 key has 32")
    return key


class WmbusMeterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[modules.meters]]``: one wM-Bus meter by its radio address."""

    id: str  # the 8-digit address printed on the meter (its secondary address)
    meter: str | None = None  # gateway meter its values go to; default: the module's `meter`
    manufacturer: str | None = None  # e.g. "KAM"; only telegrams from this manufacturer
    version: int | None = None
    device_type: int | None = msgspec.field(default=None, name="type")
    key: str | None = None  # 32 hex digits
    key_file: str | None = None  # a file holding the 32 hex digits
    kem_file: str | None = None  # Kamstrup .kem (or .zip) holding this meter's key
    kem_password: str | None = None
    kem_password_file: str | None = None

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"id {self.id!r} is not 8 digits (the meter's wM-Bus address)")
        if self.manufacturer is not None and not _MANUFACTURER.match(self.manufacturer):
            raise ValueError(f"manufacturer {self.manufacturer!r} is not three capitals")
        for name, value in (("version", self.version), ("type", self.device_type)):
            if value is not None and not 0 <= value <= 0xFF:
                raise ValueError(f"{name} is one byte (0..255)")
        sources = [s for s in (self.key, self.key_file, self.kem_file) if s is not None]
        if len(sources) > 1:
            raise ValueError("give one of key, key_file and kem_file")
        if self.kem_file is not None and self.kem_password is None and not self.kem_password_file:
            raise ValueError("kem_file needs kem_password or kem_password_file")
        if self.key is not None:
            try:
                parse_key(self.key)
            except ConfigError as err:
                raise ValueError(str(err)) from None

    @property
    def address(self) -> str:
        """The id as the codec prints it (upper case)."""
        return self.id.upper()

    def aes_key(self) -> bytes | None:
        """The meter's key from wherever it is kept (reads files; ConfigError if unusable)."""
        if self.key is not None:
            return parse_key(self.key)
        if self.key_file is not None:
            return parse_key(read_secret(self.key_file, what="key_file"), what="key_file")
        if self.kem_file is not None:
            password = self.kem_password
            if password is None:
                assert self.kem_password_file is not None
                password = read_secret(self.kem_password_file, what="kem_password_file")
            # Imported here: the .kem reader (XML, ZIP) is for this one setting only.
            from modules.wmbus.kem import kem_keys  # noqa: PLC0415

            keys = kem_keys(self.kem_file, password)
            key = keys.get(self.id) or keys.get(self.id.lstrip("0"))
            if key is None:
                raise ConfigError(
                    f"{self.kem_file} has no key for meter {self.id} "
                    f"(it has {', '.join(sorted(keys)) or 'none'})"
                )
            return parse_key(key, what=f"the key of {self.id} in {self.kem_file}")
        return None


def meter_entries(
    meters: Sequence[WmbusMeterConfig], default_meter: str | None
) -> list[MeterEntry]:
    """Meters with their keys read (ConfigError names the entry). An entry without ``meter``
    feeds ``default_meter``, or, without that either, the gateway meter named like its address
    (a decode worker's samples go to <base>/samples/<meter>)."""
    entries = []
    for index, meter in enumerate(meters):
        try:
            key = meter.aes_key()
        except ConfigError as err:
            raise ConfigError(str(err), path=f"meters[{index}]") from None
        entries.append(
            MeterEntry(
                meter.address,
                meter.meter or default_meter or meter.address,
                key,
                meter.manufacturer,
                meter.version,
                meter.device_type,
            )
        )
    return entries


class WmbusConfig(ModuleConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "wmbus"``: a receiver named explicitly (no probing)."""

    device: str  # /dev/ttyUSB0, socket://host:port, tcp://host:port, stdin or exec:COMMAND
    receiver: ReceiverType
    modes: tuple[LinkMode, ...] = ("C1", "T1")
    baudrate: int | None = None  # default: the receiver's own
    meters: tuple[WmbusMeterConfig, ...] = ()
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    silence_timeout_s: float = SILENCE_TIMEOUT_S

    def __post_init__(self) -> None:
        try:
            check_modes(self.receiver, self.modes)
        except ConfigError as err:
            raise ValueError(f"modes: {err}") from None
        seen: set[tuple[str, str | None]] = set()
        for entry in self.meters:
            if entry.meter is None and self.meter is None:
                raise ValueError(
                    f"meter {entry.id}: say which gateway meter it feeds (`meter` on the "
                    "meter or on the module)"
                )
            if (entry.address, entry.manufacturer) in seen:
                raise ValueError(f"meter {entry.id} is listed twice")
            seen.add((entry.address, entry.manufacturer))
        if self.duplicate_window_s < 0 or self.silence_timeout_s < 0:
            raise ValueError("durations are not negative")

    def entries(self) -> list[MeterEntry]:
        """The configured meters with their keys read (ConfigError names the meter)."""
        return meter_entries(self.meters, self.meter)

    def meters_fed(self) -> tuple[str, ...]:
        """Gateway meters this module feeds (checked against [[meters]])."""
        own = (e.meter for e in self.meters if e.meter is not None)
        return tuple(dict.fromkeys((*super().meters_fed(), *own)))
