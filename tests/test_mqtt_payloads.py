"""MQTT payloads and discovery configs as pure functions (no broker)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import obis
from gateway.config import MeterConfig
from gateway.contracts import encode, mqtt
from gateway.engine import Register
from gateway.engine.records import BillingRecord, ProfileFlag, ProfileRow
from gateway.errors import CommandError
from gateway.model import Event, Value
from gateway.mqtt.discovery import Discovery
from gateway.mqtt.payloads import (
    Topics,
    billing_payload,
    command_id_of,
    event_payload,
    iso,
    parse_command,
    profile_payload,
    reading_key,
    reply_payload,
    state_payload,
    value_text,
)

AT = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
TOPICS = Topics("meter-gateway", "home", "homeassistant")


def register(code: str, value: Value, unit: str | None, at: datetime = AT) -> Register:
    return Register(code, value, unit, at)


def test_topics_carry_the_gateway_name() -> None:
    assert TOPICS.state("main") == "meter-gateway/home/main/state"
    assert TOPICS.status == "meter-gateway/home/status"
    assert TOPICS.commands == ("meter-gateway/home/+/set/+", "meter-gateway/home/set/+")
    assert TOPICS.parse_command("meter-gateway/home/main/set/top_up") == ("main", "top_up")
    assert TOPICS.parse_command("meter-gateway/home/main/state") is None
    assert TOPICS.parse_command("other/home/main/set/x") is None
    assert TOPICS.value("main", "1-0:99.1.0") == "meter-gateway/home/main/value/1-0_99_1_0"
    # The gateway's own commands and replies sit at its root, named by the gateway.
    assert TOPICS.command("home", "resend_discovery") == "meter-gateway/home/set/resend_discovery"
    assert TOPICS.parse_command("meter-gateway/home/set/resend_discovery") == (
        "home",
        "resend_discovery",
    )
    assert TOPICS.reply("home") == "meter-gateway/home/reply"
    nested = Topics("home/meters", "attic")
    assert nested.parse_command("home/meters/attic/main/set/x") == ("main", "x")


def test_two_gateways_share_no_topic() -> None:
    cellar, attic = Topics("meter-gateway", "cellar"), Topics("meter-gateway", "attic")
    mine = {cellar.state("main"), cellar.availability("main"), cellar.command("main", "x")}
    theirs = {attic.state("main"), attic.availability("main"), attic.command("main", "x")}
    assert not mine & theirs
    assert cellar.status != attic.status
    assert attic.parse_command(cellar.command("main", "disconnect")) is None


def test_the_old_layout_is_listed_for_clearing() -> None:
    assert TOPICS.legacy(["main"]) == [
        "meter-gateway/status",
        "meter-gateway/status/detail",
        "meter-gateway/main/state",
        "meter-gateway/main/availability",
        "meter-gateway/main/billing",
    ]


def test_state_payload_is_exact_and_timestamped() -> None:
    later = AT + timedelta(seconds=5)
    payload = state_payload(
        "main",
        {
            "1-0:1.8.0": register("1-0:1.8.0", Decimal("1234.567"), "kWh"),
            "1-0:1.7.0": register("1-0:1.7.0", 1520.5, "W", later),
            "flow_temperature": register("flow_temperature", 41, "°C"),
        },
        seq=42,
    )
    assert b'"value":1234.567' in payload
    document = json.loads(payload)
    assert document["seq"] == 42
    assert document["at"] == "2025-03-01T12:00:05.250Z"
    assert document["readings"]["energy_import"] == {
        "value": 1234.567,
        "unit": "kWh",
        "obis": "1-0:1.8.0",
        "at": "2025-03-01T12:00:00.250Z",
    }
    assert document["readings"]["flow_temperature"]["obis"] is None
    assert value_text(Decimal("1E+3")) == b"1000"


def _state_reading_by_reading(meter: str, registers: dict[str, Register], seq: int) -> bytes:
    """The contract's state message built the plain way: one StateReading per register in the
    order of the codes, the newest time as the message's."""
    readings = {}
    for code in sorted(registers):
        reg = registers[code]
        try:
            obis.parse(code)
            obis_code: str | None = code
        except ValueError:
            obis_code = None  # a protocol's own name
        readings[reading_key(code)] = mqtt.StateReading(
            value=reg.value, unit=reg.unit, obis=obis_code, at=iso(reg.at)
        )
    latest = max((reg.at for reg in registers.values()), default=None)
    return encode(
        mqtt.StatePayload(
            meter=meter, seq=seq, at=iso(latest) if latest else None, readings=readings
        )
    )


_CODES = ["1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:32.7.0", "0-0:96.8.0", "flow", "quadrant"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_CODES),
            st.one_of(
                st.decimals(allow_nan=False, allow_infinity=False, places=3),
                st.integers(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=5),
            ),
            st.sampled_from([None, "kWh", "W"]),
            st.integers(min_value=0, max_value=5_000),
        ),
        max_size=len(_CODES),
        unique_by=lambda entry: entry[0],
    ),
    st.randoms(use_true_random=False),
)
def test_state_payload_is_the_contract_built_reading_by_reading(
    entries: list[tuple[str, Value, str | None, int]], shuffle: Any
) -> None:
    """The quick build (each set of codes laid out once) gives the plain build's bytes, in
    whatever order the registers come and however often the same codes come again."""
    registers = {
        code: register(code, value, unit, AT + timedelta(milliseconds=ms))
        for code, value, unit, ms in entries
    }
    reordered = list(registers.items())
    shuffle.shuffle(reordered)
    expected = _state_reading_by_reading("main", registers, 7)
    assert state_payload("main", registers, 7) == expected
    assert state_payload("main", dict(reordered), 7) == expected
    assert state_payload("main", registers, 7) == expected


def test_equal_decimals_keep_their_own_digits_message_after_message() -> None:
    """1.0 and 1.00 are equal Decimals but different JSON: each keeps its digits, message after
    message (a value written exactly, as the meter gave it); a non-finite one is refused."""
    one, one_00 = Decimal("1.0"), Decimal("1.00")
    registers = {
        "1-0:1.8.0": register("1-0:1.8.0", one, "kWh"),
        "1-0:2.8.0": register("1-0:2.8.0", one_00, "kWh"),
    }
    for _ in range(3):
        payload = state_payload("main", registers, 1)
        assert b'"energy_import":{"value":1.0,' in payload
        assert b'"energy_export":{"value":1.00,' in payload
        assert payload == _state_reading_by_reading("main", registers, 1)
    with pytest.raises(ValueError, match="non-finite"):
        state_payload("main", {"1-0:1.8.0": register("1-0:1.8.0", Decimal("NaN"), "kWh")}, 2)


def test_event_profile_and_billing_payloads() -> None:
    event = json.loads(event_payload(7, Event("main", AT, "phase_loss", "L2 lost", {"phase": 2})))
    assert event == {
        "id": 7,
        "meter": "main",
        "at": "2025-03-01T12:00:00.250Z",
        "kind": "phase_loss",
        "detail": "L2 lost",
        "data": {"phase": 2},
    }
    row = ProfileRow(
        AT,
        AT + timedelta(minutes=15),
        {"1-0:1.8.0": Decimal("0.125"), "1-0:3.8.0": Decimal("0.010")},
        ProfileFlag.PARTIAL | ProfileFlag.POWER_OUTAGE,
    )
    profile = json.loads(profile_payload("main", row))
    assert profile["flags"] == ["power_outage", "partial"]
    assert profile["status"] == 5
    assert profile["values"]["energy_import"] == {
        "value": 0.125,
        "unit": "kWh",
        "obis": "1-0:1.8.0",
    }
    assert profile["values"]["reactive_import"]["unit"] == "kvarh"
    billing = json.loads(billing_payload("main", BillingRecord(3, AT, {"1-0:1.8.0": "12.5"})))
    assert billing["number"] == 3
    assert billing["values"] == {"1-0:1.8.0": "12.5"}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"{", "not valid JSON"),
        (b'{"id": "a",}', "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'["x"]', "not a list"),
        (b'{"id": 1.5}', '"id" must be a string or an integer, not float'),
        (b'{"id": null, "id2": 1}', None),
        (b'{"id": ""}', "1 to 64 characters"),
        (b"\xc3\x28", "not UTF-8"),
        (b"x" * 5000, "at most 4096"),
    ],
)
def test_bad_command_payloads_are_named(payload: bytes, words: str | None) -> None:
    if words is None:
        command = parse_command("main", "x", payload)
        assert command.args == {"id2": 1}
        return
    with pytest.raises(CommandError) as caught:
        parse_command("main", "x", payload)
    assert caught.value.code == "bad_payload"
    assert words in str(caught.value)


def test_good_command_payloads() -> None:
    command = parse_command("main", "top_up", b'{"id": 12, "amount": 50}')
    assert (command.meter, command.name, command.id, command.source) == (
        "main",
        "top_up",
        "12",
        "mqtt",
    )
    assert command.args == {"amount": 50}
    plain = parse_command("main", "resend_discovery", b" PRESS ")
    assert plain.args == {} and plain.id
    empty = parse_command("main", "resend_discovery", b"")
    assert empty.args == {} and empty.id != plain.id
    with pytest.raises(CommandError, match="must match"):
        parse_command("main", "bad name!", b"")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_payload_gives_a_command_or_a_bad_payload_error(payload: bytes) -> None:
    try:
        parse_command("main", "x", payload)
    except CommandError as err:
        assert err.code == "bad_payload"
    command_id_of(payload)  # never raises either


def test_a_deeply_nested_payload_is_refused_and_never_raises_anything_else() -> None:
    payload = b'{"id": "deep", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert command_id_of(payload) is None
    assert command_id_of(b"[" * 100_000) is None
    with pytest.raises(CommandError) as refused:
        parse_command("main", "x", payload)
    assert refused.value.code == "bad_payload"


def test_reply_payloads() -> None:
    ok = json.loads(reply_payload("a", "x", result={"published": 2}))
    assert ok == {"id": "a", "command": "x", "ok": True, "result": {"published": 2}}
    failed = json.loads(reply_payload(None, "x", error=CommandError("bad_args", "no")))
    assert failed == {
        "id": None,
        "command": "x",
        "ok": False,
        "error": {"code": "bad_args", "message": "no"},
    }


def test_discovery_of_unusual_values() -> None:
    discovery = Discovery("home", TOPICS)
    meter = MeterConfig(id="main")
    topic, config = discovery.meter_config(
        meter,
        {
            "1-0:1.8.0": register("1-0:1.8.0", Decimal(1), "KWh"),  # a unit HA rejects
            "1-0:99.8.0": register("1-0:99.8.0", 5, "m³"),  # unknown, cumulative (D = 8)
            "1-0:99.7.0": register("1-0:99.7.0", 5, "x"),  # unknown instantaneous
            "0-0:96.1.0": register("0-0:96.1.0", "5706567", None),
            "meter_text": register("meter_text", "hello", None),
        },
    )
    assert topic == "homeassistant/device/meter-gateway_home_main/config"
    assert config["device"]["serial_number"] == "5706567"
    assert config["device"]["name"] == "Meter main"
    parts = config["components"]
    assert "device_class" not in parts["energy_import"]
    assert parts["energy_import"]["unit_of_measurement"] == "KWh"
    assert parts["1-0_99_8_0"]["state_class"] == "total_increasing"
    assert parts["1-0_99_8_0"]["value_template"] == "{{ value_json.readings['1-0:99.8.0'].value }}"
    assert parts["1-0_99_7_0"]["state_class"] == "measurement"
    assert parts["serial_number"]["entity_category"] == "diagnostic"
    assert "state_class" not in parts["meter_text"]
    assert "unit_of_measurement" not in parts["meter_text"]
    gateway_topic, gateway = discovery.gateway_config()
    assert gateway_topic == "homeassistant/device/meter-gateway_home/config"
    button = gateway["components"]["resend_discovery"]
    assert button["platform"] == "button"
    assert button["command_topic"] == "meter-gateway/home/set/resend_discovery"
    # The connectivity sensor can read "off": its availability is not the topic it reports.
    status = gateway["components"]["status"]
    assert "availability_topic" not in status and "availability_topic" not in gateway
    assert status["state_topic"] == "meter-gateway/home/status"
    assert button["availability_topic"] == "meter-gateway/home/status"


def test_arguments_nested_under_args_may_contain_an_id() -> None:
    payload = b'{"id": "c-9", "args": {"id": "topup-1", "sequence": 3, "amount": "10"}}'
    command = parse_command("main", "top_up", payload)
    assert command.id == "c-9"
    assert command.args == {"id": "topup-1", "sequence": 3, "amount": "10"}
    with pytest.raises(CommandError, match="only other key"):
        parse_command("main", "top_up", b'{"args": {"a": 1}, "b": 2}')


def _discovered(ha_version: str) -> dict[str, Any]:
    discovery = Discovery("home", TOPICS, ha_version=ha_version)
    meter = MeterConfig(id="main")
    registers = {
        "1-0:3.8.0": register("1-0:3.8.0", Decimal("1.5"), "kvarh"),
        "1-0:4.8.0": register("1-0:4.8.0", Decimal("0.5"), "kvarh"),
        "quadrant": register("quadrant", 4, None),
        "breaker_actuator": register("breaker_actuator", "relay1", None),
    }
    _topic, document = discovery.meter_config(meter, registers)
    return dict(document["components"])


def test_reactive_energy_gets_its_device_class_only_where_home_assistant_knows_it() -> None:
    old = _discovered("2025.5")
    assert "device_class" not in old["reactive_import"]
    assert old["reactive_import"]["unit_of_measurement"] == "kvarh"
    assert old["reactive_import"]["state_class"] == "total_increasing"
    new = _discovered("2025.6")
    assert new["reactive_import"]["device_class"] == "reactive_energy"


def test_entity_names_are_distinct_words_and_states_are_not_measurements() -> None:
    parts = _discovered("2025.6")
    names = [part["name"] for part in parts.values()]
    assert names.count("Reactive energy import R+") == 1
    assert "Reactive energy export R-" in names
    # Home Assistant builds entity ids from names without "+" and "-": they must differ in words.
    slugs = {re.sub(r"[^a-z0-9]+", "_", n.lower()).strip("_") for n in names}
    assert len(slugs) == len(names)
    quadrant = parts["quadrant"]
    assert (quadrant["name"], quadrant["device_class"]) == ("Quadrant", "enum")
    assert quadrant["options"] == ["1", "2", "3", "4"]
    assert "state_class" not in quadrant
    assert quadrant["entity_category"] == "diagnostic"
    assert parts["breaker_actuator"]["name"] == "Breaker actuator"


def test_breaker_controls_only_where_unsigned_commands_are_allowed() -> None:
    meter = MeterConfig(id="main")
    registers = {"breaker_state": register("breaker_state", "connected", None)}
    locked = Discovery("home", TOPICS)
    _topic, document = locked.meter_config(meter, registers)
    parts = document["components"]
    state = parts["breaker_state"]
    assert (state["name"], state["device_class"]) == ("Breaker", "enum")
    assert state["options"] == ["connected", "disconnected", "ready_for_reconnection"]
    assert state["value_template"] == "{{ value_json.readings['breaker_state'].value }}"
    assert not [p for p in parts.values() if p["platform"] == "button"]
    opened = Discovery("home", TOPICS, unsigned_commands=True)
    _topic, document = opened.meter_config(meter, registers)
    buttons = {k: p for k, p in document["components"].items() if p["platform"] == "button"}
    assert {b["command_topic"] for b in buttons.values()} == {
        "meter-gateway/home/main/set/disconnect",
        "meter-gateway/home/main/set/reconnect",
    }
    # What a button sends is what the command topics accept.
    for button in buttons.values():
        name = button["command_topic"].rsplit("/", 1)[1]
        assert parse_command("main", name, button["payload_press"].encode()).name == name


def test_per_entity_discovery_carries_what_the_device_document_says_once() -> None:
    discovery = Discovery("home", TOPICS)
    meter = MeterConfig(id="main", name="Main meter")
    registers = {
        "1-0:1.8.0": register("1-0:1.8.0", Decimal("12.5"), "kWh"),
        "1-0:1.7.0": register("1-0:1.7.0", Decimal(300), "W"),
    }
    topic, document = discovery.meter_config(meter, registers)
    entities = dict(discovery.per_entity(topic, document))
    node = "meter-gateway_home_main"
    energy = entities[f"homeassistant/sensor/{node}/energy_import/config"]
    assert energy["unique_id"] == document["components"]["energy_import"]["unique_id"]
    assert energy["device_class"] == "energy" and energy["unit_of_measurement"] == "kWh"
    assert energy["state_topic"] == "meter-gateway/home/main/state"
    assert energy["device"]["name"] == "Main meter"
    assert energy["availability"] == document["availability"]
    assert "platform" not in energy and "components" not in energy
    assert len(entities) == len(document["components"])
    # The gateway's own entities keep their own state topics and platforms.
    gateway_topic, gateway = discovery.gateway_config()
    own = dict(discovery.per_entity(gateway_topic, gateway))
    status = own["homeassistant/binary_sensor/meter-gateway_home/status/config"]
    assert status["state_topic"] == "meter-gateway/home/status"
    assert "availability_topic" not in status
    button = own["homeassistant/button/meter-gateway_home/resend_discovery/config"]
    assert button["command_topic"] == "meter-gateway/home/set/resend_discovery"
