"""Past one Pi: receivers, decode workers and engines on one real MQTT 5 broker (issue 23)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cluster.wire import RAW_FORMAT, WireError, raw_payload, read_raw, receiver_of
from gateway.config import loads, meter_bucket
from gateway.errors import ConfigError
from gateway.model import RawFrame
from tests.support.cluster import BASE, LineFeeder, receiver_config, recorded_traffic
from tests.support.mqtt import Collector, persistent_broker
from tests.support.processes import gateway

WAIT_S = 60.0  # several gateways start on a possibly busy machine


# wire formats ------------------------------------------------------------------------------------


def test_raw_payload_round_trip_keeps_time_rssi_and_bytes() -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    frame = RawFrame("radio", "wmbus", bytes.fromhex("2a442d2c"), at, -71.5)
    payload = raw_payload(frame)
    assert payload[0] == RAW_FORMAT and len(payload) == 11 + 4
    assert read_raw(payload) == (at, -71.5, bytes.fromhex("2a442d2c"))
    unknown = raw_payload(RawFrame("radio", "wmbus", b"\x01", at - timedelta(days=1)))
    assert read_raw(unknown)[1] is None


@pytest.mark.parametrize(
    ("payload", "why"),
    [(b"\x01" * 11, "shorter"), (b"\x02" + b"\x00" * 12, "format 2")],
)
def test_a_broken_raw_payload_says_why(payload: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        read_raw(payload)


def test_receiver_of_a_raw_topic() -> None:
    assert receiver_of(BASE, f"{BASE}/raw/wmbus/attic/radio") == ("wmbus", "attic/radio")
    with pytest.raises(WireError, match="is not"):
        receiver_of(BASE, f"{BASE}/raw/wmbus/attic")


# receiver mode ----------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_receiver_publishes_every_frame_with_time_and_rssi_through_an_outage(
    tmp_path: Path,
) -> None:
    broker = persistent_broker(tmp_path)  # the reader's session survives the outage
    broker.start()
    traffic = recorded_traffic()[:6]
    feeder = LineFeeder()
    collector = Collector(broker.port, (f"{BASE}/raw/#",), client_id="raw-reader", persistent=True)
    topic = f"{BASE}/raw/wmbus/cellar/radio"
    try:
        config = receiver_config(tmp_path, "cellar", broker.port, feeder.port)
        with gateway(config, log=tmp_path / "cellar.log"):
            for n, telegram in enumerate(traffic[:3]):
                feeder.send(telegram.data, -60.0 - n, WAIT_S)
            collector.wait_for(topic, 3, WAIT_S)
            broker.stop()  # an outage: the receiver keeps hearing, the outbox keeps it all
            for n, telegram in enumerate(traffic[3:], start=3):
                feeder.send(telegram.data, -60.0 - n, WAIT_S)
            broker.start()
            collector.wait(
                lambda ms: len({m.payload for m in ms if m.topic == topic}) == len(traffic),
                WAIT_S,
            )
            got = collector.on(topic)
    finally:
        collector.close()
        feeder.close()
        broker.stop()
    # QoS 1 is at least once: a frame in flight when the link broke may come twice.
    frames = [read_raw(payload) for payload in dict.fromkeys(m.payload for m in got)]
    assert [data for _, _, data in frames] == [t.data for t in traffic]
    assert [rssi for _, rssi, _ in frames] == [-60.0 - n for n in range(len(traffic))]
    assert all(abs(at - datetime.now(UTC)) < timedelta(minutes=10) for at, _, _ in frames)


# config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ('[gateway]\nname = "raw"', "gateway.name", "receivers and decode workers share"),
        ("[cluster]\nmeter_hash_range = [10, 10]", "cluster", "0 <= low < high <= 256"),
        ("[cluster]\nmeter_hash_range = [0, 300]", "cluster", "0 <= low < high <= 256"),
        ("[cluster]\nreceivers = true", "cluster", "unknown field `receivers`"),
        ("[cluster]\nreceiver = true\n[mqtt]\nenabled = false", "cluster.receiver", "MQTT"),
    ],
)
def test_cluster_config_errors_name_the_key(text: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        loads(text)
    assert caught.value.path == path


def test_a_hash_range_keeps_only_the_meters_that_hash_into_it() -> None:
    ids = [f"flat{n}" for n in range(40)]
    meters = "".join(f'[[meters]]\nid = "{meter}"\n' for meter in ids)
    low = loads("[cluster]\nmeter_hash_range = [0, 128]\n" + meters)
    high = loads("[cluster]\nmeter_hash_range = [128, 256]\n" + meters)
    kept_low = {m.id for m in low.meters}
    kept_high = {m.id for m in high.meters}
    assert kept_low | kept_high == set(ids) and not kept_low & kept_high
    assert kept_low == {m for m in ids if meter_bucket(m) < 128}
    assert 5 < len(kept_low) < 35  # both halves get a share
