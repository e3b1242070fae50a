"""Security 2 Command Class (0x9F): key exchange, nonces and message encapsulation.

Layouts from the Z-Wave Security 2 Command Class specification (SDS13783) as zwave-js and the
Silicon Labs S2 library exchange them. A Message Encapsulation is
``seq, flags, [unencrypted extensions], ciphertext, 8-byte tag``; the CCM additional data is
``sender, receiver, home id (4), frame length (2), seq, flags, unencrypted extensions`` where
the frame length counts the whole command from its class byte to the tag.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import ClassVar, Self

import msgspec

from modules.codecs.zwave.cc.base import (
    CcCommand,
    CommandClassId,
    Reader,
    check_length,
    check_u8,
    encode_cc_list,
    parse_cc_list,
)
from modules.codecs.zwave.security.crypto import (
    CCM_TAG_BYTES,
    EI_BYTES,
    KEY_BYTES,
    PUBLIC_KEY_BYTES,
    ccm_decrypt,
    ccm_encrypt,
)

__all__ = [
    "COMMANDS",
    "ECDH_CURVE25519",
    "KEX_SCHEME_1",
    "Extension",
    "ExtensionType",
    "KexFail",
    "KexFailType",
    "KexGet",
    "KexReport",
    "KexSet",
    "MessageEncapsulation",
    "NetworkKeyGet",
    "NetworkKeyReport",
    "NetworkKeyVerify",
    "NonceGet",
    "NonceReport",
    "PublicKeyReport",
    "S2CommandsSupportedGet",
    "S2CommandsSupportedReport",
    "SecurityKey",
    "TransferEnd",
    "open_encapsulation",
    "seal_encapsulation",
]

KEX_SCHEME_1 = 0x02  # the supported-schemes bit mask: bit 1 is KEX scheme 1, the only one
ECDH_CURVE25519 = 0x01  # the ECDH profile bit mask: bit 0 is Curve25519, the only profile


class SecurityKey(IntFlag):
    """The key bits of KEX Report/Set and Network Key Get/Report."""

    S2_UNAUTHENTICATED = 0x01
    S2_AUTHENTICATED = 0x02
    S2_ACCESS_CONTROL = 0x04
    S0 = 0x80


class KexFailType(IntEnum):
    """Why a key exchange was abandoned (KEX Fail)."""

    KEX_KEY = 0x01  # no requested key can be granted / a key not requested was granted
    KEX_SCHEME = 0x02
    KEX_CURVES = 0x03
    DECRYPT = 0x05
    CANCEL = 0x06
    AUTH = 0x07  # the echo did not match
    KEY_GET = 0x08  # a key was asked for that was not granted
    KEY_VERIFY = 0x09
    KEY_REPORT = 0x0A


class ExtensionType(IntEnum):
    """Message Encapsulation extension types."""

    SPAN = 0x01  # the sender's entropy input: a new singlecast nonce state
    MPAN = 0x02  # a multicast group's nonce state (encrypted extension)
    MGRP = 0x03  # the multicast group a follow-up belongs to
    MOS = 0x04  # the multicast state is out of sync


_MORE_TO_FOLLOW = 0x80
_CRITICAL = 0x40
_TYPE_MASK = 0x3F
_FLAG_EXTENSIONS = 0x01
_FLAG_ENCRYPTED_EXTENSIONS = 0x02


class Extension(msgspec.Struct, frozen=True):
    """One encapsulation extension: its type, the critical bit and its data."""

    type: int
    data: bytes = b""
    critical: bool = False

    @classmethod
    def span(cls, sender_ei: bytes) -> Extension:
        """The SPAN extension carrying the sender's entropy input (critical)."""
        return cls(ExtensionType.SPAN, sender_ei, critical=True)

    def encode(self, *, more: bool) -> bytes:
        """Length, type byte (more-to-follow and critical bits), data."""
        check_u8("extension type", self.type)
        head = self.type | (_MORE_TO_FOLLOW if more else 0) | (_CRITICAL if self.critical else 0)
        return bytes((2 + len(self.data), head)) + self.data


def encode_extensions(extensions: tuple[Extension, ...]) -> bytes:
    """Extensions back to back, each but the last flagged "more to follow"."""
    last = len(extensions) - 1
    return b"".join(ext.encode(more=i < last) for i, ext in enumerate(extensions))


def parse_extensions(reader: Reader) -> tuple[Extension, ...]:
    """Extensions until one without "more to follow"."""
    out: list[Extension] = []
    while True:
        length = reader.u8("extension length")
        if length < 2:
            raise reader.invalid(f"an extension is at least 2 bytes, this one says {length}")
        head = reader.u8("extension type")
        data = reader.take(length - 2, "extension data")
        out.append(Extension(head & _TYPE_MASK, data, critical=bool(head & _CRITICAL)))
        if not head & _MORE_TO_FOLLOW:
            return tuple(out)


def _pack_kex(flags: tuple[bool, bool], scheme: int, profile: int, keys: int) -> bytes:
    """KEX Report and Set: flags (echo bit 0, CSA bit 1), scheme, ECDH profile, key bits."""
    check_u8("KEX field", scheme, profile, keys)
    echo, csa = flags
    return bytes(((0x01 if echo else 0) | (0x02 if csa else 0), scheme, profile, keys))


def _read_kex(reader: Reader) -> tuple[int, bool, bool, int, int]:
    """(keys, echo, CSA, scheme, profile) of a KEX Report or Set."""
    flags = reader.u8("KEX flags")
    scheme = reader.u8("KEX scheme")
    profile = reader.u8("ECDH profile")
    keys = reader.u8("KEX keys")
    return keys, bool(flags & 0x01), bool(flags & 0x02), scheme, profile


class _S2(CcCommand, frozen=True):
    CC: ClassVar[int] = CommandClassId.SECURITY_2


class NonceGet(_S2, frozen=True):
    """Nonce Get: the sender needs the receiver's entropy input to start a SPAN."""

    sequence: int

    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "SECURITY_2_NONCE_GET"

    def body(self) -> bytes:
        """The sequence number."""
        check_u8("sequence number", self.sequence)
        return bytes((self.sequence,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The sequence number."""
        return cls(reader.u8("sequence number"))


class NonceReport(_S2, frozen=True):
    """Nonce Report: SOS with the receiver's entropy input (a new SPAN), MOS for multicast."""

    sequence: int
    sos: bool = True
    mos: bool = False
    receiver_ei: bytes = b""

    COMMAND: ClassVar[int] = 0x02
    NAME: ClassVar[str] = "SECURITY_2_NONCE_REPORT"

    def body(self) -> bytes:
        """Sequence, flags and (with SOS) the 16-byte entropy input."""
        check_u8("sequence number", self.sequence)
        if self.sos != (len(self.receiver_ei) == EI_BYTES):
            raise ValueError("an SOS Nonce Report carries a 16-byte entropy input, others none")
        flags = (0x01 if self.sos else 0) | (0x02 if self.mos else 0)
        return bytes((self.sequence, flags)) + self.receiver_ei

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Sequence, flags and (with SOS) the entropy input."""
        sequence = reader.u8("sequence number")
        flags = reader.u8("nonce report flags")
        sos = bool(flags & 0x01)
        ei = reader.take(EI_BYTES, "receiver's entropy input") if sos else b""
        return cls(sequence, sos, bool(flags & 0x02), ei)


class MessageEncapsulation(_S2, frozen=True):
    """Message Encapsulation as it travels: clear extensions, then ciphertext and tag."""

    sequence: int
    extensions: tuple[Extension, ...] = ()
    sealed: bytes = b""  # ciphertext (encrypted extensions and command) followed by the tag
    encrypted_extensions: bool = False

    COMMAND: ClassVar[int] = 0x03
    NAME: ClassVar[str] = "SECURITY_2_MESSAGE_ENCAPSULATION"

    def head(self) -> bytes:
        """Sequence, flags and the clear extensions: the part the CCM tag also covers."""
        check_u8("sequence number", self.sequence)
        flags = (_FLAG_EXTENSIONS if self.extensions else 0) | (
            _FLAG_ENCRYPTED_EXTENSIONS if self.encrypted_extensions else 0
        )
        return bytes((self.sequence, flags)) + encode_extensions(self.extensions)

    def body(self) -> bytes:
        """Head, then ciphertext and tag."""
        return self.head() + self.sealed

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Head, then at least the 8-byte tag."""
        sequence = reader.u8("sequence number")
        flags = reader.u8("encapsulation flags")
        extensions = parse_extensions(reader) if flags & _FLAG_EXTENSIONS else ()
        if reader.remaining < CCM_TAG_BYTES:
            reader.take(CCM_TAG_BYTES, "authentication tag")  # raises IncompleteFrame
        sealed = reader.rest()
        return cls(sequence, extensions, sealed, bool(flags & _FLAG_ENCRYPTED_EXTENSIONS))

    def sender_ei(self) -> bytes | None:
        """The SPAN extension's entropy input, when the sender starts a new SPAN."""
        for ext in self.extensions:
            if ext.type == ExtensionType.SPAN and len(ext.data) == EI_BYTES:
                return ext.data
        return None

    def refused_extension(self) -> Extension | None:
        """A critical extension this node does not implement (the frame must be dropped)."""
        for ext in self.extensions:
            if ext.critical and ext.type != ExtensionType.SPAN:
                return ext
        return None


def _associated(sender: int, receiver: int, home_id: int, length: int, head: bytes) -> bytes:
    return bytes((sender, receiver)) + home_id.to_bytes(4, "big") + length.to_bytes(2, "big") + head


def seal_encapsulation(
    ccm_key: bytes,
    nonce: bytes,
    *,
    sender: int,
    receiver: int,
    home_id: int,
    sequence: int,
    command: bytes,
    extensions: tuple[Extension, ...] = (),
) -> MessageEncapsulation:
    """Encrypt ``command`` (a whole command class payload) for ``receiver``."""
    frame = MessageEncapsulation(sequence, extensions, b"")
    head = frame.head()
    length = 2 + len(head) + len(command) + CCM_TAG_BYTES
    sealed = ccm_encrypt(
        ccm_key, nonce, command, _associated(sender, receiver, home_id, length, head)
    )
    return msgspec.structs.replace(frame, sealed=sealed)


def open_encapsulation(
    frame: MessageEncapsulation,
    ccm_key: bytes,
    nonce: bytes,
    *,
    sender: int,
    receiver: int,
    home_id: int,
) -> tuple[tuple[Extension, ...], bytes]:
    """(encrypted extensions, command) of a received frame; DecryptionError on a bad tag."""
    head = frame.head()
    length = 2 + len(head) + len(frame.sealed)
    plain = ccm_decrypt(
        ccm_key, nonce, frame.sealed, _associated(sender, receiver, home_id, length, head)
    )
    if not frame.encrypted_extensions:
        return (), plain
    reader = Reader(plain)
    extensions = parse_extensions(reader)
    return extensions, reader.rest()


class KexGet(_S2, frozen=True):
    """KEX Get: the including node asks what the joining node supports."""

    COMMAND: ClassVar[int] = 0x04
    NAME: ClassVar[str] = "SECURITY_2_KEX_GET"


class KexReport(_S2, frozen=True):
    """KEX Report: schemes, ECDH profiles and the keys the joining node requests."""

    requested_keys: int
    echo: bool = False
    request_csa: bool = False
    schemes: int = KEX_SCHEME_1
    profiles: int = ECDH_CURVE25519

    COMMAND: ClassVar[int] = 0x05
    NAME: ClassVar[str] = "SECURITY_2_KEX_REPORT"

    def body(self) -> bytes:
        """Flags, schemes, profiles, keys."""
        flags = (self.echo, self.request_csa)
        return _pack_kex(flags, self.schemes, self.profiles, self.requested_keys)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Flags, schemes, profiles, keys."""
        return cls(*_read_kex(reader))


class KexSet(_S2, frozen=True):
    """KEX Set: the scheme, profile and keys the including node grants."""

    granted_keys: int
    echo: bool = False
    grant_csa: bool = False
    scheme: int = KEX_SCHEME_1
    profile: int = ECDH_CURVE25519

    COMMAND: ClassVar[int] = 0x06
    NAME: ClassVar[str] = "SECURITY_2_KEX_SET"

    def body(self) -> bytes:
        """Flags, scheme, profile, keys."""
        flags = (self.echo, self.grant_csa)
        return _pack_kex(flags, self.scheme, self.profile, self.granted_keys)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Flags, scheme, profile, keys."""
        return cls(*_read_kex(reader))


class KexFail(_S2, frozen=True):
    """KEX Fail: the key exchange is abandoned."""

    fail_type: int

    COMMAND: ClassVar[int] = 0x07
    NAME: ClassVar[str] = "SECURITY_2_KEX_FAIL"

    def body(self) -> bytes:
        """The fail type."""
        check_u8("KEX fail type", self.fail_type)
        return bytes((self.fail_type,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The fail type."""
        return cls(reader.u8("KEX fail type"))


class PublicKeyReport(_S2, frozen=True):
    """Public Key Report: an ECDH public key (the joining node's may hide its first 2 bytes)."""

    public_key: bytes
    including: bool = False

    COMMAND: ClassVar[int] = 0x08
    NAME: ClassVar[str] = "SECURITY_2_PUBLIC_KEY_REPORT"

    def body(self) -> bytes:
        """Flags and the 32-byte key."""
        key = check_length("a Curve25519 public key", self.public_key, PUBLIC_KEY_BYTES)
        return bytes((0x01 if self.including else 0,)) + key

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Flags and the key."""
        flags = reader.u8("public key flags")
        return cls(reader.take(PUBLIC_KEY_BYTES, "public key"), bool(flags & 0x01))


class NetworkKeyGet(_S2, frozen=True):
    """Network Key Get: the joining node asks for one granted key."""

    requested_key: int

    COMMAND: ClassVar[int] = 0x09
    NAME: ClassVar[str] = "SECURITY_2_NETWORK_KEY_GET"

    def body(self) -> bytes:
        """The key bit."""
        check_u8("requested key", self.requested_key)
        return bytes((self.requested_key,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The key bit."""
        return cls(reader.u8("requested key"))


class NetworkKeyReport(_S2, frozen=True):
    """Network Key Report: one network key, sent under the temporary key."""

    granted_key: int
    network_key: bytes

    COMMAND: ClassVar[int] = 0x0A
    NAME: ClassVar[str] = "SECURITY_2_NETWORK_KEY_REPORT"

    def body(self) -> bytes:
        """The key bit and the 16-byte key."""
        check_u8("granted key", self.granted_key)
        return bytes((self.granted_key,)) + check_length(
            "a network key", self.network_key, KEY_BYTES
        )

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The key bit and the key."""
        return cls(reader.u8("granted key"), reader.take(KEY_BYTES, "network key"))


class NetworkKeyVerify(_S2, frozen=True):
    """Network Key Verify: sent under the key just received, proving it arrived intact."""

    COMMAND: ClassVar[int] = 0x0B
    NAME: ClassVar[str] = "SECURITY_2_NETWORK_KEY_VERIFY"


class TransferEnd(_S2, frozen=True):
    """Transfer End: a key was verified (including node) or all keys arrived (joining node)."""

    key_verified: bool = False
    key_request_complete: bool = False

    COMMAND: ClassVar[int] = 0x0C
    NAME: ClassVar[str] = "SECURITY_2_TRANSFER_END"

    def body(self) -> bytes:
        """The two flags."""
        return bytes(
            ((0x02 if self.key_verified else 0) | (0x01 if self.key_request_complete else 0),)
        )

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The two flags."""
        flags = reader.u8("transfer end flags")
        return cls(bool(flags & 0x02), bool(flags & 0x01))


class S2CommandsSupportedGet(_S2, frozen=True):
    """Commands Supported Get: which classes the node supports at this security class."""

    COMMAND: ClassVar[int] = 0x0D
    NAME: ClassVar[str] = "SECURITY_2_COMMANDS_SUPPORTED_GET"


class S2CommandsSupportedReport(_S2, frozen=True):
    """Commands Supported Report: the command classes supported at this security class."""

    supported: tuple[int, ...] = ()

    COMMAND: ClassVar[int] = 0x0E
    NAME: ClassVar[str] = "SECURITY_2_COMMANDS_SUPPORTED_REPORT"

    def body(self) -> bytes:
        """The class list."""
        return encode_cc_list(self.supported)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The class list (controlled classes after the mark are ignored)."""
        supported, _ = parse_cc_list(reader.rest(), base=reader.offset)
        return cls(supported)


COMMANDS: dict[tuple[int, int], type[CcCommand]] = {
    (cls.CC, cls.COMMAND): cls
    for cls in (
        NonceGet,
        NonceReport,
        MessageEncapsulation,
        KexGet,
        KexReport,
        KexSet,
        KexFail,
        PublicKeyReport,
        NetworkKeyGet,
        NetworkKeyReport,
        NetworkKeyVerify,
        TransferEnd,
        S2CommandsSupportedGet,
        S2CommandsSupportedReport,
    )
}
