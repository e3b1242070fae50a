"""The CRC-16 variants against their catalogue check values (CRC of b"123456789")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.codecs.crc import (
    CRC16_ARC,
    CRC16_EN13757,
    CRC16_X25,
    CRC16_XMODEM,
    MASK_BYTES,
    Crc16,
)

CHECK = b"123456789"


@pytest.mark.parametrize(
    ("crc", "expected"),
    [
        (CRC16_XMODEM, 0x31C3),
        (CRC16_ARC, 0xBB3D),
        (CRC16_X25, 0x906E),
        (CRC16_EN13757, 0xC2B7),
    ],
)
def test_catalogue_check_values(crc: Crc16, expected: int) -> None:
    assert crc(CHECK) == expected
    assert crc(b"") == crc.init ^ crc.xorout


def _bitwise(data: bytes, poly: int, init: int, xorout: int, reflected: bool) -> int:
    """The CRC one bit at a time, straight from its definition: no table at all."""
    crc = init
    for wire in data:
        byte = int(f"{wire:08b}"[::-1], 2) if reflected else wire
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ poly if crc & 0x8000 else crc << 1) & 0xFFFF
    if reflected:
        crc = int(f"{crc:016b}"[::-1], 2)
    return crc ^ xorout


VARIANTS = [
    (CRC16_XMODEM, 0x1021, 0, 0, False),
    (CRC16_ARC, 0x8005, 0, 0, True),
    (CRC16_X25, 0x1021, 0xFFFF, 0xFFFF, True),
    (CRC16_EN13757, 0x3D65, 0, 0xFFFF, False),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=["xmodem", "arc", "x25", "en13757"])
@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=300))
def test_long_inputs_two_bytes_at_a_time_match_the_bitwise_definition(
    variant: tuple[Crc16, int, int, int, bool], data: bytes
) -> None:
    crc, poly, init, xorout, reflected = variant
    assert crc(data) == _bitwise(data, poly, init, xorout, reflected)


@pytest.mark.parametrize("variant", VARIANTS, ids=["xmodem", "arc", "x25", "en13757"])
@settings(max_examples=10, deadline=None)
@given(data=st.binary(min_size=MASK_BYTES - 4, max_size=MASK_BYTES + 4))
def test_messages_around_the_longest_masked_length_match_the_bitwise_definition(
    variant: tuple[Crc16, int, int, int, bool], data: bytes
) -> None:
    crc, poly, init, xorout, reflected = variant
    assert crc(data) == _bitwise(data, poly, init, xorout, reflected)
