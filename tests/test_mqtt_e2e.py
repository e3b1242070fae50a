"""`meter-gateway run` against a real mosquitto: last will on kill -9, nothing lost in outages."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.mqtt import Collector, Received, persistent_broker
from tests.support.on_disk import on_disk
from tests.support.processes import Broker, gateway

pytestmark = [pytest.mark.network, pytest.mark.slow]

BASE = "meter-gateway/home"  # <base_topic>/<gateway name>
STATE = f"{BASE}/main/state"
# The sim advances its meter clock by interval_s * speed per sample.
SPEED = 60.0
INTERVAL_S = 0.2
STEP = timedelta(seconds=SPEED * INTERVAL_S)


def write_config(tmp_path: Path, port: int, mqtt: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
name = "home"
data_dir = "{tmp_path / "data"}"
timezone = "Europe/Copenhagen"
persist_interval_s = 0.5
shutdown_timeout_s = 10.0

[mqtt]
host = "localhost"
port = {port}
keepalive_s = 5
{mqtt}

[http]
enabled = false

[zeroconf]
enabled = false

[[meters]]
id = "main"
name = "Simulated 382L"

[[modules]]
type = "sim"
name = "sim1"
meter = "main"
speed = {SPEED}
interval_s = {INTERVAL_S}
pv_kwp = 4.0
"""
    )
    return path


def final_seq(tmp_path: Path) -> int:
    """The last state sequence number the gateway queued, from its store."""
    with on_disk(tmp_path / "data" / "gateway.db") as db:
        row = db.execute(
            "SELECT json_extract(notes, '$.mqtt_seq') FROM meter_checkpoint WHERE meter = 'main'"
        ).fetchone()
        left = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert left == 0, f"{left} messages were never acknowledged"
    return int(row[0])


def check_states(messages: list[Received], last_seq: int) -> int:
    """Every state from the first seen to ``last_seq`` arrived; times strictly increase."""
    first_copy: dict[int, dict[str, object]] = {}
    order: list[int] = []
    for message in messages:
        document = message.json()
        seq = int(document["seq"])
        if seq not in first_copy:  # QoS 1: a re-sent copy may follow; it must be identical
            first_copy[seq] = document
            order.append(seq)
        else:
            assert first_copy[seq] == document
    assert order == sorted(order), "states arrived out of order"
    assert order == list(range(order[0], last_seq + 1)), "a state message is missing"
    previous_at: datetime | None = None
    previous_total = Decimal(0)
    for seq in order:
        document = first_copy[seq]
        at = datetime.fromisoformat(str(document["at"]))
        readings = document["readings"]
        assert isinstance(readings, dict)
        total = Decimal(str(readings["energy_import"]["value"]))
        if previous_at is not None:
            gap = at - previous_at
            assert gap > timedelta(0), f"seq {seq}: time went from {previous_at} to {at}"
            # Contiguous: each flush holds a whole number of the sim's samples.
            assert gap % STEP == timedelta(0), f"seq {seq}: {gap} is not a multiple of {STEP}"
        assert total >= previous_total
        previous_at, previous_total = at, total
    return len(order)


def test_last_will_says_offline_when_the_gateway_is_killed(tmp_path: Path, broker: Broker) -> None:
    config = write_config(tmp_path, broker.port)
    watcher = Collector(broker.port, (f"{BASE}/status",))
    try:
        with gateway(config, log=tmp_path / "gateway.log") as process:
            watcher.wait(lambda ms: any(m.payload == b"online" for m in ms), 20)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            watcher.wait(lambda ms: ms[-1].payload == b"offline", 10)
    finally:
        watcher.close()
    late = Collector(broker.port, (f"{BASE}/status",))
    try:
        late.wait_for(f"{BASE}/status")
        assert late.on(f"{BASE}/status")[-1].payload == b"offline"
        assert late.on(f"{BASE}/status")[-1].retain
    finally:
        late.close()


def test_every_state_arrives_in_order_through_a_broker_outage(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    broker.start()
    subscriber = Collector(broker.port, (STATE,), client_id="checker", persistent=True)
    try:
        with gateway(write_config(tmp_path, broker.port), log=tmp_path / "gateway.log"):
            subscriber.wait_for(STATE, 3, 20)
            broker.stop()
            time.sleep(4.0)  # ~8 flushes and ~20 simulated minutes with nobody to talk to
            broker.start()
            subscriber.wait(lambda ms: len({m.payload for m in ms}) >= 15, 30)
        received = check_states(subscriber.on(STATE), final_seq(tmp_path))
    finally:
        subscriber.close()
        broker.stop()
    assert received >= 15


def test_every_state_arrives_across_a_gateway_restart_during_the_outage(
    tmp_path: Path,
) -> None:
    broker = persistent_broker(tmp_path)
    broker.start()
    subscriber = Collector(broker.port, (STATE,), client_id="checker", persistent=True)
    config = write_config(tmp_path, broker.port)
    log = tmp_path / "gateway.log"
    try:
        with gateway(config, log=log):
            subscriber.wait_for(STATE, 3, 20)
            broker.stop()
            time.sleep(2.0)
        queued_after_first_run = final_seq_unchecked(tmp_path)
        with gateway(config, log=log):
            time.sleep(2.0)
            broker.start()
            subscriber.wait(
                lambda ms: any(m.json()["seq"] > queued_after_first_run + 2 for m in ms), 30
            )
        received = check_states(subscriber.on(STATE), final_seq(tmp_path))
    finally:
        subscriber.close()
        broker.stop()
    assert received >= queued_after_first_run


def final_seq_unchecked(tmp_path: Path) -> int:
    with on_disk(tmp_path / "data" / "gateway.db") as db:
        row = db.execute(
            "SELECT json_extract(notes, '$.mqtt_seq') FROM meter_checkpoint WHERE meter = 'main'"
        ).fetchone()
        waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert waiting > 0, "the first run had no broker: its states must still be queued"
    return int(row[0])


def spilled_state_seqs(tmp_path: Path) -> list[int]:
    """State sequence numbers in the on-disk outbox, in id order (decoded as the gateway does)."""
    from gateway.mqtt.outbox import _unpack  # noqa: PLC0415 - the one decoder of rows on disk

    with on_disk(tmp_path / "data" / "gateway.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute(
            "SELECT payload, encoding FROM outbox WHERE topic = ? ORDER BY id", (STATE,)
        ).fetchall()
    return [
        Received(STATE, _unpack(payload, encoding), True).json()["seq"]
        for payload, encoding in rows
    ]


def test_messages_spilled_before_a_kill_nine_arrive_first_and_in_order_after_restart(
    tmp_path: Path,
) -> None:
    broker = persistent_broker(tmp_path)
    broker.start()
    subscriber = Collector(broker.port, (STATE,), client_id="checker", persistent=True)
    config = write_config(tmp_path, broker.port, "outbox_spill_after_s = 0.5")
    log = tmp_path / "gateway.log"
    try:
        with gateway(config, log=log) as process:
            subscriber.wait_for(STATE, 3, 30)
            assert spilled_state_seqs(tmp_path) == [], "a broker that keeps up costs no rows"
            broker.stop()
            deadline = time.monotonic() + 60
            while len(spilled_state_seqs(tmp_path)) < 10:
                assert time.monotonic() < deadline, "the outage was never spilled to disk"
                time.sleep(0.2)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        spilled = spilled_state_seqs(tmp_path)
        assert spilled == sorted(spilled)
        broker.start()
        with gateway(config, log=log):
            subscriber.wait(lambda ms: {m.json()["seq"] for m in ms} >= set(spilled), 60)
            # A state of the new run follows the backlog.
            subscriber.wait(lambda ms: ms[-1].json()["seq"] > spilled[-1], 60)
        order: list[int] = []
        for message in subscriber.on(STATE):
            seq = message.json()["seq"]
            if seq not in order:
                order.append(seq)
        assert order == sorted(order), "the backlog went first, in order"
        # After the kill the numbers jump: what sat in memory is a visible gap, never reused.
        after = [seq for seq in order if seq > spilled[-1]]
        assert after and after[0] > spilled[-1] + 1
    finally:
        subscriber.close()
        broker.stop()
