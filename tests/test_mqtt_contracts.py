"""What a running MQTT bridge publishes matches the JSON schemas of its contracts
(``gateway.contracts.mqtt``, pinned under ``tests/contracts/mqtt/``): state, events, profile
intervals, billing, the status detail and command replies, whose ``result`` matches the command
table's result type."""

from __future__ import annotations

import functools
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.contracts import mqtt, schema_of
from gateway.engine.commands import COMMANDS
from gateway.engine.records import BillingRecord, ProfileFlag, ProfileRow
from gateway.model import utc_now
from tests.support.mqtt import Collector, until
from tests.support.processes import Broker
from tests.test_mqtt_bridge import BASE, running, settings_text

pytestmark = pytest.mark.network

# The last part of a topic under <base>/<gateway>/<meter>/ and the contract published there.
LEAVES: dict[str, type[Any]] = {
    "state": mqtt.StatePayload,
    "event": mqtt.EventPayload,
    "profile": mqtt.ProfilePayload,
    "billing": mqtt.BillingPayload,
    "reply": mqtt.CommandReply,
    "detail": mqtt.StatusDetail,
}


def problems(schema: dict[str, Any], document: Any) -> list[str]:
    return [
        f"{list(error.path)}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(document)
    ]


def test_the_validator_sees_a_payload_that_breaks_its_contract() -> None:
    schema = schema_of(mqtt.StatePayload)
    good = {"meter": "main", "seq": 1, "at": None, "readings": {}}
    assert problems(schema, good) == []
    assert problems(schema, {**good, "seq": "1"})
    assert problems(schema, {k: v for k, v in good.items() if k != "readings"})


async def test_every_payload_a_running_bridge_publishes_matches_its_contract(
    broker: Broker, tmp_path: Path
) -> None:
    collector = Collector(broker.port)
    try:
        async with running(settings_text(tmp_path / "data", broker.port)) as h:
            h.sample()
            h.start()
            await until(lambda: h.bridge.connected, 30, "the bridge connected")
            h.event(1)
            start = utc_now().replace(second=0, microsecond=0)
            h.bridge.on_profile(
                "main",
                ProfileRow(
                    start,
                    start + timedelta(minutes=15),
                    {"1-0:1.8.0": Decimal("0.250")},
                    ProfileFlag.POWER_OUTAGE,
                ),
            )
            h.bridge.on_billing(
                "main",
                BillingRecord(
                    3,
                    utc_now(),
                    {
                        "1-0:1.8.0": Decimal("99.5"),
                        "1-0:1.6.0": {
                            "value": Decimal("4200"),
                            "date": "2026-12-01",
                            "hour": "18:15",
                            "at": "2026-12-01T17:15:00+00:00",
                        },
                    },
                ),
            )
            await collector.apublish(f"{BASE}/set/resend_discovery", b'{"id": "ok-1"}')
            await collector.apublish(f"{BASE}/main/set/set_tariff", b'{"tariff": 9}')

            def published(leaf: str) -> bool:
                return any(m.topic.endswith(f"/{leaf}") for m in collector.messages)

            for leaf in ("state", "event", "profile", "billing", "detail"):
                await until(functools.partial(published, leaf), 30, f"a {leaf} message")
            await until(lambda: len(collector.on(f"{BASE}/reply")) >= 1, 30, "the gateway reply")
            await until(lambda: len(collector.on(f"{BASE}/main/reply")) >= 1, 30, "the refusal")
        checked: dict[str, int] = {}
        for message in collector.messages:
            if not message.topic.startswith(BASE) or not message.payload:
                continue
            leaf = message.topic.rsplit("/", 1)[1]
            contract = LEAVES.get(leaf)
            if contract is None:
                continue
            document = message.json()
            assert problems(schema_of(contract), document) == [], message.topic
            checked[leaf] = checked.get(leaf, 0) + 1
        assert set(checked) == set(LEAVES), f"only {sorted(checked)} were checked"
        (ok,) = [m.json() for m in collector.on(f"{BASE}/reply")]
        assert ok["ok"] is True
        result_schema = schema_of(COMMANDS["resend_discovery"].result)
        assert problems(result_schema, ok["result"]) == []
        (refused,) = [m.json() for m in collector.on(f"{BASE}/main/reply")]
        assert refused["ok"] is False and "result" not in refused
        assert refused["error"]["code"] in ("bad_argument", "commands_disabled")
    finally:
        collector.close()
