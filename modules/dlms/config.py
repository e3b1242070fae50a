"""``[modules.dlms]``: how a DLMS client reaches the meter and which objects it reads."""

from __future__ import annotations

from string import hexdigits
from typing import Literal

import msgspec

from gateway.config import read_secret
from modules.codecs.dlms.apdu import obis_bytes

__all__ = ["DEFAULT_OBJECTS", "DlmsOptions", "parse_hex_key", "parse_object"]

# class 3 (register) unless given as "class/OBIS"; the clock is read for the sample time.
DEFAULT_OBJECTS = (
    "8/0-0:1.0.0",
    "1-0:1.8.0",
    "1-0:2.8.0",
    "1-0:3.8.0",
    "1-0:4.8.0",
    "1-0:1.7.0",
    "1-0:2.7.0",
    "1-0:3.7.0",
    "1-0:4.7.0",
    "1-0:21.7.0",
    "1-0:41.7.0",
    "1-0:61.7.0",
    "1-0:32.7.0",
    "1-0:52.7.0",
    "1-0:72.7.0",
    "1-0:31.7.0",
    "1-0:51.7.0",
    "1-0:71.7.0",
    "1-0:13.7.0",
    "1-0:14.7.0",
    "70/0-0:96.3.10",
)
_REGISTER = 3
_TITLE_HEX_DIGITS = 16
_KEY_HEX_DIGITS = (32, 64)  # AES-128 (security suites 0 and 1) or AES-256 (suite 2)


def parse_hex_key(text: str, what: str) -> bytes:
    """A hex key (spaces and colons allowed) as bytes; ValueError naming ``what`` otherwise."""
    compact = "".join(text.replace(":", " ").split())
    if len(compact) not in _KEY_HEX_DIGITS or not all(c in hexdigits for c in compact):
        raise ValueError(f"{what}: {len(compact)} characters; a key is 32 (or 64) hex digits")
    return bytes.fromhex(compact)


def parse_object(spec: str) -> tuple[int, str]:
    """(class id, OBIS) from ``"1-0:1.8.0"`` (a register) or ``"4/1-0:1.6.0"``."""
    class_text, _, code = spec.strip().rpartition("/")
    class_id = int(class_text) if class_text else _REGISTER
    obis_bytes(code)  # raises ValueError for a malformed code
    return class_id, code


class DlmsOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the DLMS/COSEM client session (IEC 62056-46 HDLC or -47 wrapper)."""

    transport: Literal["auto", "hdlc", "wrapper"] = "auto"  # auto: wrapper on TCP, HDLC on a tty
    client_address: int = 16  # 16 public client (no security); LLS clients are often 1 or 32
    server_logical: int = 1  # the management logical device
    server_physical: int | None = None  # HDLC lower address; None: a one-byte server address
    password: str | None = None  # low-level security (LLS) secret, e.g. Kamstrup's "12345"
    password_file: str | None = None
    # Ciphering with the global keys (hex): GUEK and GAK; glo-get/-set/-action APDUs then.
    key: str | None = None
    key_file: str | None = None
    auth_key: str | None = None
    auth_key_file: str | None = None
    system_title: str | None = None  # the client's, 16 hex digits; None: DEFAULT_CLIENT_TITLE
    # "hls-gmac": high-level security with GMAC (mechanism 5), needs key and auth_key.
    authentication: Literal["lls", "hls-gmac"] = "lls"
    objects: tuple[str, ...] = ()  # "class/OBIS" or an OBIS register; () reads DEFAULT_OBJECTS

    def __post_init__(self) -> None:
        for value, from_file, name in (
            (self.password, self.password_file, "password"),
            (self.key, self.key_file, "key"),
            (self.auth_key, self.auth_key_file, "auth_key"),
        ):
            if value is not None and from_file is not None:
                raise ValueError(f"dlms: give {name} or {name}_file, not both")
        for value, name in ((self.key, "key"), (self.auth_key, "auth_key")):
            if value is not None:
                parse_hex_key(value, f"dlms.{name}")
        if (self.auth_key or self.auth_key_file) and not (self.key or self.key_file):
            raise ValueError("dlms.auth_key: ciphering needs the encryption key (dlms.key) too")
        has_keys = (self.key or self.key_file) and (self.auth_key or self.auth_key_file)
        if self.authentication == "hls-gmac" and not has_keys:
            raise ValueError("dlms.authentication: hls-gmac needs dlms.key and dlms.auth_key")
        if self.system_title is not None:
            title = "".join(self.system_title.split())
            if len(title) != _TITLE_HEX_DIGITS or not all(c in hexdigits for c in title):
                raise ValueError("dlms.system_title: 16 hex digits (8 bytes)")
        if not 0 <= self.client_address <= 0x7F:
            raise ValueError("dlms.client_address must be 0..127")
        for spec in self.objects:
            try:
                parse_object(spec)
            except ValueError:
                raise ValueError(f"dlms.objects: {spec!r} is not [class/]A-B:C.D.E") from None

    def secret(self) -> bytes | None:
        """The LLS password as bytes (read from its file now), or None for no security."""
        if self.password_file is not None:
            return read_secret(self.password_file, what="dlms.password_file").encode()
        return None if self.password is None else self.password.encode()

    def keys(self) -> tuple[bytes | None, bytes | None]:
        """(encryption key, authentication key), reading key files now."""
        found: list[bytes | None] = []
        for value, from_file, name in (
            (self.key, self.key_file, "key"),
            (self.auth_key, self.auth_key_file, "auth_key"),
        ):
            text = value
            if from_file is not None:
                text = read_secret(from_file, what=f"dlms.{name}_file")
            found.append(None if text is None else parse_hex_key(text, f"dlms.{name}"))
        return found[0], found[1]

    def client_title(self) -> bytes | None:
        """The client's system title, or None for the default."""
        return None if self.system_title is None else bytes.fromhex(self.system_title)

    def plan(self) -> tuple[tuple[int, str], ...]:
        """The objects to read, as (class id, OBIS)."""
        return tuple(parse_object(spec) for spec in self.objects or DEFAULT_OBJECTS)
