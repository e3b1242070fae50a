"""Broker faults: restarts with persistence off, a broker that never answers CONNECT, one that
drops the connection mid-publish, one that refuses the credentials.

The gateway keeps counting, says what is wrong once, backs off instead of spinning, and delivers
what waited in its outbox when a broker takes messages again.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.harness import bounded, cpu_share, cycles, figure, gateway_process, wait_for_log
from tests.faults.peers import CuttingProxy, SilentPeer
from tests.support.configs import sim_gateway_toml
from tests.support.mqtt import RUN_AS_INVOKER, Collector, Received
from tests.support.on_disk import on_disk
from tests.support.processes import Broker

pytestmark = [pytest.mark.network, pytest.mark.slow, bounded(240)]

BASE = "meter-gateway/home"  # <base_topic>/<gateway name>
STATE = f"{BASE}/main/state"
# The gateway's own CONNECT wait (aiomqtt's timeout, gateway.mqtt.bridge.PUBLISH_TIMEOUT_S)
# plus margin.
CONNECT_GIVE_UP_S = 90.0
# Reconnect backoff is capped at a minute (gateway.backoff.MAX_DELAY_S): after a long outage the
# next attempt may be that far off.
RECONNECT_S = 90.0
# A process waiting on a broker uses next to no CPU; a spin would pin a core (1.0).
IDLE_CPU_SHARE = 0.15


def write_config(tmp_path: Path, port: int, extra_mqtt: str = "", speed: float = 60.0) -> Path:
    path = tmp_path / "gateway.toml"
    # What the broker does not take goes to the on-disk outbox (where store_facts looks) at once.
    spill = "outbox_spill_after_s = 1.0"
    path.write_text(
        sim_gateway_toml(
            tmp_path / "data",
            persist_interval_s=0.5,
            mqtt_port=port,
            mqtt=f"{spill}\n{extra_mqtt}",
            speed=speed,
            interval_s=0.2,
        )
    )
    return path


def store_facts(tmp_path: Path) -> tuple[int, int]:
    """(last state sequence number queued, messages still waiting in the outbox)."""
    with on_disk(tmp_path / "data" / "gateway.db") as db:
        row = db.execute(
            "SELECT json_extract(notes, '$.mqtt_seq') FROM meter_checkpoint WHERE meter = 'main'"
        ).fetchone()
        waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return (int(row[0]) if row and row[0] else 0), int(waiting)


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not within {timeout_s} s")


def test_outages_with_broker_persistence_off_end_with_state_status_and_discovery_back(
    tmp_path: Path, broker: Broker
) -> None:
    """A broker without persistence forgets every retained message; the gateway restores them."""
    config = write_config(tmp_path, broker.port)
    log = tmp_path / "gateway.log"
    outage_s = 3.0 if not cycles(0) else 60.0
    restarts = cycles(quick=2, soak=5)
    with gateway_process(config, log):
        first = Collector(broker.port, (f"{BASE}/status",))
        try:
            first.wait(lambda ms: any(m.payload == b"online" for m in ms), 30)
        finally:
            first.close()
        for _ in range(restarts):
            broker.stop()
            time.sleep(outage_s)
            queued = store_facts(tmp_path)[1]
            assert queued > 0, "readings made during the outage wait in the outbox"
            broker.start()
            # Everything queued before the broker came back is older than this state.
            seq = store_facts(tmp_path)[0]
            late = Collector(broker.port, (f"{BASE}/status", STATE, "homeassistant/#"))
            try:
                late.wait(
                    lambda ms: any(m.topic.startswith("homeassistant/") for m in ms), RECONNECT_S
                )

                def caught_up(ms: list[Received], since: int = seq) -> bool:
                    return any(m.topic == STATE and m.json()["seq"] >= since for m in ms)

                late.wait(caught_up, 30)
                assert late.on(f"{BASE}/status")[-1].payload == b"online"
            finally:
                late.close()
            # A newcomer gets the status from the broker's memory: it was retained again.
            newcomer = Collector(broker.port, (f"{BASE}/status",))
            try:
                (status,) = newcomer.wait_for(f"{BASE}/status", 1, 10)
                assert status.retain and status.payload == b"online"
            finally:
                newcomer.close()
    figure("broker restarts with persistence off, outage s", f"{restarts} x {outage_s:.0f}")


def test_a_broker_that_never_answers_connect_is_left_with_a_clear_line_and_no_spin(
    tmp_path: Path,
) -> None:
    silent = SilentPeer()
    try:
        config = write_config(tmp_path, silent.port, speed=1.0)
        log = tmp_path / "gateway.log"
        with gateway_process(config, log) as started:
            text = wait_for_log(log, f"MQTT broker 127.0.0.1:{silent.port}:", CONNECT_GIVE_UP_S)
            assert "retrying in" in text
            share = cpu_share(started.process.pid, 5.0)
            window_start = time.monotonic()
            time.sleep(10.0)
            again = silent.connections_since(window_start)
            assert started.process.poll() is None
        assert share < IDLE_CPU_SHARE, f"{share:.0%} of a core while waiting for CONNACK"
        # One CONNECT wait is 30 s: two attempts in 10 s would mean no wait at all.
        assert again <= 1
        assert "Traceback" not in log.read_text()
    finally:
        silent.stop()
    figure("CPU while a broker never answers CONNECT, share of a core", f"{share:.3f}")


def test_a_connection_cut_mid_publish_loses_no_state_message(
    tmp_path: Path, broker: Broker
) -> None:
    cuts = cycles(quick=2, soak=10)
    proxy = CuttingProxy(broker.port, cuts=cuts, seed=17)
    subscriber = Collector(broker.port, (STATE,))
    try:
        config = write_config(tmp_path, proxy.port)
        log = tmp_path / "gateway.log"
        with gateway_process(config, log):
            # A cut is noticed when its socket closes (in the greeting too: while_linked), then
            # the backoff; 45 s a cut is PUBLISH_TIMEOUT_S for a cut no socket reports, and more.
            wait_until(lambda: proxy.connections > cuts, 60 + 45 * cuts, "every cut connection")
            subscriber.wait_for(STATE, 5, 30)
        last, waiting = store_facts(tmp_path)
        assert waiting == 0, "SIGTERM drains the outbox through the healthy connection"
        subscriber.wait(lambda ms: any(m.json()["seq"] == last for m in ms), 30)
        seen = {m.json()["seq"] for m in subscriber.on(STATE)}
        missing = sorted(set(range(1, last + 1)) - seen)
        assert not missing, f"state messages lost across the cuts: {missing[:20]}"
    finally:
        subscriber.close()
        proxy.stop()
    figure("MQTT connections cut mid-publish, state messages lost", f"{cuts} cuts, 0 lost")


def test_refused_credentials_give_one_clear_line_a_long_backoff_and_no_password_in_the_log(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path)
    passwords = tmp_path / "passwd"
    passwords.touch()
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), "gateway", "right-password"],
        check=True,
        capture_output=True,
    )
    broker.config.write_text(
        RUN_AS_INVOKER
        + f"listener {broker.port} 127.0.0.1\nallow_anonymous false\n"
        + f"password_file {passwords}\npersistence false\n"
    )
    broker.start()
    counter = CuttingProxy(broker.port, cuts=0)
    secret = tmp_path / "mqtt-password"
    secret.write_text("wrong-Pa55word-xyzzy\n")
    try:
        config = write_config(
            tmp_path, counter.port, f'username = "gateway"\npassword_file = "{secret}"', speed=1.0
        )
        log = tmp_path / "gateway.log"
        with gateway_process(config, log) as started:
            text = wait_for_log(log, f"MQTT broker 127.0.0.1:{counter.port}:", 60)
            share = cpu_share(started.process.pid, 5.0)
            time.sleep(10.0)
        line = next(x for x in text.splitlines() if f"127.0.0.1:{counter.port}:" in x)
        assert "not authori" in line.lower() or "password" in line.lower(), line
        assert "retrying in 60.0 s" in line
        assert counter.connections == 1, "credentials the broker refused are not retried at once"
        assert share < IDLE_CPU_SHARE
        whole = log.read_text()
        assert "wrong-Pa55word-xyzzy" not in whole
        assert "Traceback" not in whole
    finally:
        counter.stop()
        broker.stop()
    figure("refused credentials: connection attempts in 15 s", counter.connections)


def _json(payload: bytes) -> dict[str, object]:
    document = json.loads(payload)
    assert isinstance(document, dict)
    return document
