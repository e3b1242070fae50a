"""Text-line receivers: rtl_wmbus output, and raw hex telegrams (one per line).

rtl_wmbus (an SDR decoder, usually ``rtl_sdr ... | rtl_wmbus``) prints
``MODE;CRC_OK;3OUTOF6_OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_ID;0x<hex>``; its RSSI is the
decoder's own level in dB, not calibrated dBm. Hex lines may be bare hex (spaces allowed),
wmbusmeters' ``telegram=|<hex>|`` log format, or hex followed by ``;rssi=<dBm>``; ``#`` starts
a comment. Either may still carry DLL CRCs: the codec detects format A/B.
"""

from __future__ import annotations

from datetime import UTC, datetime

from modules.wmbus.receivers import Heard, Item, Rejected, Reply

__all__ = ["HexDevice", "HexLines", "RtlWmbus", "RtlWmbusDevice"]

_MAX_LINE = 2048


class _LineReceiver:
    baudrate = 115200  # only used when the lines come over a tty

    def __init__(self) -> None:
        self.device_info = ""
        self._buffer = bytearray()

    def setup(self, reply: Reply | None) -> bytes | None:
        """Nothing to set up: the source decides what it hears."""
        return None

    def feed(self, data: bytes) -> list[Item]:
        """Lines in; telegrams out."""
        buffer = self._buffer
        buffer += data
        out: list[Item] = []
        while (end := buffer.find(b"\n")) >= 0:
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            line = raw.decode("ascii", errors="replace").strip()
            if line and not line.startswith("#"):
                item = self._line(line)
                if item is not None:
                    out.append(item)
        if len(buffer) > _MAX_LINE:
            out.append(Rejected("line too long", bytes(buffer[:64])))
            buffer.clear()
        return out

    def _line(self, line: str) -> Heard | Rejected | None:
        raise NotImplementedError


class RtlWmbus(_LineReceiver):
    """rtl_wmbus lines."""

    kind = "rtlwmbus"

    def _line(self, line: str) -> Heard | Rejected | None:
        fields = line.split(";")
        hex_field = next((f for f in reversed(fields) if f.startswith("0x")), None)
        if hex_field is None:
            return None  # rtl_wmbus also prints status text
        if len(fields) >= 2 and fields[1] == "0":
            return Rejected(f"rtl_wmbus: {fields[0]} telegram with a bad CRC", line.encode())
        try:
            telegram = bytes.fromhex(hex_field[2:])
        except ValueError:
            return Rejected("rtl_wmbus line with bad hex", line.encode())
        if not telegram:
            return Rejected("rtl_wmbus line without a telegram", line.encode())
        rssi = _number(fields[4]) if len(fields) > 4 else None
        mode = fields[0] if fields[0] in ("C1", "T1", "S1") else None
        return Heard(telegram, dll_crcs="auto", rssi_dbm=rssi, mode=mode)


class HexLines(_LineReceiver):
    """One hex telegram per line."""

    kind = "hex"

    def _line(self, line: str) -> Heard | Rejected | None:
        rssi = None
        if line.startswith("telegram="):
            line = line.removeprefix("telegram=").strip("|").split("|")[0]
        elif ";" in line:
            line, _, extra = line.partition(";")
            key, _, value = extra.partition("=")
            rssi = _number(value) if key.strip() == "rssi" else None
        text = line.replace(" ", "").replace("_", "")
        try:
            telegram = bytes.fromhex(text)
        except ValueError:
            return Rejected("line is not hex", line.encode()[:64])
        if not telegram:
            return None
        return Heard(telegram, dll_crcs="auto", rssi_dbm=rssi)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class HexDevice:
    """A hex-line source: ``HEX;rssi=-70``."""

    def answer(self, data: bytes) -> bytes:
        """Nothing to answer."""
        return b""

    def indication(self, telegram: bytes, rssi_dbm: float) -> bytes:
        """One line."""
        return f"{telegram.hex().upper()};rssi={rssi_dbm:g}\n".encode()


class RtlWmbusDevice:
    """Lines as rtl_wmbus prints them (C1, CRC and 3-out-of-6 OK)."""

    def answer(self, data: bytes) -> bytes:
        """Nothing to answer."""
        return b""

    def indication(self, telegram: bytes, rssi_dbm: float) -> bytes:
        """One rtl_wmbus line."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.000")
        link_id = telegram[4:8][::-1].hex()
        level = round(rssi_dbm + 160)  # rtl_wmbus levels are positive numbers
        return f"C1;1;1;{stamp};{level};{level};{link_id};0x{telegram.hex()}\n".encode()
