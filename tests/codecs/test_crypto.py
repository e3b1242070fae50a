"""Checksums and ciphers of wireless M-Bus, against published values and real telegrams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.codecs import crypto
from modules.codecs.errors import DecryptionError

VECTORS = Path(__file__).parent.parent / "fixtures" / "vectors"


def _vector(name: str, source_part: str) -> dict[str, object]:
    items = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return next(item for item in items if source_part in item.get("source", ""))


def test_crc_of_en13757_3_annex_g5_example() -> None:
    # EN 13757-3:2018 G.5: the format signature of 02 02 02 15 02 2A is 0x3B31 and the
    # full-frame CRC of the same records with their values is 0xA642.
    assert crypto.crc16_en13757(bytes.fromhex("02020215022A")) == 0x3B31
    assert crypto.crc16_en13757(bytes.fromhex("0202D20402152E16022A3423")) == 0xA642


def test_crc_of_omnipower_format() -> None:
    assert crypto.crc16_en13757(bytes.fromhex("040404843C042B04AB3C")) == 0x8C13


def test_cmac_rfc4493_examples() -> None:
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    assert crypto.aes_cmac(key, b"").hex() == "bb1d6929e95937287fa37d129b756746"
    message = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert crypto.aes_cmac(key, message).hex() == "070a16b46b4d4144f79bdd9dd04a287c"


def test_ell_ctr_real_multical21_telegram() -> None:
    item = _vector("wmbus.json", "serial_aes.msg:2")
    frame = bytes.fromhex(str(item["hex"]))
    key = bytes.fromhex(str(item["key"]))
    iv = crypto.ell_iv(frame[2:4], frame[4:10], frame[11], frame[13:17])
    assert iv.hex().upper() == item["iv"]
    plain = crypto.aes_ctr(key, iv, frame[17:])
    assert (frame[:17] + plain).hex().upper() == item["decrypted_hex"]
    assert crypto.crc16_en13757(plain[2:]) == int.from_bytes(plain[:2], "little")


def test_ell_iv_clears_hop_and_repeat_bits() -> None:
    m, a, sn = b"\x2d\x2c", bytes(6), bytes(4)
    assert crypto.ell_iv(m, a, 0x32, sn) == crypto.ell_iv(m, a, 0x20, sn)


def test_mode5_real_telegram_decrypts_to_2f2f() -> None:
    item = _vector("wmbus.json", "caltose.xmq")
    frame = bytes.fromhex(str(item["hex"]))
    key = bytes.fromhex(str(item["key"]))
    # 7A ACC STS CFG(2) at byte 10; CFG says how many blocks are encrypted.
    acc = frame[11]
    blocks = (int.from_bytes(frame[13:15], "little") >> 4) & 0x0F
    sealed = frame[15 : 15 + 16 * blocks]
    plain = crypto.aes_cbc_decrypt(key, crypto.mode5_iv(frame[2:4], frame[4:10], acc), sealed)
    assert plain[:2] == b"\x2f\x2f"
    wrong = crypto.aes_cbc_decrypt(bytes(16), crypto.mode5_iv(frame[2:4], frame[4:10], acc), sealed)
    assert wrong[:2] != b"\x2f\x2f"


def test_mode7_kdf_and_mac_on_real_frame_b_telegram() -> None:
    item = _vector("wmbus.json", "test_frame_b_trim.sh")
    raw = bytes.fromhex(str(item["hex"]))
    frame = raw[:126] + raw[128:-2]  # format B: drop both DLL CRCs
    key = bytes.fromhex(str(item["key"]))
    afl = frame[13:]
    mcl, counter_bytes, mac, tpl = afl[4], afl[5:9], afl[9:17], afl[17:]
    counter = int.from_bytes(counter_bytes, "little")
    k_mac = crypto.mode7_key(key, crypto.MODE7_DC_MAC, counter, frame[4:8])
    assert crypto.aes_cmac(k_mac, bytes([mcl]) + counter_bytes + tpl)[:8] == mac
    k_enc = crypto.mode7_key(key, crypto.MODE7_DC_ENC, counter, frame[4:8])
    plain = crypto.aes_cbc_decrypt(k_enc, bytes(16), tpl[6 : 6 + 16 * 9])
    assert plain.startswith(b"\x2f\x2f\x04\x6d")


def test_key_of_wrong_length_is_refused() -> None:
    with pytest.raises(DecryptionError) as caught:
        crypto.aes_ctr(bytes(15), bytes(16), b"x")
    assert caught.value.code == "bad_key"


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), data=st.binary(max_size=100))
def test_ctr_is_its_own_inverse(key: bytes, data: bytes) -> None:
    iv = crypto.ell_iv(b"\x2d\x2c", bytes(6), 0x20, b"\x01\x02\x03\x20")
    assert crypto.aes_ctr(key, iv, crypto.aes_ctr(key, iv, data)) == data


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), blocks=st.integers(0, 8), acc=st.integers(0, 255))
def test_cbc_round_trip(key: bytes, blocks: int, acc: int) -> None:
    iv = crypto.mode5_iv(b"\x2d\x2c", bytes(6), acc)
    plain = bytes(range(16)) * blocks
    assert crypto.aes_cbc_decrypt(key, iv, crypto.aes_cbc_encrypt(key, iv, plain)) == plain


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=64), flip=st.integers(0, 511))
def test_crc_detects_every_single_bit_flip(data: bytes, flip: int) -> None:
    if not data:
        return
    bit = flip % (8 * len(data))
    mutated = bytearray(data)
    mutated[bit // 8] ^= 1 << (bit % 8)
    assert crypto.crc16_en13757(bytes(mutated)) != crypto.crc16_en13757(data)
