"""Two gateways on one broker, each with a meter called "main", never mix their data."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.configs import sim_gateway_toml
from tests.support.mqtt import Collector
from tests.support.processes import Broker, gateway

pytestmark = [pytest.mark.network, pytest.mark.slow]

WAIT_S = 60.0  # generous: two gateways start on a possibly busy machine


def config(tmp_path: Path, name: str, port: int, pv_kwp: float) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        sim_gateway_toml(tmp_path / name, name=name, mqtt_port=port, interval_s=0.2, pv_kwp=pv_kwp)
    )
    return path


def test_two_gateways_keep_their_own_topics_status_and_commands(
    broker: Broker, tmp_path: Path
) -> None:
    collector = Collector(broker.port, ("meter-gateway/#", "homeassistant/#"))
    try:
        cellar = config(tmp_path, "cellar", broker.port, 0.0)
        attic = config(tmp_path, "attic", broker.port, 5.0)
        with (
            gateway(cellar, log=tmp_path / "cellar.log"),
            gateway(attic, log=tmp_path / "attic.log") as attic_process,
        ):
            names = ("cellar", "attic")
            for name in names:
                collector.wait_for(f"meter-gateway/{name}/main/state", timeout_s=WAIT_S)
            online = {f"meter-gateway/{name}/status" for name in names}
            collector.wait(
                lambda ms: online <= {m.topic for m in ms if m.payload == b"online"}, WAIT_S
            )
            # Discovery: one device per meter per gateway, each reading its own topics.
            configs = {
                m.topic: m.json()
                for m in collector.messages
                if m.topic.endswith("/config") and m.payload
            }
            meter_docs = [doc for topic, doc in configs.items() if topic.endswith("_main/config")]
            assert {doc["state_topic"] for doc in meter_docs} == {
                "meter-gateway/cellar/main/state",
                "meter-gateway/attic/main/state",
            }
            ids = [c["unique_id"] for doc in meter_docs for c in doc["components"].values()]
            assert len(ids) == len(set(ids)), "a unique_id is shared between the gateways"

            # A gateway command reaches only the gateway it names.
            collector.publish("meter-gateway/cellar/set/resend_discovery", b"PRESS")
            collector.wait_for("meter-gateway/cellar/reply", timeout_s=WAIT_S)
            assert not collector.on("meter-gateway/attic/reply")

            # Stopping one leaves the other online.
            attic_process.send_signal(signal.SIGTERM)
            attic_process.wait(30)
            collector.wait(
                lambda ms: any(
                    m.topic == "meter-gateway/attic/status" and m.payload == b"offline" for m in ms
                ),
                WAIT_S,
            )
            cellar_status = collector.on("meter-gateway/cellar/status")
            assert cellar_status[-1].payload == b"online"
            # Nothing was ever published in the old shared layout but its clearing.
            shared = [m for m in collector.messages if m.topic.startswith("meter-gateway/main/")]
            assert all(not m.payload for m in shared)
    finally:
        collector.close()
