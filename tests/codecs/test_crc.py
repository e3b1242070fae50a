"""The CRC-16 variants against their catalogue check values (CRC of b"123456789")."""

from __future__ import annotations

import pytest

from modules.codecs.crc import CRC16_ARC, CRC16_EN13757, CRC16_X25, CRC16_XMODEM, Crc16

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
