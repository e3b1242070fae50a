"""The primitives Z-Wave security is built from, as the S2 and S0 specifications combine them.

S2 (Z-Wave Security 2 Command Class, SDS13783): keys come from AES-CMAC based derivations
(CKDF) with fixed constants; each frame is AES-128-CCM with a 13-byte nonce and an 8-byte tag;
the nonces come from an AES-128 CTR_DRBG without derivation function (NIST SP 800-90A) seeded
with both sides' entropy (the SPAN). The key exchange is X25519 (Curve25519 ECDH).

S0 (Security 0 Command Class, SDS10865): a network key gives an authentication key and an
encryption key (AES-ECB of two constant blocks); a frame is AES-OFB with an IV of the sender's
and the receiver's 8-byte nonces, authenticated by an AES CBC-MAC cut to 8 bytes.
"""

from __future__ import annotations

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.cmac import CMAC

from modules.codecs.errors import DecryptionError

__all__ = [
    "CCM_NONCE_BYTES",
    "CCM_TAG_BYTES",
    "EI_BYTES",
    "KEY_BYTES",
    "PUBLIC_KEY_BYTES",
    "CtrDrbg",
    "S0Keys",
    "S2Keys",
    "aes_cmac",
    "aes_ecb",
    "ccm_decrypt",
    "ccm_encrypt",
    "dsk_pin",
    "dsk_text",
    "mixed_entropy",
    "network_keys",
    "public_key",
    "s0_keys",
    "s0_mac",
    "s0_ofb",
    "shared_secret",
    "temporary_keys",
]

KEY_BYTES = 16
EI_BYTES = 16  # an entropy input (SPAN half) is 16 bytes
PUBLIC_KEY_BYTES = 32
CCM_NONCE_BYTES = 13
CCM_TAG_BYTES = 8
_SEED_BYTES = 32  # CTR_DRBG seedlen for AES-128: key length + block length

# CKDF constants (SDS13783 "Key derivation"): fixed byte strings, repeated.
_CONSTANT_PRK = b"\x33" * 16  # temporary key extract
_CONSTANT_TE = b"\x88" * 15  # temporary key expand
_CONSTANT_NK = b"\x55" * 15  # network key expand
_CONSTANT_NONCE = b"\x26" * 16  # nonce (MEI) extract
_CONSTANT_EI = b"\x88" * 15  # nonce (MEI) expand
# S0 (SDS10865): the authentication and encryption keys encrypt these blocks with the network key.
_S0_AUTH_BLOCK = b"\x55" * 16
_S0_ENC_BLOCK = b"\xaa" * 16


def aes_ecb(key: bytes, block: bytes) -> bytes:
    """One AES-128 block encryption (blocks of 16 bytes, no padding)."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), 16 bytes."""
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


class S2Keys(msgspec.Struct, frozen=True):
    """What one S2 key (temporary or network) expands to: the CCM key and the nonce string."""

    ccm: bytes
    personalization: bytes  # 32 bytes, the CTR_DRBG personalization string of the SPAN
    mpan: bytes = b""  # multicast (MPAN) key; network keys only


def temporary_keys(shared: bytes, including_public: bytes, joining_public: bytes) -> S2Keys:
    """CKDF-TempExtract then CKDF-TempExpand: the key the bootstrapping runs under.

    ``including_public`` is the including node's (controller's) public key, ``joining_public``
    the joining node's, whole (the PIN bytes filled in).
    """
    prk = aes_cmac(_CONSTANT_PRK, shared + including_public + joining_public)
    t1 = aes_cmac(prk, _CONSTANT_TE + b"\x01")
    t2 = aes_cmac(prk, t1 + _CONSTANT_TE + b"\x02")
    t3 = aes_cmac(prk, t2 + _CONSTANT_TE + b"\x03")
    return S2Keys(t1, t2 + t3)


def network_keys(network_key: bytes) -> S2Keys:
    """CKDF-NetworkKeyExpand: the CCM key, the nonce personalization string and the MPAN key."""
    t1 = aes_cmac(network_key, _CONSTANT_NK + b"\x01")
    t2 = aes_cmac(network_key, t1 + _CONSTANT_NK + b"\x02")
    t3 = aes_cmac(network_key, t2 + _CONSTANT_NK + b"\x03")
    t4 = aes_cmac(network_key, t3 + _CONSTANT_NK + b"\x04")
    return S2Keys(t1, t2 + t3, t4)


def mixed_entropy(sender_ei: bytes, receiver_ei: bytes) -> bytes:
    """CKDF-MEI-Extract then -Expand: the 32-byte entropy a SPAN's CTR_DRBG starts from."""
    prk = aes_cmac(_CONSTANT_NONCE, sender_ei + receiver_ei)
    t1 = aes_cmac(prk, _CONSTANT_EI + b"\x00" + _CONSTANT_EI + b"\x01")
    t2 = aes_cmac(prk, t1 + _CONSTANT_EI + b"\x02")
    return t1 + t2


class CtrDrbg:
    """NIST SP 800-90A CTR_DRBG with AES-128 and no derivation function.

    S2 instantiates one per SPAN with the mixed entropy input and the key's personalization
    string; both ends draw the same sequence of nonces from it.
    """

    __slots__ = ("_key", "_v")

    def __init__(self, entropy: bytes, personalization: bytes = b"") -> None:
        if len(entropy) != _SEED_BYTES or len(personalization) > _SEED_BYTES:
            raise ValueError("CTR_DRBG takes 32 bytes of entropy and at most 32 of personalization")
        self._key = bytes(16)
        self._v = bytes(16)
        self._update(_xor(entropy, personalization.ljust(_SEED_BYTES, b"\x00")))

    def copy(self) -> CtrDrbg:
        """An independent generator in the same state (to try a nonce without consuming it)."""
        twin = CtrDrbg.__new__(CtrDrbg)
        twin._key, twin._v = self._key, self._v
        return twin

    def reseed(self, entropy: bytes, additional: bytes = b"") -> None:
        """Mix in fresh entropy (SP 800-90A 10.2.1.4.1)."""
        self._update(_xor(entropy, additional.ljust(_SEED_BYTES, b"\x00")))

    def generate(self, count: int, additional: bytes = b"") -> bytes:
        """``count`` pseudo-random bytes (SP 800-90A 10.2.1.5.1)."""
        padded = additional.ljust(_SEED_BYTES, b"\x00")
        if additional:
            self._update(padded)
        out = self._blocks(count)
        self._update(padded)
        return out

    def _blocks(self, count: int) -> bytes:
        out = bytearray()
        v = int.from_bytes(self._v, "big")
        while len(out) < count:
            v = (v + 1) & ((1 << 128) - 1)
            out += aes_ecb(self._key, v.to_bytes(16, "big"))
        self._v = v.to_bytes(16, "big")
        return bytes(out[:count])

    def _update(self, provided: bytes) -> None:
        temp = _xor(self._blocks(_SEED_BYTES), provided)
        self._key, self._v = temp[:16], temp[16:]


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def ccm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-128-CCM with S2's 8-byte tag: ciphertext followed by the tag."""
    return AESCCM(key, tag_length=CCM_TAG_BYTES).encrypt(nonce, plaintext, associated)


def ccm_decrypt(key: bytes, nonce: bytes, sealed: bytes, associated: bytes) -> bytes:
    """The plaintext of ciphertext + tag, or DecryptionError when the tag does not match."""
    try:
        return AESCCM(key, tag_length=CCM_TAG_BYTES).decrypt(nonce, sealed, associated)
    except InvalidTag:
        raise DecryptionError("S2 authentication tag does not match", code="bad_mac") from None


def public_key(private: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of an X25519 public key."""
    # public_bytes_raw() rather than public_bytes(Encoding.Raw, ...): the serialization package
    # it needs loads SSH and PEM support (~1 MB) a Z-Wave node never uses.
    return private.public_key().public_bytes_raw()


def shared_secret(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """X25519 ECDH with the peer's raw public key."""
    return private.exchange(X25519PublicKey.from_public_bytes(peer_public))


def dsk_text(public: bytes) -> str:
    """The DSK: the public key's first 16 bytes as eight 5-digit groups (what labels show)."""
    return "-".join(f"{int.from_bytes(public[i : i + 2], 'big'):05d}" for i in range(0, 16, 2))


def dsk_pin(public: bytes) -> str:
    """The PIN a user types for S2 Authenticated: the DSK's first group (the hidden 2 bytes)."""
    return f"{int.from_bytes(public[:2], 'big'):05d}"


class S0Keys(msgspec.Struct, frozen=True):
    """The two keys S0 derives from its network key."""

    authentication: bytes
    encryption: bytes


def s0_keys(network_key: bytes) -> S0Keys:
    """The S0 authentication and encryption keys of a network key."""
    return S0Keys(aes_ecb(network_key, _S0_AUTH_BLOCK), aes_ecb(network_key, _S0_ENC_BLOCK))


def s0_ofb(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-OFB over ``data`` (encryption and decryption are the same operation).

    Built from single blocks: ``cryptography`` moved OFB to its "decrepit" corner.
    """
    out = bytearray()
    block = iv
    for at in range(0, len(data), 16):
        block = aes_ecb(key, block)
        chunk = data[at : at + 16]
        out += _xor(chunk, block[: len(chunk)])
    return bytes(out)


def s0_mac(key: bytes, data: bytes) -> bytes:
    """S0's CBC-MAC: AES-CBC over ``data`` zero-padded, IV zero; first 8 bytes of the last block."""
    padded = data + bytes(-len(data) % 16)
    state = bytes(16)
    for at in range(0, len(padded), 16):
        state = aes_ecb(key, _xor(state, padded[at : at + 16]))
    return state[:8]
