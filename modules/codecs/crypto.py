"""Wireless M-Bus checksums and ciphers: CRC16 EN 13757, ELL AES-CTR, TPL modes 5 and 7.

Pure functions over bytes. Key checks (the 0x2F2F marker, the ELL payload CRC, the AFL MAC)
are made by the caller, which knows which layer it is decoding.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from modules.codecs.crc import CRC16_EN13757
from modules.codecs.errors import DecryptionError

__all__ = [
    "AES_BLOCK_BYTES",
    "AES_KEY_BYTES",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_cmac",
    "aes_ctr",
    "check_key",
    "crc16_en13757",
    "ell_iv",
    "mode5_iv",
    "mode7_key",
]

AES_KEY_BYTES = 16
AES_BLOCK_BYTES = 16

# OMS Vol.2 9.6.1 (EN 13757-7 KDF-A): derivation constants for meter-to-gateway keys.
MODE7_DC_ENC = 0x00
MODE7_DC_MAC = 0x01


# EN 13757-4 CRC (x16+x13+x12+x11+x10+x8+x6+x5+x2+1, inverted) for DLL blocks, ELL payloads
# and compact signatures.
crc16_en13757 = CRC16_EN13757


def check_key(key: bytes) -> bytes:
    """The key itself, or DecryptionError when it is not an AES-128 key."""
    if len(key) != AES_KEY_BYTES:
        raise DecryptionError(
            f"an AES-128 key is {AES_KEY_BYTES} bytes (32 hex digits), this one is {len(key)}",
            code="bad_key",
        )
    return key


def ell_iv(manufacturer: bytes, address: bytes, cc: int, session: bytes) -> bytes:
    """ELL AES-CTR initial counter: M, A, CC without the hop/repeat bits, SN, FN=0, BC=0."""
    # EN 13757-4 13.2.8: the H and R bits change when a repeater forwards the telegram.
    return manufacturer + address + bytes([cc & ~0x12 & 0xFF]) + session + b"\x00\x00\x00"


def mode5_iv(manufacturer: bytes, address: bytes, access_number: int) -> bytes:
    """TPL security mode 5 IV: M, A (of the long header when there is one), ACC eight times."""
    return manufacturer + address + bytes([access_number]) * 8


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CTR with the whole 16-byte block counted big-endian (both directions)."""
    cipher = Cipher(algorithms.AES(check_key(key)), modes.CTR(iv))
    return cipher.encryptor().update(data)


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CBC without padding over whole blocks; a trailing partial block is returned as is."""
    whole = len(data) - len(data) % AES_BLOCK_BYTES
    decryptor = Cipher(algorithms.AES(check_key(key)), modes.CBC(iv)).decryptor()
    return decryptor.update(data[:whole]) + decryptor.finalize() + data[whole:]


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CBC without padding; the caller pads with 0x2F to whole blocks."""
    if len(data) % AES_BLOCK_BYTES:
        raise ValueError("CBC plaintext must be whole 16-byte blocks")
    encryptor = Cipher(algorithms.AES(check_key(key)), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (RFC 4493), 16 bytes."""
    mac = CMAC(algorithms.AES(check_key(key)))
    mac.update(data)
    return mac.finalize()


def mode7_key(key: bytes, constant: int, counter: int, meter_id: bytes) -> bytes:
    """A session key from the master key (KDF-A): CMAC(K, DC || counter || id || 0x07 * 7)."""
    message = bytes([constant]) + counter.to_bytes(4, "little") + meter_id + b"\x07" * 7
    return aes_cmac(key, message)
