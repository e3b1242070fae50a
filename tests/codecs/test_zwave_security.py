"""Z-Wave S2 and S0 crypto: known answers from published vectors, then the frame layouts.

Known answers: AES-CMAC from NIST SP 800-38B's examples, CTR_DRBG from NIST CAVP
(AES-128 no df, no prediction resistance, with reseed), AES-CCM with S2's parameters
(13-byte nonce, 8-byte tag) from RFC 3610 packet vector #1, X25519 from RFC 7748 section 6.1,
S0 OFB and MAC from a frame captured between two real nodes (network key 01..10) that
zwave-js keeps as its reference, the CKDF network-key and temporary-key derivations from the
vectors the Silicon Labs S2 library tests its key derivation with. The MEI chain is checked
against its definition written out with the library's CMAC, and encapsulation against its
own inverse.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from modules.codecs.errors import DecryptionError, IncompleteFrame
from modules.codecs.zwave.dispatch import parse_command
from modules.codecs.zwave.security.crypto import (
    CtrDrbg,
    aes_cmac,
    ccm_decrypt,
    ccm_encrypt,
    dsk_pin,
    dsk_text,
    mixed_entropy,
    network_keys,
    public_key,
    s0_keys,
    s0_mac,
    s0_ofb,
    shared_secret,
    temporary_keys,
)
from modules.codecs.zwave.security.s0 import S0MessageEncapsulation, open_s0, seal_s0
from modules.codecs.zwave.security.s2 import (
    Extension,
    MessageEncapsulation,
    NonceReport,
    TransferEnd,
    open_encapsulation,
    seal_encapsulation,
)

NIST_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", "bb1d6929e9593728 7fa37d129b756746"),
        ("6bc1bee22e409f96e93d7e117393172a", "070a16b46b4d4144 f79bdd9dd04a287c"),
        ("6bc1bee22e409f96e93d7e117393172aae2d8a57", "7d85449ea6ea19c8 23a7bf78837dfade"),
    ],
)
def test_cmac_nist_examples(message: str, expected: str) -> None:
    assert aes_cmac(NIST_KEY, bytes.fromhex(message)) == bytes.fromhex(expected)


@pytest.mark.parametrize(
    ("entropy", "reseed", "returned"),
    [
        (
            "ed1e7f21ef66ea5d8e2a85b9337245445b71d6393a4eecb0e63c193d0f72f9a9",
            "303fb519f0a4e17d6df0b6426aa0ecb2a36079bd48be47ad2a8dbfe48da3efad",
            "f80111d08e874672f32f42997133a5210f7a9375e22cea70587f9cfafebe0f6a"
            "6aa2eb68e7dd9164536d53fa020fcab20f54caddfab7d6d91e5ffec1dfd8deaa",
        ),
        (
            "b2b3298306471bfcae61438a3a79e2355efa0b6ede4cbcd3e66de5140b3ae680",
            "26f0d1e44be575ee6f3eda89c1e7e4fbd1428f8852604871c7a4f4c707a39328",
            "b71b6d7322453a612c34a91c1e5c3f8c30486a692b1ad13a4c08caccd123a639"
            "fd2e0a7c389cfa1a97cb78b438dff57b0b5ec4d569a8b2810a15f85c8c9226bf",
        ),
    ],
)
def test_ctr_drbg_cavp(entropy: str, reseed: str, returned: str) -> None:
    # CAVP procedure: instantiate, reseed, generate twice, compare the second output.
    drbg = CtrDrbg(bytes.fromhex(entropy))
    drbg.reseed(bytes.fromhex(reseed))
    drbg.generate(64)
    assert drbg.generate(64) == bytes.fromhex(returned)


def test_ctr_drbg_personalization_changes_the_stream_and_copies_are_independent() -> None:
    entropy = bytes(range(32))
    plain, personal = CtrDrbg(entropy), CtrDrbg(entropy, b"\x01" * 32)
    assert plain.generate(16) != personal.generate(16)
    twin = plain.copy()
    assert twin.generate(16) == plain.generate(16)
    with pytest.raises(ValueError, match="32 bytes"):
        CtrDrbg(b"short")


def test_ccm_rfc3610_packet_vector_1() -> None:
    key = bytes(range(0xC0, 0xD0))
    nonce = bytes.fromhex("00000003020100a0a1a2a3a4a5")
    header = bytes(range(8))
    payload = bytes(range(8, 0x1F))
    sealed = ccm_encrypt(key, nonce, payload, header)
    assert sealed == bytes.fromhex(
        "588c979a61c663d2f066d0c2c0f989806d5f6b61dac384" + "17e8d12cfdf926e0"
    )
    assert ccm_decrypt(key, nonce, sealed, header) == payload
    with pytest.raises(DecryptionError, match="tag"):
        ccm_decrypt(key, nonce, sealed, header[:-1] + b"\x00")


def test_x25519_rfc7748() -> None:
    alice = X25519PrivateKey.from_private_bytes(
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert public_key(alice) == bytes.fromhex(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert shared_secret(alice, bob_public) == bytes.fromhex(
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )


def _cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def test_ckdf_known_answers() -> None:
    keys = network_keys(bytes(range(0x40, 0x50)))
    assert keys.ccm == bytes.fromhex("af7f0a1efcfe8f4b1fd2845dd2856f7d")
    assert keys.personalization == bytes.fromhex(
        "ccf8b42a4f702176ac2b9194dbbdb82c474302ff12e1e8266422f3ac44894b87"
    )
    assert keys.mpan == bytes.fromhex("b89db1543fd2820ea979c96a305a230b")
    # Temporary key: the ECDH secret, then the controller's and the joining node's keys.
    shared = bytes(range(0x40, 0x48)) * 4
    auth_tag = bytes(range(0x48, 0x50)) * 8
    assert aes_cmac(b"\x33" * 16, shared + auth_tag) == bytes.fromhex(
        "74778f89d4d88c6e4659634a88ea987a"
    )
    temp = temporary_keys(shared, auth_tag[:32], auth_tag[32:])
    assert temp.ccm == bytes.fromhex("47da9d1539ec73e5d2a0f737dbf29b33")
    assert temp.personalization == bytes.fromhex(
        "94a53eb9a12d7cd949ea70ffb8a6e71ea6f79ca7a0145a08bad582aeb09bd28b"
    )


def test_ckdf_chains_follow_the_definitions() -> None:
    network_key = bytes(range(16))
    keys = network_keys(network_key)
    t1 = _cmac(network_key, b"\x55" * 15 + b"\x01")
    t2 = _cmac(network_key, t1 + b"\x55" * 15 + b"\x02")
    t3 = _cmac(network_key, t2 + b"\x55" * 15 + b"\x03")
    t4 = _cmac(network_key, t3 + b"\x55" * 15 + b"\x04")
    assert (keys.ccm, keys.personalization, keys.mpan) == (t1, t2 + t3, t4)

    shared, a, b = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    prk = _cmac(b"\x33" * 16, shared + a + b)
    u1 = _cmac(prk, b"\x88" * 15 + b"\x01")
    u2 = _cmac(prk, u1 + b"\x88" * 15 + b"\x02")
    u3 = _cmac(prk, u2 + b"\x88" * 15 + b"\x03")
    temp = temporary_keys(shared, a, b)
    assert (temp.ccm, temp.personalization) == (u1, u2 + u3)
    assert temporary_keys(shared, b, a) != temp  # who includes whom is part of the key

    sender_ei, receiver_ei = b"\x04" * 16, b"\x05" * 16
    nonce_prk = _cmac(b"\x26" * 16, sender_ei + receiver_ei)
    m1 = _cmac(nonce_prk, b"\x88" * 15 + b"\x00" + b"\x88" * 15 + b"\x01")
    m2 = _cmac(nonce_prk, m1 + b"\x88" * 15 + b"\x02")
    assert mixed_entropy(sender_ei, receiver_ei) == m1 + m2


def test_dsk_and_pin() -> None:
    public = bytes.fromhex(
        "d5 6f 00 01 ff ff 12 34 00 00 01 02 03 04 05 06".replace(" ", "")
    ) + bytes(16)
    assert dsk_text(public) == "54639-00001-65535-04660-00000-00258-00772-01286"
    assert dsk_pin(public) == "54639"


def test_s0_real_frame() -> None:
    keys = s0_keys(bytes.fromhex("0102030405060708090a0b0c0d0e0f10"))
    wire = "9881 78193fd7b91995ba 47645ec33fcdb3994b104ebd712e8b7fbd9120d049 28 4e39c14a0dc9aee5"
    frame = parse_command(bytes.fromhex(wire.replace(" ", "")))
    assert isinstance(frame, S0MessageEncapsulation)
    receiver_nonce = bytes.fromhex("2866211bff3783d6")
    command = open_s0(frame, keys, receiver_nonce, sender=22, receiver=1)
    # A Security Commands Supported Report from node 22 to the controller.
    assert command == bytes.fromhex("9803008685598e60725a845b7170807aef2526ef")
    with pytest.raises(DecryptionError, match="MAC"):
        open_s0(frame, keys, receiver_nonce, sender=23, receiver=1)
    again = seal_s0(
        keys, frame.sender_nonce, receiver_nonce, sender=22, receiver=1, command=command
    )
    assert again == frame


def test_s0_mac_and_ofb_known_answers() -> None:
    key = bytes.fromhex("c5fe1ca17d36c992731a0c0c468c1ef9")
    data = bytes.fromhex("ddd360c382a437514392826cbba0b3128114010cf3fb762d6e82126681c18597")
    assert s0_mac(key, data) == bytes.fromhex("2bc20a8aa9bbb371")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    block = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert s0_ofb(NIST_KEY, iv, block) == bytes.fromhex("3b3fd92eb72dad20333449f8e83cfb4a")


def test_s2_encapsulation_round_trip_and_tamper() -> None:
    keys = network_keys(b"\x11" * 16)
    nonce = b"\x22" * 13
    command = bytes.fromhex("3202a1340000303900")
    span = Extension.span(b"\x33" * 16)
    frame = seal_encapsulation(
        keys.ccm,
        nonce,
        sender=2,
        receiver=1,
        home_id=0xC0FFEE01,
        sequence=7,
        command=command,
        extensions=(span,),
    )
    wire = frame.encode()
    assert wire[:4] == bytes((0x9F, 0x03, 7, 0x01))
    assert wire[4:6] == bytes((18, 0x41))  # SPAN: 18 bytes, critical, last
    parsed = parse_command(wire)
    assert parsed == frame
    assert isinstance(parsed, MessageEncapsulation)
    assert parsed.sender_ei() == b"\x33" * 16
    assert open_encapsulation(
        parsed, keys.ccm, nonce, sender=2, receiver=1, home_id=0xC0FFEE01
    ) == ((), command)
    for wrong in (
        {"sender": 3, "receiver": 1, "home_id": 0xC0FFEE01},
        {"sender": 2, "receiver": 1, "home_id": 0xC0FFEE02},
    ):
        with pytest.raises(DecryptionError):
            open_encapsulation(parsed, keys.ccm, nonce, **wrong)


def test_s2_frames_refuse_short_input() -> None:
    with pytest.raises(IncompleteFrame):
        parse_command(bytes((0x9F, 0x03, 1, 0)) + b"\x00" * 7)  # a tag needs 8 bytes
    with pytest.raises(IncompleteFrame):
        parse_command(bytes((0x9F, 0x02, 1, 0x01)) + b"\x00" * 15)  # SOS without a whole EI
    assert parse_command(bytes((0x9F, 0x02, 1, 0x02))) == NonceReport(1, sos=False, mos=True)
    assert parse_command(bytes((0x9F, 0x0C, 0x02))) == TransferEnd(key_verified=True)
