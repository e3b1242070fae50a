"""Security 0 Command Class (0x98): nonces, network key, scheme and message encapsulation.

Layouts from the Security 0 Command Class specification (SDS10865). A Message Encapsulation is
``sender nonce (8), ciphertext, receiver nonce id, MAC (8)``; the plaintext starts with a
sequence byte (0: a whole, unsplit message). The MAC covers the sender's and the receiver's
nonces, the command byte, both node ids, the ciphertext length and the ciphertext.
"""

from __future__ import annotations

import hmac
from typing import ClassVar, Self

import msgspec

from modules.codecs.errors import DecryptionError
from modules.codecs.zwave.cc.base import (
    CcCommand,
    CommandClassId,
    Reader,
    check_length,
    check_u8,
    encode_cc_list,
    parse_cc_list,
)
from modules.codecs.zwave.security.crypto import KEY_BYTES, S0Keys, s0_mac, s0_ofb

__all__ = [
    "COMMANDS",
    "NONCE_BYTES",
    "S0_SCHEME_0",
    "S0CommandsSupportedGet",
    "S0CommandsSupportedReport",
    "S0MessageEncapsulation",
    "S0NetworkKeySet",
    "S0NetworkKeyVerify",
    "S0NonceGet",
    "S0NonceReport",
    "S0SchemeGet",
    "S0SchemeInherit",
    "S0SchemeReport",
    "open_s0",
    "seal_s0",
]

NONCE_BYTES = 8
MAC_BYTES = 8
S0_SCHEME_0 = 0x00  # the one S0 scheme: Scheme Get/Report/Inherit carry 0
_SINGLE_FRAME = 0x00  # sequence byte of a message that fits one frame


class _S0(CcCommand, frozen=True):
    CC: ClassVar[int] = CommandClassId.SECURITY


class S0CommandsSupportedGet(_S0, frozen=True):
    """Security Commands Supported Get."""

    COMMAND: ClassVar[int] = 0x02
    NAME: ClassVar[str] = "SECURITY_COMMANDS_SUPPORTED_GET"


class S0CommandsSupportedReport(_S0, frozen=True):
    """Security Commands Supported Report: the classes supported (and controlled) under S0."""

    supported: tuple[int, ...] = ()
    controlled: tuple[int, ...] = ()
    reports_to_follow: int = 0

    COMMAND: ClassVar[int] = 0x03
    NAME: ClassVar[str] = "SECURITY_COMMANDS_SUPPORTED_REPORT"

    def body(self) -> bytes:
        """Reports to follow, then the class list."""
        check_u8("reports to follow", self.reports_to_follow)
        return bytes((self.reports_to_follow,)) + encode_cc_list(self.supported, self.controlled)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Reports to follow, then the class list."""
        follow = reader.u8("reports to follow")
        supported, controlled = parse_cc_list(reader.rest(), base=reader.offset)
        return cls(supported, controlled, follow)


class _SchemeCommand(_S0, frozen=True):
    scheme: int = S0_SCHEME_0

    def body(self) -> bytes:
        check_u8("security scheme", self.scheme)
        return bytes((self.scheme,))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        return cls(reader.u8("security scheme"))


class S0SchemeGet(_SchemeCommand, frozen=True):
    """Security Scheme Get: starts S0 inclusion (sent in the clear)."""

    COMMAND: ClassVar[int] = 0x04
    NAME: ClassVar[str] = "SECURITY_SCHEME_GET"


class S0SchemeReport(_SchemeCommand, frozen=True):
    """Security Scheme Report: the schemes the node supports (0: scheme 0)."""

    COMMAND: ClassVar[int] = 0x05
    NAME: ClassVar[str] = "SECURITY_SCHEME_REPORT"


class S0SchemeInherit(_SchemeCommand, frozen=True):
    """Security Scheme Inherit (sent to secondary controllers)."""

    COMMAND: ClassVar[int] = 0x08
    NAME: ClassVar[str] = "SECURITY_SCHEME_INHERIT"


class S0NetworkKeySet(_S0, frozen=True):
    """Network Key Set: the network key, encapsulated under the all-zero temporary key."""

    network_key: bytes

    COMMAND: ClassVar[int] = 0x06
    NAME: ClassVar[str] = "NETWORK_KEY_SET"

    def body(self) -> bytes:
        """The 16-byte key."""
        return check_length("a network key", self.network_key, KEY_BYTES)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The key."""
        return cls(reader.take(KEY_BYTES, "network key"))


class S0NetworkKeyVerify(_S0, frozen=True):
    """Network Key Verify: sent under the new key."""

    COMMAND: ClassVar[int] = 0x07
    NAME: ClassVar[str] = "NETWORK_KEY_VERIFY"


class S0NonceGet(_S0, frozen=True):
    """Security Nonce Get."""

    COMMAND: ClassVar[int] = 0x40
    NAME: ClassVar[str] = "SECURITY_NONCE_GET"


class S0NonceReport(_S0, frozen=True):
    """Security Nonce Report: an 8-byte nonce; its first byte is its id."""

    nonce: bytes

    COMMAND: ClassVar[int] = 0x80
    NAME: ClassVar[str] = "SECURITY_NONCE_REPORT"

    def body(self) -> bytes:
        """The nonce."""
        return check_length("an S0 nonce", self.nonce, NONCE_BYTES)

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The nonce."""
        return cls(reader.take(NONCE_BYTES, "nonce"))


class S0MessageEncapsulation(_S0, frozen=True):
    """Security Message Encapsulation (``nonce_get``: the Nonce Get variant, 0xC1)."""

    sender_nonce: bytes
    ciphertext: bytes
    receiver_nonce_id: int
    mac: bytes
    nonce_get: bool = False

    COMMAND: ClassVar[int] = 0x81
    NAME: ClassVar[str] = "SECURITY_MESSAGE_ENCAPSULATION"
    NONCE_GET_COMMAND: ClassVar[int] = 0xC1

    def encode(self) -> bytes:
        """The class, 0x81 or 0xC1, and the body."""
        command = self.NONCE_GET_COMMAND if self.nonce_get else self.COMMAND
        return bytes((self.CC, command)) + self.body()

    def body(self) -> bytes:
        """Sender nonce, ciphertext, receiver nonce id, MAC."""
        check_u8("receiver nonce id", self.receiver_nonce_id)
        if len(self.sender_nonce) != NONCE_BYTES or len(self.mac) != MAC_BYTES:
            raise ValueError("an S0 sender nonce and MAC are 8 bytes each")
        return self.sender_nonce + self.ciphertext + bytes((self.receiver_nonce_id,)) + self.mac

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Sender nonce, ciphertext, receiver nonce id, MAC."""
        nonce = reader.take(NONCE_BYTES, "sender nonce")
        rest = reader.rest()
        if len(rest) < 1 + MAC_BYTES:
            raise reader.invalid("S0 encapsulation too short for nonce id and MAC", back=0)
        return cls(nonce, rest[: -1 - MAC_BYTES], rest[-1 - MAC_BYTES], rest[-MAC_BYTES:])


class _S0NonceGetEncapsulation(S0MessageEncapsulation, frozen=True):
    """The 0xC1 command id parses into S0MessageEncapsulation with ``nonce_get`` set."""

    COMMAND: ClassVar[int] = 0xC1

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        plain = S0MessageEncapsulation.parse_body(reader)
        return msgspec.structs.replace(plain, nonce_get=True)  # type: ignore[return-value]


def _mac_data(code: int, iv: bytes, nodes: tuple[int, int], ct: bytes) -> bytes:
    """What the MAC covers: IV (sender's and receiver's nonces), command, nodes, ciphertext."""
    return iv + bytes((code, *nodes, len(ct))) + ct


def seal_s0(
    keys: S0Keys,
    sender_nonce: bytes,
    receiver_nonce: bytes,
    *,
    sender: int,
    receiver: int,
    command: bytes,
    nonce_get: bool = False,
) -> S0MessageEncapsulation:
    """Encrypt and authenticate ``command`` with the receiver's nonce."""
    ciphertext = s0_ofb(
        keys.encryption, sender_nonce + receiver_nonce, bytes((_SINGLE_FRAME,)) + command
    )
    code = 0xC1 if nonce_get else 0x81
    mac = s0_mac(
        keys.authentication,
        _mac_data(code, sender_nonce + receiver_nonce, (sender, receiver), ciphertext),
    )
    return S0MessageEncapsulation(sender_nonce, ciphertext, receiver_nonce[0], mac, nonce_get)


def open_s0(
    frame: S0MessageEncapsulation,
    keys: S0Keys,
    receiver_nonce: bytes,
    *,
    sender: int,
    receiver: int,
) -> bytes:
    """The command inside ``frame``; DecryptionError when the MAC does not match."""
    code = 0xC1 if frame.nonce_get else 0x81
    expected = s0_mac(
        keys.authentication,
        _mac_data(code, frame.sender_nonce + receiver_nonce, (sender, receiver), frame.ciphertext),
    )
    if not hmac.compare_digest(expected, frame.mac):
        raise DecryptionError("S0 MAC does not match", code="bad_mac")
    plain = s0_ofb(keys.encryption, frame.sender_nonce + receiver_nonce, frame.ciphertext)
    if not plain or plain[0] != _SINGLE_FRAME:
        raise DecryptionError("S0 split messages are not supported", code="unsupported")
    return plain[1:]


COMMANDS: dict[tuple[int, int], type[CcCommand]] = {
    (cls.CC, cls.COMMAND): cls
    for cls in (
        S0CommandsSupportedGet,
        S0CommandsSupportedReport,
        S0SchemeGet,
        S0SchemeReport,
        S0SchemeInherit,
        S0NetworkKeySet,
        S0NetworkKeyVerify,
        S0NonceGet,
        S0NonceReport,
        S0MessageEncapsulation,
        _S0NonceGetEncapsulation,
    )
}
