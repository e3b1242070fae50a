"""Recorded wM-Bus traffic, a line feeder for hex receivers and configs for the cluster roles."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from modules.codecs.wmbus.layers import parse_link, strip_crcs
from modules.wmbus.emulator import OmnipowerTransmitter
from tests.support.processes import ROOT, Broker, free_port

VECTORS = ROOT / "tests" / "fixtures" / "vectors" / "wmbus.json"
BASE = "meter-gateway"


@dataclass(frozen=True)
class Telegram:
    """One recorded telegram with the radio address and key it needs."""

    data: bytes
    manufacturer: str
    address: str
    key: str

    @property
    def meter(self) -> str:
        """The gateway meter it feeds in these tests."""
        return f"w{self.address}"


def recorded_traffic(omnipower_telegrams: int = 0) -> list[Telegram]:
    """Real encrypted telegrams from the vectors (each once), then ``omnipower_telegrams``
    full frames of two emulated Omnipower meters (AES-CTR, access numbers counting up)."""
    seen: set[bytes] = set()
    out: list[Telegram] = []
    for vector in json.loads(VECTORS.read_text()):
        key = vector.get("key")
        if vector.get("frame_type") != "wmbus" or not key or not vector.get("decrypt_verified"):
            continue
        data = bytes.fromhex(vector["hex"])
        body, _, _ = strip_crcs(data, "auto")
        if body[1:] in seen:
            continue
        seen.add(body[1:])
        link = parse_link(body)
        out.append(Telegram(data, link.manufacturer_code, link.id, key.upper()))
    start = datetime(2026, 3, 1, tzinfo=UTC)
    meters = [
        OmnipowerTransmitter(meter_id=f"{90000001 + n}", seed=n, full_every=1, start=start)
        for n in range(2)
    ]
    for n in range(omnipower_telegrams):
        meter = meters[n % len(meters)]
        data = meter.telegram(16.0)
        assert meter.key is not None
        out.append(Telegram(data, "KAM", meter.meter_id, meter.key.hex().upper()))
    return out


def subscriptions_logged(workdir: Path) -> Broker:
    """A started mosquitto whose log shows each subscription (``<client id> <qos> <filter>``),
    so a test can wait until workers and engines listen before anything is published."""
    broker = Broker(workdir, "log_type subscribe\nlog_type error\nlog_type warning\n")
    broker.start()
    return broker


def meters_of(traffic: list[Telegram]) -> dict[str, Telegram]:
    """One telegram per address (its key and meter id), by address."""
    return {t.address: t for t in traffic}


class LineFeeder:
    """A TCP server a hex receiver (``device = "socket://..."``) connects to; lines are
    written to whoever is connected, after the connection exists."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._connection: socket.socket | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self._connection = connection
            self._connected.set()

    def send(self, telegram: bytes, rssi: float, timeout_s: float) -> None:
        """One hex line with its RSSI, once the receiver is connected."""
        if not self._connected.wait(timeout_s):
            raise TimeoutError(f"no receiver connected to port {self.port}")
        assert self._connection is not None
        self._connection.sendall(f"{telegram.hex().upper()};rssi={rssi:g}\n".encode())

    def close(self) -> None:
        """Stop listening and drop the connection."""
        self._server.close()
        if self._connection is not None:
            self._connection.close()


def _common(name: str, data_dir: Path, port: int) -> str:
    return f"""
[gateway]
name = "{name}"
data_dir = "{data_dir}"

[mqtt]
host = "127.0.0.1"
port = {port}
keepalive_s = 5
discovery = false
outbox_spill_after_s = 1.0

[http]
enabled = false

[zeroconf]
enabled = false
"""


def receiver_config(tmp: Path, name: str, broker_port: int, feeder_port: int) -> Path:
    """A receiver-mode gateway: one hex wM-Bus receiver, no meters, frames to the broker."""
    path = tmp / f"{name}.toml"
    path.write_text(
        _common(name, tmp / name, broker_port)
        + f"""
[cluster]
receiver = true

[[modules]]
type = "wmbus"
name = "radio"
receiver = "hex"
device = "socket://127.0.0.1:{feeder_port}"
"""
    )
    return path


def worker_config(
    tmp: Path, name: str, broker_port: int, traffic: list[Telegram], group: str = "decoders"
) -> Path:
    """A decode worker holding the keys of every meter in ``traffic``."""
    meters = "".join(
        f"""
[[modules.meters]]
id = "{t.address}"
key = "{t.key}"
meter = "{t.meter}"
"""
        for t in meters_of(traffic).values()
    )
    path = tmp / f"{name}.toml"
    path.write_text(
        _common(name, tmp / name, broker_port)
        + f"""
[[modules]]
type = "decode_worker"
name = "decoder"
group = "{group}"
session_expiry_s = 600
{meters}"""
    )
    return path


def engine_config(
    tmp: Path, name: str, broker_port: int, http_port: int, traffic: list[Telegram]
) -> Path:
    """An engine gateway owning every meter in ``traffic``, fed from the broker."""
    meters = "".join(f'[[meters]]\nid = "{t.meter}"\n\n' for t in meters_of(traffic).values())
    path = tmp / f"{name}.toml"
    path.write_text(
        _common(name, tmp / name, broker_port).replace(
            "[http]\nenabled = false", f'[http]\nbind = "127.0.0.1"\nport = {http_port}'
        )
        + f"""
{meters}
[[modules]]
type = "meter_feed"
name = "feed"
session_expiry_s = 600
"""
    )
    return path
