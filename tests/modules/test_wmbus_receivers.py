"""wM-Bus receivers: each host side against its device side and against known bytes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, FatalAdapterError
from modules.codecs.wmbus.layers import strip_crcs
from modules.wmbus.receivers import (
    Device,
    Heard,
    Receiver,
    Rejected,
    Reply,
    amber,
    check_modes,
    cul,
    imst,
    lines,
    make_device,
    make_receiver,
)

# An Omnipower telegram as logged (wmbusmeters' omnipower test), no DLL CRCs.
OMNIPOWER = bytes.fromhex(
    "27442D2C5768663230028D20E900C91C2011BA79138CCCFB1A030000000000000300000000000000"
)
BINARY = ("im871a", "iu891a", "amb8465", "amb8665", "cul")


def handshake(receiver: Receiver, device: Device) -> list[bytes]:
    """Run the setup dialogue between a host side and a device side; returns the commands."""
    sent = []
    command = receiver.setup(None)
    while command is not None:
        assert command, "the first reply must be the awaited one here"
        sent.append(command)
        replies = [i for i in receiver.feed(device.answer(command)) if isinstance(i, Reply)]
        assert replies, f"no reply to {command!r}"
        command = receiver.setup(replies[0])
    return sent


def feed_in_pieces(receiver: Receiver, data: bytes, size: int) -> list[object]:
    out: list[object] = []
    for start in range(0, len(data), size):
        out += receiver.feed(data[start : start + size])
    return out


def telegrams(items: Sequence[object]) -> list[bytes]:
    """Heard telegrams with their DLL CRCs removed (what the codec works on)."""
    return [strip_crcs(i.telegram, i.dll_crcs)[0] for i in items if isinstance(i, Heard)]


@pytest.mark.parametrize("kind", [*BINARY, "rtlwmbus", "hex"])
def test_device_and_host_agree_one_byte_at_a_time(kind: str) -> None:
    modes = ["C1", "T1"] if kind in BINARY else []
    receiver, device = make_receiver(kind, modes), make_device(kind)
    handshake(receiver, device)
    items = feed_in_pieces(receiver, device.indication(OMNIPOWER, -71.5) * 2, 1)
    assert telegrams(items) == [OMNIPOWER, OMNIPOWER]
    heard = [i for i in items if isinstance(i, Heard)]
    if kind != "rtlwmbus":  # rtl_wmbus reports its own level, not dBm
        assert all(abs((h.rssi_dbm or 0) - -71.5) <= 0.5 for h in heard)


def test_im871a_setup_bytes_and_link_modes() -> None:
    receiver, device = imst.Im871a(["C1", "T1"]), imst.Im871aDevice()
    sent = handshake(receiver, device)
    assert sent[0] == bytes.fromhex("A5010F00")  # GET_DEVICEINFO_REQ
    # SET_CONFIG_REQ: temporary, link mode C1/T1 (0x0A), RSSI on, timestamp off
    assert sent[1] == bytes.fromhex("A501030600020A300100")
    assert device.link_mode == 0x0A
    assert receiver.device_info == "im871a firmware 0x15 uid 00A1B2C3"
    for modes, value in ((["T1"], 3), (["C1"], 6), (["S1"], 0)):
        device = imst.Im871aDevice()
        handshake(imst.Im871a(modes), device)
        assert device.link_mode == value


def test_im871a_refuses_c1_and_t1_on_old_firmware_and_the_wrong_stick() -> None:
    with pytest.raises(FatalAdapterError, match=r"0x13 cannot listen to C1 and T1"):
        handshake(imst.Im871a(["C1", "T1"]), imst.Im871aDevice(firmware=0x13))
    handshake(imst.Im871a(["T1"]), imst.Im871aDevice(firmware=0x13))
    with pytest.raises(FatalAdapterError, match="is an im170a"):
        handshake(imst.Im871a(["T1"]), imst.Im871aDevice(module=0x36))


def test_im871a_indication_known_bytes_crc_and_resync() -> None:
    receiver = imst.Im871a(["T1"])
    # flags C (CRC) | 4 (RSSI): A5 C2 03 len, payload without L, RSSI 0x7D, CRC16/X-25 LE
    frame = imst.hci_frame(2, 3, OMNIPOWER[1:], rssi=0x7D, crc=True)
    assert frame[:4] == bytes([0xA5, 0xC2, 0x03, 0x27])
    assert imst.crc16_x25(b"123456789") == 0x906E  # the CRC-16/X-25 check value
    corrupt = frame[:20] + bytes([frame[20] ^ 1]) + frame[21:]
    items = receiver.feed(b"\x00\xa5\x17garbage" + corrupt + frame)
    assert any(isinstance(i, Rejected) for i in items)
    heard = [i for i in items if isinstance(i, Heard)]
    assert [h.telegram for h in heard] == [OMNIPOWER]
    assert heard[0].rssi_dbm == imst.rssi_to_dbm(0x7D) == -60.0


def test_iu891a_indication_as_captured() -> None:
    # An RX_MESSAGE_IND as a real iU891A sent it (wmbusmeters' comment in wmbus_iu891a.cc).
    wire = bytes.fromhex(
        "C009209F436D38000002E71844AE4C4455223368077A55000000041389E20100023B0000AF59C0"
    )
    items = imst.Iu891a(["C1"]).feed(wire)
    assert items == [
        Heard(
            bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000"),
            dll_crcs="none",
            rssi_dbm=-25.0,
        )
    ]


def test_iu891a_setup_keeps_the_stick_settings_and_checks_status() -> None:
    device = imst.Iu891aDevice()
    device.config[1] = 0x09  # filter + recalibration set by someone else
    sent = handshake(imst.Iu891a(["C1", "T1"]), device)
    assert sent[0].startswith(b"\xc0" * 8)
    assert device.config[0] == 3  # C/T
    assert int.from_bytes(device.config[1:3], "little") == 0x0A  # filter off, RX on, recal kept
    refusal = imst.iu891a_message(imst.SAP_WMBUSGW, imst.SET_ACTIVE_CONFIG_RSP, b"\x03")
    receiver = imst.Iu891a(["C1"])
    receiver.setup(None)
    get = imst.iu891a_message(imst.SAP_WMBUSGW, imst.GET_ACTIVE_CONFIG_RSP, bytes(12))
    receiver.setup(next(i for i in receiver.feed(get) if isinstance(i, Reply)))
    with pytest.raises(FatalAdapterError, match="wrong parameter"):
        receiver.setup(next(i for i in receiver.feed(refusal) if isinstance(i, Reply)))


def test_slip_escapes_round_trip() -> None:
    telegram = bytes([0x0E, 0x44, 0xC0, 0xDB, 0xC0, 0xDB, 0xDC, 0xDD, 1, 2, 3, 4, 5, 6, 7])
    items = imst.Iu891a(["T1"]).feed(imst.Iu891aDevice().indication(telegram, -50))
    assert telegrams(items) == [telegram]


def test_amber_commands_checksums_and_raw_mode() -> None:
    assert amber.command(0x0B) == bytes.fromhex("FF0B00F4")  # CMD_SERIALNO_REQ
    assert amber.command(0x0A, b"\x00\x80") == bytes.fromhex("FF0A02008077")  # CMD_GET_REQ
    receiver, device = amber.Amber(["C1", "T1"]), amber.AmberDevice()
    sent = handshake(receiver, device)
    assert sent[1] == amber.command(0x04, b"\x09")
    assert device.link_mode == 0x09
    # Raw output (UART_CMD_Out_Enable off): L C ... RSSI, no framing
    raw_receiver, raw_device = amber.Amber(["T1"]), amber.AmberDevice()
    raw_device.params[amber.PARAM_CMD_OUT_ENABLE] = 0
    handshake(raw_receiver, raw_device)
    assert raw_receiver.feed(OMNIPOWER + b"\x20") == [
        Heard(OMNIPOWER, dll_crcs="auto", rssi_dbm=16 - 74)
    ]
    bad = bytearray(device.indication(OMNIPOWER, -70))
    bad[-1] ^= 0xFF
    items = receiver.feed(bytes(bad) + device.indication(OMNIPOWER, -70))
    assert isinstance(items[0], Rejected)
    assert telegrams(items) == [OMNIPOWER]


def test_amber_without_rssi_and_refused_mode() -> None:
    receiver, device = amber.Amber(["T1"]), amber.AmberDevice()
    device.params[amber.PARAM_RSSI_ENABLE] = 0
    handshake(receiver, device)
    assert receiver.device_info == "telegrams framed, RSSI off"
    items = receiver.feed(amber.command(0x03, OMNIPOWER[1:]))
    assert items == [Heard(OMNIPOWER, dll_crcs="auto", rssi_dbm=None)]
    receiver = amber.Amber(["T1"])
    receiver.setup(None)
    receiver.setup(Reply("GET_CNF"))
    with pytest.raises(FatalAdapterError, match="refused"):
        receiver.setup(Reply("SET_MODE_CNF", payload=b"\x01"))


def test_cul_lines_with_lqi_and_rssi() -> None:
    receiver = cul.Cul(["C1", "T1"])
    assert receiver.setup(None) == b"X21\r\nbrc\r\n"
    assert receiver.setup(Reply("TEXT", detail="V 1.67")) == b""
    assert receiver.setup(Reply("CMODE")) is None
    framed_a = cul._with_crcs_a(OMNIPOWER)
    assert len(framed_a) == cul.format_a_length(OMNIPOWER[0]) == 40 + 2 * 3
    # LQI byte 0xAA: CRC_OK bit and link quality 42; RSSI 0xC8 = -56 -> -56/2 - 74 dBm
    line = b"b" + framed_a.hex().upper().encode() + b"AAC8\r\n"
    (heard,) = receiver.feed(line)
    assert isinstance(heard, Heard)
    assert (heard.dll_crcs, heard.lqi, heard.rssi_dbm) == ("A", 42, -102.0)
    assert strip_crcs(heard.telegram, "A")[0] == OMNIPOWER
    # Format B (C1): "bY", L counts the CRCs; and without X21 there is no status
    line_b = b"bY" + cul._with_crcs_b(OMNIPOWER).hex().encode() + b"\n"
    (heard_b,) = receiver.feed(line_b)
    assert isinstance(heard_b, Heard)
    assert (heard_b.dll_crcs, heard_b.mode, heard_b.rssi_dbm) == ("B", "C1", None)
    assert strip_crcs(heard_b.telegram, "B")[0] == OMNIPOWER
    # Noise in front of a telegram line costs nothing; a cut-off telegram is rejected.
    noisy = b"\x13\xe7xb" + line[:-2] + b"\r\n"
    items = receiver.feed(b"b12zz\r\n" + noisy + b"b2744\r\nTMODE\r\n")
    assert [type(i) for i in items] == [Reply, Heard, Rejected, Reply]
    assert items[0] == Reply("TEXT", detail="b12zz")


def test_cul_without_wmbus_firmware_is_fatal() -> None:
    receiver = cul.Cul(["T1"])
    receiver.setup(None)
    (reply,) = receiver.feed(cul.CulDevice().answer(b"bogus\r\n"))
    assert isinstance(reply, Reply)
    with pytest.raises(FatalAdapterError, match="culfw"):
        receiver.setup(reply)


def test_rtl_wmbus_lines() -> None:
    receiver = lines.RtlWmbus()
    assert receiver.setup(None) is None
    good = f"C1;1;1;2020-01-23 10:25:13.000;97;148;32666857;0x{OMNIPOWER.hex()}\n"
    bad = f"T1;0;1;2020-01-23 10:25:14.000;97;148;32666857;0x{OMNIPOWER.hex()}\n"
    items = receiver.feed(f"rtl_wmbus v0.1 started\n{good}{bad}".encode())
    assert items[0] == Heard(OMNIPOWER, dll_crcs="auto", rssi_dbm=97.0, mode="C1")
    assert isinstance(items[1], Rejected) and "bad CRC" in items[1].reason


def test_hex_lines_formats() -> None:
    receiver = lines.HexLines()
    text = (
        "# a comment\n\n"
        f"{OMNIPOWER.hex()}\n"
        f"telegram=|{OMNIPOWER.hex().upper()}|+96\n"
        f"{OMNIPOWER.hex(' ')};rssi=-80.5\r\n"
        "not hex\n"
    )
    items = receiver.feed(text.encode())
    assert telegrams(items) == [OMNIPOWER] * 3
    assert [i.rssi_dbm for i in items if isinstance(i, Heard)] == [None, None, -80.5]
    assert isinstance(items[-1], Rejected)
    assert receiver.feed(b"ab" * 2000) == [Rejected("line too long", b"ab" * 32)]


def test_link_mode_checks() -> None:
    check_modes("im871a", ["C1", "T1"])
    check_modes("rtlwmbus", ["S1", "T1", "C1"])
    with pytest.raises(ConfigError, match="cannot listen to S1\\+T1"):
        check_modes("cul", ["T1", "S1"])
    with pytest.raises(ConfigError, match="cannot listen to C1"):
        check_modes("im170a", ["C1"])
    with pytest.raises(ConfigError, match="unknown link mode"):
        check_modes("im871a", ["X1"])


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(BINARY),
    payload=st.binary(min_size=11, max_size=200),
    rssi=st.integers(-120, -20),
    piece=st.integers(1, 64),
    junk=st.binary(max_size=8),
)
def test_any_telegram_survives_framing_and_chunking(
    kind: str, payload: bytes, rssi: int, piece: int, junk: bytes
) -> None:
    telegram = bytes([len(payload)]) + payload
    receiver, device = make_receiver(kind, ["T1"]), make_device(kind)
    handshake(receiver, device)
    frame = device.indication(telegram, rssi)
    items = feed_in_pieces(receiver, frame + frame, piece)
    assert telegrams(items) == [telegram, telegram]
    # Line noise without a frame start costs at most the frame it hits, never the following.
    junk = bytes(b for b in junk if b not in b"\xa5\xc0\xffbY\n")
    receiver.feed(junk + b"\n" if kind == "cul" else junk)
    later = feed_in_pieces(receiver, frame * 3, piece)
    assert telegrams(later)[-2:] == [telegram, telegram]
