"""What a running MQTT bridge publishes matches the JSON schemas of its contracts
(``gateway.contracts.mqtt``, pinned under ``tests/contracts/mqtt/``): state, events, profile
intervals, billing, the status detail and command replies, whose ``result`` matches the command
table's result type."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from gateway.commands import table as command_table
from gateway.config import MeterConfig
from gateway.contracts import mqtt, schema_of
from gateway.engine import Register
from gateway.engine.commands import COMMANDS
from gateway.engine.records import BillingRecord, ProfileFlag, ProfileRow
from gateway.model import utc_now
from gateway.mqtt.discovery import Discovery
from gateway.mqtt.payloads import Topics
from tests.support.mqtt import Collector, until
from tests.support.processes import Broker
from tests.test_mqtt_bridge import BASE, running, settings_text

pytestmark = pytest.mark.network

TOPICS = Topics("meter-gateway", "home", "homeassistant")
METER = MeterConfig(id="main")

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


# Home Assistant reads the payloads through discovery's templates: every field they name must be
# in the contract of the topic they read, and every button must send a command of the table that
# MQTT may send and that takes no arguments (a button sends PRESS).

_TEMPLATE_PATH = re.compile(r"value_json((?:\.\w+|\[[^\]]+\])+)")
_STEP = re.compile(r"\.(\w+)|\[([^\]]+)\]")


def _walk(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema of ``path`` (``.readings['x'].value``) inside ``schema``; KeyError if absent."""
    root = schema
    node = schema
    for name, _key in _STEP.findall(path):
        while "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        node = node["properties"][name] if name else node["additionalProperties"]
    return node


def test_discovery_templates_read_fields_the_payloads_have_and_buttons_send_table_commands() -> (
    None
):
    discovery = Discovery("home", TOPICS, unsigned_commands=True)
    at = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    registers = {
        code: Register(code, value, unit, at)
        for code, value, unit in (
            ("1-0:1.8.0", Decimal("1234.5"), "kWh"),
            ("1-0:1.7.0", 1500.0, "W"),
            ("1-0:1.6.0", 4200.0, "W"),
            ("0-0:96.14.0", 2, None),
            ("breaker_state", "connected", None),
        )
    }
    contracts = {"state": schema_of(mqtt.StatePayload), "detail": schema_of(mqtt.StatusDetail)}
    table = command_table()
    templates = buttons = 0
    for _topic, config in (discovery.gateway_config(), discovery.meter_config(METER, registers)):
        for component in config["components"].values():
            template = component.get("value_template")
            if template is not None:
                # a component's own topic, else the one the device's components share
                topic = component.get("state_topic") or config["state_topic"]
                leaf = topic.rsplit("/", 1)[1]
                for path in _TEMPLATE_PATH.findall(template):
                    _walk(contracts[leaf], path)  # KeyError: a field the payload does not have
                    templates += 1
            if component.get("platform") == "button":
                name = component["command_topic"].rsplit("/", 1)[1]
                spec = table[name]
                assert "mqtt" in spec.senders, name
                assert not msgspec.structs.fields(spec.args), f"{name} needs arguments"
                buttons += 1
    assert templates >= 6 and buttons == 3
    with pytest.raises(KeyError):
        _walk(contracts["state"], ".readings['x'].valeur")
