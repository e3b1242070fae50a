"""DLMS security suite 0: AES-128-GCM ciphering (Green Book 9.2.7), general-glo/ded-ciphering.

The ciphered content is ``SC | IC(4) | ciphertext | tag(12)``. IV = system title ‖ IC;
AAD = SC ‖ AK (‖ plaintext when authentication only). Encryption-only frames carry no tag:
their ciphertext is the GCM keystream, i.e. AES-CTR starting at J0 + 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from modules.codecs.dlms.axdr import Reader, encode_length
from modules.codecs.errors import DecryptionError, FrameError, IncompleteFrame

__all__ = [
    "GENERAL_DED_CIPHERING",
    "GENERAL_GLO_CIPHERING",
    "SC_AUTHENTICATED",
    "SC_BROADCAST",
    "SC_COMPRESSED",
    "SC_ENCRYPTED",
    "TAG_BYTES",
    "Ciphered",
    "cipher",
    "decipher",
    "encode_general_ciphering",
    "parse_general_ciphering",
]

GENERAL_GLO_CIPHERING = 0xDB
GENERAL_DED_CIPHERING = 0xDC
SC_AUTHENTICATED = 0x10
SC_ENCRYPTED = 0x20
SC_BROADCAST = 0x40
SC_COMPRESSED = 0x80
TAG_BYTES = 12  # Green Book 9.2.7.3.3: the GCM tag is truncated to 96 bits
KEY_BYTES = 16
SYSTEM_TITLE_BYTES = 8
_J0_PLUS_ONE = b"\x00\x00\x00\x02"  # GCM with a 96-bit IV: J0 = IV ‖ 0^31 ‖ 1


@dataclass(frozen=True, slots=True)
class Ciphered:
    """A general-glo/ded-ciphering APDU, before deciphering."""

    tag: int
    system_title: bytes
    security_control: int
    invocation_counter: int
    payload: bytes  # ciphertext (or plaintext when only authenticated), without the tag
    auth_tag: bytes | None

    @property
    def authenticated(self) -> bool:
        """The security control asks for an authentication tag."""
        return bool(self.security_control & SC_AUTHENTICATED)

    @property
    def encrypted(self) -> bool:
        """The security control says the payload is encrypted."""
        return bool(self.security_control & SC_ENCRYPTED)

    @property
    def manufacturer_code(self) -> str | None:
        """The FLAG manufacturer id that starts a system title (KAM, KFM, ISK, LGZ...)."""
        prefix = self.system_title[:3]
        return prefix.decode("ascii") if prefix.isalpha() else None

    def facts(self) -> dict[str, Any]:
        """Frame facts for ``Decoded.frame``."""
        return {
            "cipher": "general-glo-ciphering"
            if self.tag == GENERAL_GLO_CIPHERING
            else "general-ded-ciphering",
            "system_title": self.system_title.hex(),
            "security_control": f"0x{self.security_control:02x}",
            "security_suite": self.security_control & 0x0F,
            "authenticated": self.authenticated,
            "encrypted": self.encrypted,
            "broadcast_key": bool(self.security_control & SC_BROADCAST),
            "frame_counter": self.invocation_counter,
            "invocation_counter": f"{self.invocation_counter:08x}",
        }


def parse_general_ciphering(data: bytes, start: int = 0) -> tuple[Ciphered, int]:
    """(the ciphering APDU at ``start``, its size) for tags 0xDB and 0xDC."""
    reader = Reader(data, start)
    tag = reader.byte("ciphering tag")
    if tag not in (GENERAL_GLO_CIPHERING, GENERAL_DED_CIPHERING):
        raise FrameError(f"0x{tag:02x} is not a general ciphering tag", offset=start)
    title_length = reader.length("system title length")
    if title_length != SYSTEM_TITLE_BYTES:
        raise FrameError(f"system title is {title_length} bytes, not 8", offset=reader.pos - 1)
    system_title = reader.take(title_length, "system title")
    content_length = reader.length("ciphered content length")
    content_start = reader.pos
    content = reader.take(content_length, "ciphered content")
    if len(content) < 5:
        raise IncompleteFrame("ciphered content needs SC and IC", offset=content_start)
    security_control = content[0]
    # Suites 0 and 1 cipher with AES-GCM-128 (suite 1 adds ECDSA/ECDH for key exchange only),
    # suite 2 with AES-GCM-256 (Green Book 9.2.3.7).
    if security_control & 0x0F > 2:
        raise DecryptionError(
            f"security suite {security_control & 0x0F} is not known (0, 1 and 2 are AES-GCM)",
            offset=content_start,
            code="unsupported",
        )
    if security_control & SC_COMPRESSED:
        raise DecryptionError(
            "compressed ciphered APDUs are not supported", offset=content_start, code="unsupported"
        )
    body = content[5:]
    auth_tag = None
    if security_control & SC_AUTHENTICATED:
        if len(body) < TAG_BYTES:
            raise IncompleteFrame("ciphered content too short for its tag", offset=reader.pos)
        body, auth_tag = body[:-TAG_BYTES], body[-TAG_BYTES:]
    ciphered = Ciphered(
        tag,
        system_title,
        security_control,
        int.from_bytes(content[1:5], "big"),
        body,
        auth_tag,
    )
    return ciphered, reader.pos - start


def _check_key(key: bytes, what: str) -> None:
    if len(key) not in (KEY_BYTES, 2 * KEY_BYTES):
        raise DecryptionError(
            f"the {what} is {len(key)} bytes; AES keys are 16 bytes (32 hex digits), "
            "or 32 for security suite 2",
            code="bad_key",
        )


def _iv(system_title: bytes, invocation_counter: int) -> bytes:
    return system_title + invocation_counter.to_bytes(4, "big")


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    engine = Cipher(algorithms.AES(key), modes.CTR(iv + _J0_PLUS_ONE)).encryptor()
    return engine.update(data) + engine.finalize()


def decipher(
    ciphered: Ciphered, *, key: bytes | None, auth_key: bytes | None
) -> tuple[bytes, bool]:
    """(plaintext APDU, whether the tag was verified); raises DecryptionError."""
    iv = _iv(ciphered.system_title, ciphered.invocation_counter)
    sc = bytes([ciphered.security_control])
    if ciphered.encrypted and key is None:
        raise DecryptionError(
            "the APDU is encrypted and no key was given (--key, the GUEK / encryption key)",
            code="no_key",
        )
    if key is not None:
        _check_key(key, "encryption key")
    if auth_key is not None:
        _check_key(auth_key, "authentication key")
    if ciphered.auth_tag is None or auth_key is None or key is None:
        if not ciphered.encrypted:
            return ciphered.payload, False
        assert key is not None
        return _ctr(key, iv, ciphered.payload), False
    if ciphered.encrypted:
        aad = sc + auth_key
        engine = Cipher(
            algorithms.AES(key), modes.GCM(iv, ciphered.auth_tag, min_tag_length=TAG_BYTES)
        ).decryptor()
        engine.authenticate_additional_data(aad)
        plaintext = engine.update(ciphered.payload)
    else:
        aad = sc + auth_key + ciphered.payload
        engine = Cipher(
            algorithms.AES(key), modes.GCM(iv, ciphered.auth_tag, min_tag_length=TAG_BYTES)
        ).decryptor()
        engine.authenticate_additional_data(aad)
        plaintext = ciphered.payload
    try:
        engine.finalize()
    except InvalidTag:
        raise DecryptionError(
            "authentication tag does not match: wrong encryption or authentication key, "
            "or the frame was altered",
            code="wrong_key",
        ) from None
    return plaintext, True


def cipher(
    plaintext: bytes,
    *,
    system_title: bytes,
    invocation_counter: int,
    security_control: int,
    key: bytes,
    auth_key: bytes | None = None,
) -> bytes:
    """``SC | IC | ciphertext | tag``: the ciphered content for a given security control."""
    _check_key(key, "encryption key")
    if len(system_title) != SYSTEM_TITLE_BYTES:
        raise ValueError("a system title is 8 bytes")
    iv = _iv(system_title, invocation_counter)
    header = bytes([security_control]) + invocation_counter.to_bytes(4, "big")
    encrypted = bool(security_control & SC_ENCRYPTED)
    if not security_control & SC_AUTHENTICATED:
        return header + (_ctr(key, iv, plaintext) if encrypted else plaintext)
    if auth_key is None:
        raise ValueError("an authenticated APDU needs the authentication key")
    _check_key(auth_key, "authentication key")
    engine = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    aad = bytes([security_control]) + auth_key
    if encrypted:
        engine.authenticate_additional_data(aad)
        body = engine.update(plaintext)
    else:
        engine.authenticate_additional_data(aad + plaintext)
        body = plaintext
    engine.finalize()
    return header + body + engine.tag[:TAG_BYTES]


def encode_general_ciphering(
    content: bytes, *, system_title: bytes, tag: int = GENERAL_GLO_CIPHERING
) -> bytes:
    """``DB|DC 08 system-title length content`` around ciphered content from ``cipher``."""
    return bytes([tag, SYSTEM_TITLE_BYTES]) + system_title + encode_length(len(content)) + content
