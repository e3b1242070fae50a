"""DLMS symmetric security (Green Book 9.2.7): AES-GCM ciphered APDUs of every form.

Three envelopes carry the same ciphered content ``SC | IC(4) | body | tag(12)``:
- general-glo/ded-ciphering (0xDB/0xDC): ``tag | system-title | content``;
- general-ciphering (0xDD): transaction id, originator and recipient system titles, date-time,
  other information and an optional key-info before the content;
- service-specific ciphering (glo-get-response 0xCC, ded-set-response 0xD5, ...): only
  ``tag | content``. The sender's system title is not in the APDU; a client learns it from the
  AARE of the association (responding-AP-title), so the caller has to pass it in.

IV = system title ‖ IC. AAD = SC ‖ AK, followed by the plaintext when the APDU is only
authenticated (security control 0x10: the body travels in clear, the 12-byte GMAC tag covers
it). Encryption-only APDUs carry no tag: their body is the GCM keystream, i.e. AES-CTR from
J0 + 1.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from modules.codecs.dlms.axdr import Reader, encode_length
from modules.codecs.errors import DecryptionError, FrameError, IncompleteFrame

__all__ = [
    "GENERAL_CIPHERING",
    "GENERAL_DED_CIPHERING",
    "GENERAL_GLO_CIPHERING",
    "GLO_INITIATE_REQUEST",
    "GLO_INITIATE_RESPONSE",
    "SC_AUTHENTICATED",
    "SC_BROADCAST",
    "SC_COMPRESSED",
    "SC_ENCRYPTED",
    "SERVICE_CIPHERING",
    "TAG_BYTES",
    "Ciphered",
    "GeneralHeader",
    "GlobalCiphering",
    "check_hls_gmac",
    "cipher",
    "decipher",
    "encode_general_ciphering",
    "encode_general_ciphering_full",
    "encode_service_ciphering",
    "hls_gmac",
    "parse_ciphered",
    "parse_general_ciphering",
]

GENERAL_GLO_CIPHERING = 0xDB
GENERAL_DED_CIPHERING = 0xDC
GENERAL_CIPHERING = 0xDD
# Service-specific ciphered APDUs (Green Book 9.5, the xDLMS APDU tags): name and the tag the
# deciphered APDU must carry. glo- APDUs use the global unicast key, ded- the dedicated key the
# client sent in its AARQ; both are the ``key`` argument here.
SERVICE_CIPHERING: dict[int, tuple[str, int]] = {
    0xC8: ("glo-get-request", 0xC0),
    0xC9: ("glo-set-request", 0xC1),
    0xCA: ("glo-event-notification-request", 0xC2),
    0xCB: ("glo-action-request", 0xC3),
    0xCC: ("glo-get-response", 0xC4),
    0xCD: ("glo-set-response", 0xC5),
    0xCF: ("glo-action-response", 0xC7),
    0xD0: ("ded-get-request", 0xC0),
    0xD1: ("ded-set-request", 0xC1),
    0xD2: ("ded-event-notification-request", 0xC2),
    0xD3: ("ded-action-request", 0xC3),
    0xD4: ("ded-get-response", 0xC4),
    0xD5: ("ded-set-response", 0xC5),
    0xD7: ("ded-action-response", 0xC7),
}
_ENVELOPE_NAMES = {
    GENERAL_GLO_CIPHERING: "general-glo-ciphering",
    GENERAL_DED_CIPHERING: "general-ded-ciphering",
    GENERAL_CIPHERING: "general-ciphering",
}
# general-ciphering key-info choices (Green Book 9.5, Key-Info): which key ciphered the content.
_KEY_INFO = {0: "identified-key", 1: "wrapped-key", 2: "agreed-key"}
_IDENTIFIED_KEYS = {0: "global-unicast-encryption-key", 1: "global-broadcast-encryption-key"}
SC_AUTHENTICATED = 0x10
SC_ENCRYPTED = 0x20
SC_BROADCAST = 0x40
SC_COMPRESSED = 0x80
TAG_BYTES = 12  # Green Book 9.2.7.3.3: the GCM tag is truncated to 96 bits
KEY_BYTES = 16
SYSTEM_TITLE_BYTES = 8
_J0_PLUS_ONE = b"\x00\x00\x00\x02"  # GCM with a 96-bit IV: J0 = IV ‖ 0^31 ‖ 1


@dataclass(frozen=True, slots=True)
class GeneralHeader:
    """The fields general-ciphering (0xDD) puts before its ciphered content."""

    transaction_id: bytes
    recipient_system_title: bytes
    date_time: bytes
    other_information: bytes
    key_info: str | None  # None: absent, the key is known from the context
    key_id: int | None  # identified-key: 0 global unicast, 1 global broadcast

    def aad(self, originator: bytes) -> bytes:
        """What suites 1 and 2 add to the AAD after SC ‖ AK (each field length-prefixed)."""
        fields = (
            self.transaction_id,
            originator,
            self.recipient_system_title,
            self.date_time,
            self.other_information,
        )
        return b"".join(encode_length(len(f)) + f for f in fields)


@dataclass(frozen=True, slots=True)
class Ciphered:
    """A ciphered APDU (any of the three envelopes), before deciphering."""

    tag: int
    system_title: bytes | None  # None: a service-specific APDU whose sender is not known yet
    security_control: int
    invocation_counter: int
    payload: bytes  # ciphertext (or plaintext when only authenticated), without the tag
    auth_tag: bytes | None
    general: GeneralHeader | None = None

    @property
    def name(self) -> str:
        """The APDU's name in the Green Book (general-glo-ciphering, glo-get-response, ...)."""
        if self.tag in SERVICE_CIPHERING:
            return SERVICE_CIPHERING[self.tag][0]
        return _ENVELOPE_NAMES[self.tag]

    @property
    def plain_tag(self) -> int | None:
        """The tag the deciphered APDU must start with (service-specific APDUs only)."""
        known = SERVICE_CIPHERING.get(self.tag)
        return known[1] if known else None

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
        if self.system_title is None:
            return None
        prefix = self.system_title[:3]
        return prefix.decode("ascii") if prefix.isalpha() else None

    def facts(self) -> dict[str, Any]:
        """Frame facts for ``Decoded.frame``."""
        facts: dict[str, Any] = {
            "cipher": self.name,
            "system_title": None if self.system_title is None else self.system_title.hex(),
            "security_control": f"0x{self.security_control:02x}",
            "security_suite": self.security_control & 0x0F,
            "authenticated": self.authenticated,
            "encrypted": self.encrypted,
            "broadcast_key": bool(self.security_control & SC_BROADCAST),
            "frame_counter": self.invocation_counter,
            "invocation_counter": f"{self.invocation_counter:08x}",
        }
        if self.general is not None:
            facts["general_ciphering"] = {
                "transaction_id": self.general.transaction_id.hex(),
                "recipient_system_title": self.general.recipient_system_title.hex(),
                "date_time": self.general.date_time.hex(),
                "other_information": self.general.other_information.hex(),
                "key_info": self.general.key_info,
                "key_id": None
                if self.general.key_id is None
                else _IDENTIFIED_KEYS.get(self.general.key_id, self.general.key_id),
            }
        return facts


def parse_general_ciphering(data: bytes, start: int = 0) -> tuple[Ciphered, int]:
    """(the ciphering APDU at ``start``, its size) for tags 0xDB and 0xDC."""
    tag = data[start] if start < len(data) else None
    if tag not in (GENERAL_GLO_CIPHERING, GENERAL_DED_CIPHERING):
        what = "nothing" if tag is None else f"0x{tag:02x}"
        raise FrameError(f"{what} is not a general ciphering tag", offset=start)
    return parse_ciphered(data, start)


def parse_ciphered(
    data: bytes, start: int = 0, *, system_title: bytes | None = None
) -> tuple[Ciphered, int]:
    """(the ciphered APDU at ``start``, its size) for 0xDB, 0xDC, 0xDD and the glo-/ded- tags.

    ``system_title`` is the sender's, for the service-specific APDUs that do not carry it.
    """
    reader = Reader(data, start)
    tag = reader.byte("ciphering tag")
    general: GeneralHeader | None = None
    if tag in (GENERAL_GLO_CIPHERING, GENERAL_DED_CIPHERING):
        system_title = _system_title(reader, "system title")
    elif tag == GENERAL_CIPHERING:
        transaction_id = reader.take(reader.length("transaction-id length"), "transaction-id")
        system_title = _system_title(reader, "originator-system-title")
        recipient = reader.take(reader.length("recipient-system-title length"), "recipient")
        date_time = reader.take(reader.length("date-time length"), "date-time")
        other = reader.take(reader.length("other-information length"), "other-information")
        key_info, key_id = _key_info(reader)
        general = GeneralHeader(transaction_id, recipient, date_time, other, key_info, key_id)
    elif tag not in SERVICE_CIPHERING:
        raise FrameError(f"0x{tag:02x} is not a ciphered APDU tag", offset=start)
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
        general,
    )
    return ciphered, reader.pos - start


def _system_title(reader: Reader, what: str) -> bytes:
    length = reader.length(f"{what} length")
    if length != SYSTEM_TITLE_BYTES:
        raise FrameError(f"{what} is {length} bytes, not 8", offset=reader.base + reader.pos - 1)
    return reader.take(length, what)


def _key_info(reader: Reader) -> tuple[str | None, int | None]:
    if reader.byte("key-info present") == 0:
        return None, None
    at = reader.pos
    choice = reader.byte("key-info choice")
    if choice == 0:
        return _KEY_INFO[0], reader.byte("key-id")
    if choice == 1:
        reader.byte("kek-id")
        reader.take(reader.length("key-ciphered-data length"), "key-ciphered-data")
        return _KEY_INFO[1], None
    if choice == 2:
        reader.take(reader.length("key-parameters length"), "key-parameters")
        reader.take(reader.length("key-ciphered-data length"), "key-ciphered-data")
        return _KEY_INFO[2], None
    raise FrameError(f"key-info choice {choice} is not known (0, 1 or 2)", offset=at)


def _check_key(key: bytes, what: str) -> None:
    if len(key) not in (KEY_BYTES, 2 * KEY_BYTES):
        raise DecryptionError(
            f"the {what} is {len(key)} bytes; AES keys are 16 bytes (32 hex digits), "
            "or 32 for security suite 2",
            code="bad_key",
        )


def _iv(system_title: bytes, invocation_counter: int) -> bytes:
    return system_title + invocation_counter.to_bytes(4, "big")


# cryptography is imported where a key is used, not with this module: every DSMR telegram's OBIS
# parsing reaches this module, and a P1, KMP or IEC reader without DLMS keys would otherwise
# load cryptography's library (~6 MB of memory, a few ms of start-up) for nothing.


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    engine = Cipher(algorithms.AES(key), modes.CTR(iv + _J0_PLUS_ONE)).encryptor()
    return engine.update(data) + engine.finalize()


def decipher(
    ciphered: Ciphered, *, key: bytes | None, auth_key: bytes | None
) -> tuple[bytes, bool]:
    """(plaintext APDU, whether the tag was verified); raises DecryptionError."""
    general = ciphered.general
    if general is not None and general.key_info in ("wrapped-key", "agreed-key"):
        raise DecryptionError(
            f"general-ciphering with a {general.key_info}: the content key travels in the APDU, "
            "wrapped with the master key or agreed by ECDH; only identified keys (--key) are "
            "supported",
            code="unsupported",
        )
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
    verify = ciphered.auth_tag is not None and auth_key is not None and key is not None
    if not ciphered.encrypted and not verify:
        return ciphered.payload, False
    if ciphered.system_title is None:
        raise DecryptionError(
            f"{ciphered.name} does not carry the sender's system title, which the IV needs; "
            "it comes from the AARE of the association (responding-AP-title) and none was seen",
            code="no_system_title",
        )
    assert key is not None
    iv = _iv(ciphered.system_title, ciphered.invocation_counter)
    if not verify:
        return _ctr(key, iv, ciphered.payload), False
    assert auth_key is not None and ciphered.auth_tag is not None
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - see _ctr
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    aad = sc + auth_key
    if general is not None and ciphered.security_control & 0x0F:
        aad += general.aad(ciphered.system_title)
    engine = Cipher(
        algorithms.AES(key), modes.GCM(iv, ciphered.auth_tag, min_tag_length=TAG_BYTES)
    ).decryptor()
    if ciphered.encrypted:
        engine.authenticate_additional_data(aad)
        plaintext = engine.update(ciphered.payload)
    else:
        engine.authenticate_additional_data(aad + ciphered.payload)
        plaintext = ciphered.payload
    try:
        engine.finalize()
    except InvalidTag:
        if not ciphered.encrypted:
            raise DecryptionError(
                f"the GMAC tag of the authenticated-only {ciphered.name} does not match: wrong "
                "authentication key (the tag also depends on the encryption key), or the clear "
                "body was altered",
                code="bad_tag",
            ) from None
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
    aad_extra: bytes = b"",
) -> bytes:
    """``SC | IC | ciphertext | tag``: the ciphered content for a given security control.

    ``aad_extra`` is what general-ciphering adds to the AAD in suites 1 and 2
    (``GeneralHeader.aad``).
    """
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
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    engine = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    aad = bytes([security_control]) + auth_key + aad_extra
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


def encode_general_ciphering_full(
    content: bytes,
    *,
    originator: bytes,
    header: GeneralHeader,
) -> bytes:
    """A general-ciphering (0xDD) APDU around ciphered content from ``cipher``."""
    out = bytes([GENERAL_CIPHERING])
    for value in (
        header.transaction_id,
        originator,
        header.recipient_system_title,
        header.date_time,
        header.other_information,
    ):
        out += encode_length(len(value)) + value
    if header.key_info is None:
        out += b"\x00"
    elif header.key_info == _KEY_INFO[0]:
        out += bytes([1, 0, header.key_id or 0])
    else:
        raise ValueError("only absent or identified key-info is encoded")
    return out + encode_length(len(content)) + content


def encode_service_ciphering(content: bytes, *, tag: int) -> bytes:
    """A service-specific ciphered APDU (glo-get-response, ...): ``tag | length | content``."""
    if tag not in SERVICE_CIPHERING:
        raise ValueError(f"0x{tag:02x} is not a service-specific ciphering tag")
    return bytes([tag]) + encode_length(len(content)) + content


# ---------------------------------------------------------------- a ciphered association

GLO_INITIATE_REQUEST = 0x21
GLO_INITIATE_RESPONSE = 0x28
_INITIATE_REQUEST = 0x01
_INITIATE_RESPONSE = 0x08
# Plain xDLMS tag -> its glo- (global key) counterpart; the InitiateRequest/-Response of the
# AARQ/AARE travel as glo-initiate-request/-response (Green Book 9.5).
_TO_GLO: dict[int, int] = {
    plain: glo for glo, (_name, plain) in SERVICE_CIPHERING.items() if glo < 0xD0
}
_TO_GLO |= {_INITIATE_REQUEST: GLO_INITIATE_REQUEST, _INITIATE_RESPONSE: GLO_INITIATE_RESPONSE}
_FROM_GLO: dict[int, int] = {glo: plain for plain, glo in _TO_GLO.items()}


class GlobalCiphering:
    """One side of an association ciphered with the global keys (sans-IO, keeps the counters).

    ``wrap`` turns a plain xDLMS APDU into its glo- form with the next invocation counter;
    ``unwrap`` checks and deciphers the peer's, refusing a counter that does not move forward
    (a replayed answer). The peer's system title comes from the AARQ (calling-AP-title) or the
    AARE (responding-AP-title).
    """

    def __init__(
        self,
        *,
        system_title: bytes,
        key: bytes,
        auth_key: bytes | None,
        security_control: int = SC_AUTHENTICATED | SC_ENCRYPTED,
        invocation_counter: int = 0,
    ) -> None:
        _check_key(key, "encryption key")
        if len(system_title) != SYSTEM_TITLE_BYTES:
            raise ValueError("a system title is 8 bytes")
        if security_control & SC_AUTHENTICATED and auth_key is None:
            raise ValueError("an authenticated association needs the authentication key")
        self.system_title = system_title
        self.key = key
        self.auth_key = auth_key
        self.security_control = security_control
        self.invocation_counter = invocation_counter
        self.peer_title: bytes | None = None
        self.peer_counter: int | None = None

    def wrap(self, apdu: bytes) -> bytes:
        """The glo- APDU for a plain one (ValueError for a tag with no glo- form)."""
        glo = _TO_GLO.get(apdu[0]) if apdu else None
        if glo is None:
            raise ValueError(f"APDU tag 0x{apdu[:1].hex()} has no glo- form")
        self.invocation_counter = (self.invocation_counter + 1) & 0xFFFFFFFF
        content = cipher(
            apdu,
            system_title=self.system_title,
            invocation_counter=self.invocation_counter,
            security_control=self.security_control,
            key=self.key,
            auth_key=self.auth_key,
        )
        return bytes([glo]) + encode_length(len(content)) + content

    def unwrap(self, apdu: bytes) -> bytes:
        """The plain APDU inside the peer's glo- APDU; DecryptionError when it does not open."""
        plain_tag = _FROM_GLO.get(apdu[0]) if apdu else None
        if plain_tag is None:
            raise DecryptionError(
                f"0x{apdu[:1].hex()} is no glo- APDU; a ciphered association answers ciphered",
                code="not_encrypted",
            )
        reader = Reader(apdu, 1)
        content = reader.take(reader.length("ciphered content length"), "ciphered content")
        if len(content) < 5:
            raise IncompleteFrame("ciphered content needs SC and IC", offset=reader.pos)
        security_control = content[0]
        body, auth_tag = content[5:], None
        if security_control & SC_AUTHENTICATED:
            if len(body) < TAG_BYTES:
                raise IncompleteFrame("ciphered content too short for its tag", offset=reader.pos)
            body, auth_tag = body[:-TAG_BYTES], body[-TAG_BYTES:]
        ciphered = Ciphered(
            apdu[0],
            self.peer_title,
            security_control,
            int.from_bytes(content[1:5], "big"),
            body,
            auth_tag,
        )
        plain, _verified = decipher(ciphered, key=self.key, auth_key=self.auth_key)
        if not plain or plain[0] != plain_tag:
            raise DecryptionError(
                f"deciphered {ciphered.name if apdu[0] in SERVICE_CIPHERING else 'APDU'} is "
                "not what it says it holds: wrong encryption key",
                code="wrong_key",
            )
        counter = ciphered.invocation_counter
        if self.peer_counter is not None and counter <= self.peer_counter:
            raise DecryptionError(
                f"invocation counter {counter} is not above {self.peer_counter}: a replay",
                code="replay",
            )
        self.peer_counter = counter
        return plain


def hls_gmac(
    challenge: bytes,
    *,
    system_title: bytes,
    invocation_counter: int,
    key: bytes,
    auth_key: bytes,
    suite: int = 0,
) -> bytes:
    """HLS mechanism 5 (GMAC): ``SC | IC | GMAC(SC ‖ AK ‖ challenge)`` with SC = 0x10 | suite.

    What each side answers to the other's challenge (Green Book 9.2.7.4): the client sends
    f(StoC) in reply_to_HLS_authentication, the server returns f(CtoS).
    """
    content = cipher(
        challenge,
        system_title=system_title,
        invocation_counter=invocation_counter,
        security_control=SC_AUTHENTICATED | suite,
        key=key,
        auth_key=auth_key,
    )
    return content[:5] + content[-TAG_BYTES:]


def check_hls_gmac(
    answer: bytes, challenge: bytes, *, system_title: bytes, key: bytes, auth_key: bytes
) -> bool:
    """Whether ``answer`` is the peer's f(challenge) under these keys and its system title."""
    if len(answer) != 5 + TAG_BYTES or not answer[0] & SC_AUTHENTICATED:
        return False
    expected = hls_gmac(
        challenge,
        system_title=system_title,
        invocation_counter=int.from_bytes(answer[1:5], "big"),
        key=key,
        auth_key=auth_key,
        suite=answer[0] & 0x0F,
    )
    return hmac.compare_digest(expected, answer)
