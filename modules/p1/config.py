"""``[[modules]] type = "p1"``: a DSMR P1 port, or a HAN port pushing DLMS."""

from __future__ import annotations

from typing import Literal

from gateway.config import ModuleConfig, read_secret
from gateway.transport import SerialSettings

__all__ = ["P1Config", "parse_key"]

_KEY_HEX_DIGITS = (32, 64)  # AES-128 (suites 0/1) or AES-256 (suite 2)


def parse_key(text: str, what: str) -> bytes:
    """A hex key (spaces and colons allowed) as bytes; ValueError naming ``what`` if it is not."""
    compact = "".join(text.replace(":", " ").split())
    try:
        key = bytes.fromhex(compact)
    except ValueError:
        raise ValueError(f"{what}: not hexadecimal") from None
    if len(compact) not in _KEY_HEX_DIGITS:
        raise ValueError(f"{what}: {len(compact)} hex digits; an AES key has 32 (or 64)")
    return key


class P1Config(ModuleConfig, frozen=True, kw_only=True):
    """A P1 reader: DSMR telegrams (plain or smarty-encrypted) or DLMS HAN pushes."""

    meter: str
    port: str  # /dev/ttyUSB0, socket://host:port (ser2net, a P1 Wi-Fi dongle) or stdin
    format: Literal["dsmr", "dlms"] = "dsmr"
    # DSMR 2.2/3 ports run at 9600 7E1, DSMR 4/5 at 115200 8N1 (DSMR P1 companion standard);
    # HAN ports pushing DLMS at 2400 8N1 (Kamstrup; Kaifa wants parity "E", Aidon 115200).
    dsmr_version: Literal["2.2", "3", "4", "5"] = "5"
    baudrate: int | None = None
    bytesize: Literal[7, 8] | None = None
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] = 1
    key: str | None = None  # hex: smarty key, or the DLMS GUEK (global unicast encryption key)
    key_file: str | None = None
    auth_key: str | None = None  # hex: DLMS GAK; smarty meters use a fixed one by default
    auth_key_file: str | None = None
    replay_protection: bool = True
    kamstrup_energy_wh: bool | None = None  # Kamstrup lists in Wh (Sweden) instead of 10 Wh
    silence_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for value, path, name in (
            (self.key, self.key_file, "key"),
            (self.auth_key, self.auth_key_file, "auth_key"),
        ):
            if value is not None and path is not None:
                raise ValueError(f"give {name} or {name}_file, not both")
            if value is not None:
                parse_key(value, name)
        if self.silence_timeout_s <= 0:
            raise ValueError("silence_timeout_s: must be above 0")

    @property
    def serial(self) -> SerialSettings:
        """Line settings: what the config says, else the standard's for the format."""
        if self.format == "dlms":
            baudrate, bytesize, parity = 2400, 8, "N"
        elif self.dsmr_version in ("2.2", "3"):
            baudrate, bytesize, parity = 9600, 7, "E"
        else:
            baudrate, bytesize, parity = 115200, 8, "N"
        return SerialSettings(
            baudrate=self.baudrate or baudrate,
            bytesize=self.bytesize or bytesize,
            parity=self.parity or parity,  # type: ignore[arg-type]
            stopbits=self.stopbits,
        )

    def keys(self) -> tuple[bytes | None, bytes | None]:
        """(encryption key, authentication key), reading key files now."""
        found: list[bytes | None] = []
        for given, path, name in (
            (self.key, self.key_file, "key"),
            (self.auth_key, self.auth_key_file, "auth_key"),
        ):
            text = read_secret(path, what=f"{name}_file") if path is not None else given
            found.append(parse_key(text, name) if text is not None else None)
        return found[0], found[1]
