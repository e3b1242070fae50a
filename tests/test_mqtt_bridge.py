"""The MQTT bridge in-process against a real mosquitto: discovery, commands, outbox, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway import config
from gateway.app import Gateway
from gateway.engine.records import BillingRecord, ProfileFlag, ProfileRow
from gateway.model import Event, RawFrame, Reading, Sample, utc_now
from gateway.mqtt import bridge as bridge_module
from gateway.mqtt.bridge import MqttBridge
from gateway.mqtt.presence import ANNOUNCE_BATCH
from tests.faults.peers import CuttingProxy
from tests.support.mqtt import Collector, persistent_broker, secure_broker, until
from tests.support.processes import Broker, free_port

pytestmark = pytest.mark.network

BASE = "meter-gateway/home"  # <base_topic>/<gateway name>
PREFIX = "homeassistant"
MAIN_CONFIG = f"{PREFIX}/device/meter-gateway_home_main/config"
GATEWAY_CONFIG = f"{PREFIX}/device/meter-gateway_home/config"

READINGS = (
    Reading("1-0:1.8.0", Decimal("1234.567"), "kWh"),
    Reading("1-0:2.8.0", Decimal("12.001"), "kWh"),
    Reading("1-0:3.8.0", Decimal("100.5"), "kvarh"),
    Reading("1-0:4.8.0", Decimal("3.25"), "kvarh"),
    Reading("1-0:1.7.0", 1520.5, "W"),
    Reading("1-0:2.7.0", 0.0, "W"),
    Reading("1-0:32.7.0", 231.2, "V"),
    Reading("1-0:31.7.0", 6.61, "A"),
    Reading("1-0:14.7.0", 50.01, "Hz"),
    Reading("1-0:13.7.0", 0.97, None),
    Reading("1-0:1.6.0", 4200.0, "W"),
    Reading("0-0:96.14.0", 2, None),
)


def settings_text(
    data_dir: Path, port: int, mqtt: str = "", meters: tuple[str, ...] = ("main",)
) -> str:
    meter_tables = "".join(
        f'[[meters]]\nid = "{m}"\nname = "Meter {m}"\nmanufacturer = "Kamstrup"\nmodel = "382L"\n'
        for m in meters
    )
    return (
        f'[gateway]\nname = "home"\ndata_dir = "{data_dir}"\n'
        f'[mqtt]\nhost = "localhost"\nport = {port}\n{mqtt}\n'
        "[http]\nenabled = false\n[zeroconf]\nenabled = false\n" + meter_tables
    )


class Harness:
    """A Gateway (without modules) whose only output is a running MqttBridge."""

    def __init__(self, text: str) -> None:
        self.gateway = Gateway(config.loads(text), outputs=lambda _g: [])
        self.bridge = MqttBridge(self.gateway)
        self.gateway.outputs = [self.bridge]
        self.task: asyncio.Task[None] | None = None
        self.at = utc_now()

    def start(self) -> None:
        self.task = asyncio.create_task(self.bridge.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def close(self) -> None:
        self.gateway.store.close()

    def sample(self, meter: str = "main", readings: tuple[Reading, ...] = READINGS) -> None:
        """One sample through the engine, then the flush that publishes state."""
        self.at += timedelta(seconds=1)
        self.gateway.submit("test", Sample(meter, "test", self.at, readings))
        self.gateway.flush()

    def event(self, number: int, meter: str = "main") -> None:
        self.gateway.report(Event(meter, utc_now(), "test_event", f"event {number}", {"n": number}))


@contextlib.asynccontextmanager
async def running(text: str) -> AsyncIterator[Harness]:
    harness = Harness(text)
    try:
        yield harness
    finally:
        await harness.stop()
        harness.close()


@pytest.fixture
def collector(broker: Broker) -> Iterator[Collector]:
    instance = Collector(broker.port)
    try:
        yield instance
    finally:
        instance.close()


def components(collector: Collector, topic: str = MAIN_CONFIG) -> dict[str, Any]:
    components: dict[str, Any] = collector.on(topic)[-1].json()["components"]
    return components


# discovery -------------------------------------------------------------------------------------


async def test_per_entity_discovery_on_the_broker(broker: Broker, tmp_path: Path) -> None:
    text = settings_text(tmp_path / "data", broker.port, mqtt='discovery_mode = "entity"')
    async with running(text) as h:
        h.sample()
        h.start()
        await until(lambda: h.bridge.connected and h.bridge.outbox.waiting == 0)
        late = Collector(broker.port)  # subscribes after the fact: sees only what is retained
        try:
            energy = f"{PREFIX}/sensor/meter-gateway_home_main/energy_import/config"
            await late.arrived(energy)
            document = late.on(energy)[-1].json()
            assert late.on(energy)[-1].retain
            assert document["unique_id"] == "meter-gateway_home_main_energy_import"
            assert document["state_topic"] == f"{BASE}/main/state"
            assert document["device"]["identifiers"] == ["meter-gateway_home_main"]
            await late.arrived(f"{PREFIX}/binary_sensor/meter-gateway_home/status/config")
            assert not late.on(MAIN_CONFIG), "no device document beside the per-entity ones"
        finally:
            late.close()


async def test_discovery_is_retained_and_describes_every_value(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(settings_text(tmp_path / "data", broker.port)) as h:
        h.sample()
        h.start()
        await until(lambda: h.bridge.connected and h.bridge.outbox.waiting == 0)
        await asyncio.sleep(0.3)
        late = Collector(broker.port)  # subscribes after the fact: sees only what is retained
        try:
            await late.arrived(MAIN_CONFIG)
            await late.arrived(f"{BASE}/main/state")
            for topic in (
                MAIN_CONFIG,
                GATEWAY_CONFIG,
                f"{BASE}/status",
                f"{BASE}/status/detail",
                f"{BASE}/main/state",
                f"{BASE}/main/availability",
            ):
                await late.arrived(topic)
                assert late.on(topic)[-1].retain, topic
            assert late.on(f"{BASE}/status")[-1].payload == b"online"
            assert late.on(f"{BASE}/main/availability")[-1].payload == b"online"
            config_doc = late.on(MAIN_CONFIG)[-1].json()
        finally:
            late.close()

    device = config_doc["device"]
    assert device["identifiers"] == ["meter-gateway_home_main"]
    assert device["via_device"] == "meter-gateway_home"
    assert device["manufacturer"] == "Kamstrup"
    assert config_doc["origin"]["name"] == "meter-gateway"
    assert config_doc["availability_mode"] == "all"
    assert [a["topic"] for a in config_doc["availability"]] == [
        f"{BASE}/status",
        f"{BASE}/main/availability",
    ]
    assert config_doc["state_topic"] == f"{BASE}/main/state"
    parts = config_doc["components"]
    expected = {
        "energy_import": ("energy", "kWh", "total_increasing"),
        "energy_export": ("energy", "kWh", "total_increasing"),
        # The default ha_version (2024.11) predates the reactive_energy device class.
        "reactive_import": (None, "kvarh", "total_increasing"),
        "reactive_export": (None, "kvarh", "total_increasing"),
        "power_import": ("power", "W", "measurement"),
        "power_export": ("power", "W", "measurement"),
        "voltage_l1": ("voltage", "V", "measurement"),
        "current_l1": ("current", "A", "measurement"),
        "frequency": ("frequency", "Hz", "measurement"),
        "peak_power": ("power", "W", "measurement"),
    }
    for key, (device_class, unit, state_class) in expected.items():
        part = parts[key]
        assert part["platform"] == "sensor"
        assert part["unique_id"] == f"meter-gateway_home_main_{key}"
        assert part.get("device_class") == device_class, key
        assert part["unit_of_measurement"] == unit, key
        assert part["state_class"] == state_class, key
        assert part["value_template"] == f"{{{{ value_json.readings['{key}'].value }}}}"
    assert parts["power_factor"]["device_class"] == "power_factor"
    assert "unit_of_measurement" not in parts["power_factor"]
    assert parts["tariff"]["device_class"] == "enum"
    assert parts["tariff"]["options"] == ["1", "2", "3", "4"]
    assert "state_class" not in parts["tariff"]
    assert parts["peak_power_time"]["device_class"] == "timestamp"
    assert parts["peak_power_time"]["value_template"].endswith(".at }}")
    # Every value the meter has, and nothing it does not have.
    assert "voltage_l2" not in parts
    unique_ids = [p["unique_id"] for p in parts.values()]
    assert len(unique_ids) == len(set(unique_ids))


async def test_state_payload_carries_units_times_and_exact_numbers(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    async with running(settings_text(tmp_path / "data", broker.port)) as h:
        h.start()
        h.sample()
        state = await collector.arrived(f"{BASE}/main/state")
    raw = collector.on(f"{BASE}/main/state")[-1].payload
    assert b'"value":1234.567' in raw  # a Decimal register is written exactly, as a number
    document = state[-1].json()
    assert document["meter"] == "main"
    reading = document["readings"]["energy_import"]
    assert reading["unit"] == "kWh"
    assert reading["obis"] == "1-0:1.8.0"
    assert reading["at"] == h.at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert document["at"] == reading["at"]


async def test_reannounce_after_home_assistant_birth(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    async with running(settings_text(tmp_path / "data", broker.port)) as h:
        h.sample()
        h.start()
        await collector.arrived(MAIN_CONFIG)
        await collector.arrived(GATEWAY_CONFIG)
        await until(lambda: bool(collector.on(GATEWAY_CONFIG)))
        collector.clear()
        await collector.apublish(f"{PREFIX}/status", b"offline")
        await asyncio.sleep(1.5)
        assert not collector.on(MAIN_CONFIG), "offline must not trigger discovery"
        await collector.apublish(f"{PREFIX}/status", b"online")
        await until(lambda: bool(collector.on(MAIN_CONFIG) and collector.on(GATEWAY_CONFIG)), 5)
        assert "energy_import" in components(collector)


class CountingClient:
    """The real client, with a count of the publishes it was handed so far."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.handed = 0

    async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.handed += 1
        await self.client.publish(topic, payload, **kwargs)


async def test_discovery_of_many_meters_arrives_whole_with_the_loop_served_between_batches(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    meters = tuple(f"m{n:03}" for n in range(3 * ANNOUNCE_BATCH + 5))
    async with running(settings_text(tmp_path / "data", broker.port, meters=meters)) as h:
        for meter in meters:
            h.sample(meter)
        seen_by_others: list[int] = []
        async with aiomqtt.Client("localhost", broker.port) as client:
            counting = CountingClient(client)

            async def other_work() -> None:
                # Another task of the loop (a sample, a request): what it sees of the burst.
                while True:
                    seen_by_others.append(counting.handed)
                    await asyncio.sleep(0)

            watcher = asyncio.create_task(other_work())
            try:
                published = await h.bridge.presence.announce(counting)  # type: ignore[arg-type]
            finally:
                watcher.cancel()
        assert published == len(meters) + 1  # every meter's device and the gateway's
        for meter in meters:
            await collector.arrived(f"{PREFIX}/device/meter-gateway_home_{meter}/config")
        await collector.arrived(GATEWAY_CONFIG)
        assert "energy_import" in components(
            collector, f"{PREFIX}/device/meter-gateway_home_{meters[-1]}/config"
        )
        # Other tasks ran while the documents were handed over, not only before or after.
        assert any(0 < handed < published for handed in seen_by_others), seen_by_others


async def test_discovery_is_asked_for_by_new_registers_not_by_the_published_view(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    async with running(settings_text(tmp_path / "data", broker.port)) as h:
        for second in (1, 2):  # the second sample starts the hour counter the gateway keeps
            h.gateway.submit(
                "test", Sample("main", "test", h.at + timedelta(seconds=second), READINGS)
            )
        h.start()
        await collector.arrived(MAIN_CONFIG)
        await until(lambda: not h.bridge.presence.needs_announce("main"))
        # Until a checkpoint, the published view leaves out what only the gateway counts; the
        # state messages carrying it must not ask for discovery again and again.
        assert set(h.gateway.published("main")) < set(h.gateway.registers("main"))
        h.gateway.publish("main")
        assert not h.bridge.presence.needs_announce("main")
        new = (*READINGS, Reading("1-0:52.7.0", 229.9, "V"))
        h.gateway.submit("test", Sample("main", "test", h.at + timedelta(seconds=3), new))
        assert h.bridge.presence.needs_announce("main")
        await until(lambda: "voltage_l2" in components(collector))


async def test_rediscovery_after_reconnect_to_a_broker_that_forgot(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(settings_text(tmp_path / "data", broker.port)) as h:
        h.sample()
        h.start()
        await until(lambda: h.bridge.connected)
        broker.stop()  # persistence false: every retained message is gone
        await until(lambda: not h.bridge.connected)
        broker.start()
        await until(lambda: h.bridge.connected, 20, "reconnect")
        await asyncio.sleep(0.5)
        late = Collector(broker.port)
        try:
            await late.arrived(MAIN_CONFIG)
            await late.arrived(f"{BASE}/status")
            await late.arrived(f"{BASE}/main/availability")
            assert late.on(MAIN_CONFIG)[-1].retain
            assert late.on(f"{BASE}/status")[-1].payload == b"online"
        finally:
            late.close()


async def test_removed_meter_entities_are_cleared(broker: Broker, tmp_path: Path) -> None:
    data = tmp_path / "data"
    garage = f"{PREFIX}/device/meter-gateway_home_garage/config"
    async with running(settings_text(data, broker.port, meters=("main", "garage"))) as h:
        h.sample("main")
        h.sample("garage")
        h.start()
        await until(lambda: h.bridge.connected and h.bridge.outbox.waiting == 0)
    watcher = Collector(broker.port)
    try:
        await watcher.arrived(garage)
        assert watcher.on(garage)[-1].payload  # retained config exists before
        async with running(settings_text(data, broker.port, meters=("main",))) as h:
            h.start()
            await until(lambda: any(not m.payload for m in watcher.on(garage)), 10)
            await until(lambda: any(not m.payload for m in watcher.on(f"{BASE}/garage/state")))
    finally:
        watcher.close()
    late = Collector(broker.port)
    try:
        await late.arrived(MAIN_CONFIG)
        await asyncio.sleep(0.3)
        assert not late.on(garage), "an empty retained payload deletes the retained config"
        assert not late.on(f"{BASE}/garage/state")
    finally:
        late.close()


# commands --------------------------------------------------------------------------------------


# Fourteen round trips through the broker, each with a generous bound of its own: a loaded
# 2-core machine once took this past the default 60 s.
@pytest.mark.timeout(300)
async def test_commands_reply_with_outcome_and_bad_payloads_change_nothing(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    reply = f"{BASE}/reply"
    command = f"{BASE}/set/resend_discovery"
    async with running(settings_text(tmp_path / "data", broker.port)) as h:
        h.sample()
        h.start()
        await collector.arrived(MAIN_CONFIG)
        await until(lambda: bool(collector.on(GATEWAY_CONFIG)), 30, "gateway discovery")
        await asyncio.sleep(0.3)

        async def ask(payload: bytes, topic: str = command, reply_topic: str = reply) -> Any:
            collector.clear()
            await collector.apublish(topic, payload)
            await until(lambda: bool(collector.on(reply_topic)), 30, f"reply to {payload!r}")
            return collector.on(reply_topic)[-1].json()

        bad = [
            (b'{"id": "c1", "x": ', "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b'{"id": true}', '"id" must be a string or an integer'),
            (b'{"id": "' + b"x" * 80 + b'"}', "1 to 64 characters"),
            (b"\xff\xfe", "not UTF-8"),
            # 2 kB nested 1,000 deep: once a RecursionError that ended the whole MQTT session.
            (b'{"id": "deep", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested too deeply"),
        ]
        for payload, words in bad:
            answer = await ask(payload)
            assert answer["ok"] is False, payload
            assert answer["command"] == "resend_discovery"
            assert answer["error"]["code"] == "bad_payload"
            assert words in answer["error"]["message"], answer
            assert not collector.on(MAIN_CONFIG), "a refused command must change nothing"
        assert (await ask(b'{"id": "c1", "x": '))["id"] is None

        answer = await ask(b'{"id": "c2", "unexpected": 1}')
        assert answer == {
            "id": "c2",
            "command": "resend_discovery",
            "ok": False,
            "error": {"code": "bad_argument", "message": answer["error"]["message"]},
        }
        assert "unexpected" in answer["error"]["message"]

        answer = await ask(b'{"id": "c3"}')
        assert answer == {
            "id": "c3",
            "command": "resend_discovery",
            "ok": True,
            "result": {"published": 2},
        }
        await until(lambda: bool(collector.on(MAIN_CONFIG)), 30, "rediscovery")

        answer = await ask(b"PRESS")  # what a Home Assistant button sends
        assert answer["ok"] is True and answer["id"]

        answer = await ask(b'{"id": 7}', f"{BASE}/main/set/no_such_command", f"{BASE}/main/reply")
        assert answer["id"] == "7"
        assert answer["error"]["code"] == "unknown_command"
        assert "resend_discovery" in answer["error"]["message"]

        answer = await ask(b"{}", f"{BASE}/nowhere/set/resend_discovery", f"{BASE}/nowhere/reply")
        assert answer["error"]["code"] == "unknown_meter"


async def test_unsigned_state_changing_commands_are_off_until_opted_in(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    reply = f"{BASE}/main/reply"
    for opt_in, expected in (("", "commands_disabled"), ("unsigned_commands = true", None)):
        text = settings_text(tmp_path / f"data{bool(opt_in)}", broker.port, opt_in)
        async with running(text) as h:
            h.sample()
            h.start()
            await collector.arrived(MAIN_CONFIG)  # discovery follows the command subscription
            collector.clear()
            await collector.apublish(f"{BASE}/main/set/accept_registers", b'{"id": "a1"}')
            await until(lambda: bool(collector.on(reply)), 20, "reply")
            answer = collector.on(reply)[-1].json()
            if expected is None:
                assert answer["ok"] is True, answer
                assert h.gateway.engines["main"].state.rebase
            else:
                assert answer["error"]["code"] == expected
                assert "command_secret_file" in answer["error"]["message"]
                assert not h.gateway.engines["main"].state.rebase  # nothing changed


async def test_a_retained_command_does_not_run_at_connect(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    command = f"{BASE}/set/resend_discovery"
    collector.publish(command, b'{"id": "retained"}', retain=True)
    try:
        async with running(settings_text(tmp_path / "data", broker.port)) as h:
            h.start()
            await until(lambda: h.bridge.connected)
            await asyncio.sleep(1.0)
            assert not collector.on(f"{BASE}/reply"), "it would run at every reconnect"
    finally:
        await collector.apublish(command, b"", retain=True)


async def test_a_link_cut_while_greeting_the_broker_is_noticed_at_once(
    broker: Broker, tmp_path: Path
) -> None:
    """The cut falls in the greeting (online, subscriptions, discovery): its publishes used to
    wait PUBLISH_TIMEOUT_S (30 s) for PUBACKs that could not come before the bridge noticed."""
    proxy = CuttingProxy(broker.port, cuts=1, seed=3)
    try:
        async with running(settings_text(tmp_path / "data", proxy.port)) as h:
            h.sample()
            h.start()
            # Far below the 30 s it took; a busy machine needs a second or two.
            await until(lambda: proxy.connections >= 2, 15, "a new connection after the cut")
            await until(lambda: h.bridge.connected and h.bridge.outbox.waiting == 0, 30)
    finally:
        proxy.stop()


# the outbox ------------------------------------------------------------------------------------


def event_numbers(collector: Collector) -> list[int]:
    return [m.json()["data"]["n"] for m in collector.on(f"{BASE}/main/event") if m.payload]


def first_occurrences(values: list[int]) -> list[int]:
    seen: set[int] = set()
    result = []
    for value in values:
        if value not in seen:
            seen.add(value)
            result.append(value)
    return result


def profile_row(n: int) -> ProfileRow:
    start = utc_now().replace(microsecond=0)
    return ProfileRow(
        start, start + timedelta(minutes=15), {"1-0:1.8.0": Decimal(n)}, ProfileFlag.PARTIAL
    )


async def test_events_and_profiles_survive_a_broker_outage_in_order(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    broker.start()
    subscriber = Collector(broker.port, (f"{BASE}/#",), client_id="subscriber", persistent=True)
    try:
        async with running(settings_text(tmp_path / "data", broker.port)) as h:
            h.start()
            await until(lambda: h.bridge.connected)
            for n in range(1, 6):
                h.event(n)
            await until(lambda: len(set(event_numbers(subscriber))) == 5)
            broker.stop()
            await until(lambda: not h.bridge.connected)
            # The samples start one second into a profile interval, so their 19 seconds never
            # cross its end and close an engine row of their own among the injected ones.
            h.at = h.at.replace(minute=h.at.minute // 15 * 15, second=0, microsecond=0)
            for n in range(6, 200):
                h.event(n)
                if n % 10 == 0:
                    h.bridge.on_profile("main", profile_row(n))
                    h.sample()
                await asyncio.sleep(0)
            assert h.bridge.outbox.waiting >= 195 - 5
            broker.start()
            await until(lambda: len(set(event_numbers(subscriber))) == 199, 30, "all events")
            await until(lambda: h.bridge.outbox.waiting == 0, 10, "outbox drained")
            profiles = [
                int(m.json()["values"]["energy_import"]["value"])
                for m in subscriber.on(f"{BASE}/main/profile")
            ]
    finally:
        subscriber.close()
        broker.stop()
    numbers = event_numbers(subscriber)
    assert first_occurrences(numbers) == list(range(1, 200)), "in order, none missing"
    assert first_occurrences(profiles) == list(range(10, 200, 10))


async def test_outbox_survives_a_gateway_restart_while_the_broker_is_away(
    tmp_path: Path,
) -> None:
    broker = persistent_broker(tmp_path)
    broker.start()
    subscriber = Collector(broker.port, (f"{BASE}/#",), client_id="subscriber", persistent=True)
    data = tmp_path / "data"
    try:
        broker.stop()
        async with running(settings_text(data, broker.port)) as h:
            h.start()
            for n in range(1, 51):
                h.event(n)
            await asyncio.sleep(0.2)
        async with running(settings_text(data, broker.port)) as h:
            assert h.bridge.outbox.waiting == 50
            h.start()
            for n in range(51, 61):
                h.event(n)
            broker.start()
            await until(lambda: len(set(event_numbers(subscriber))) == 60, 30, "all events")
            await until(lambda: h.bridge.outbox.waiting == 0)
    finally:
        subscriber.close()
        broker.stop()
    assert first_occurrences(event_numbers(subscriber)) == list(range(1, 61))


async def test_outbox_bound_drops_oldest_and_says_so_on_the_status_topic(
    tmp_path: Path, broker: Broker
) -> None:
    broker.stop()
    text = settings_text(tmp_path / "data", broker.port, "outbox_max_mb = 0.01")
    async with running(text) as h:
        h.start()
        for n in range(1, 201):
            h.event(n)
        outbox = h.bridge.outbox
        outbox.spill()  # the bound is on disk: what the broker did not take is spilled
        assert outbox.dropped > 0
        assert outbox.bytes <= outbox.max_bytes
        kept = outbox.waiting
        broker.start()
        watcher = Collector(broker.port)
        try:
            await until(lambda: h.bridge.outbox.waiting == 0, 20)
            await until(lambda: bool(watcher.on(f"{BASE}/status/detail")))
            detail = watcher.on(f"{BASE}/status/detail")[-1].json()
            assert detail["outbox"]["dropped"] == outbox.dropped == 200 - kept
            assert detail["outbox"]["max_bytes"] == 10_000
        finally:
            watcher.close()


async def test_availability_follows_deliveries(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    topic = f"{BASE}/main/availability"
    text = settings_text(tmp_path / "data", broker.port, "availability_timeout_s = 1.0")
    async with running(text) as h:
        h.start()
        await collector.arrived(topic)
        await until(lambda: bool(collector.on(topic)))
        assert collector.on(topic)[-1].payload == b"offline"  # never heard from yet
        h.at = utc_now()
        h.sample()
        await until(lambda: collector.on(topic)[-1].payload == b"online", 5)
        await until(lambda: collector.on(topic)[-1].payload == b"offline", 5)


async def test_per_value_topics_and_raw_frames(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    text = settings_text(
        tmp_path / "data", broker.port, "per_value_topics = true\nraw_frames = true"
    )
    async with running(text) as h:
        h.start()
        await until(lambda: h.bridge.connected)
        h.sample()
        value = await collector.arrived(f"{BASE}/main/value/energy_import")
        assert value[-1].payload == b"1234.567"
        assert value[-1].retain is False or value[-1].retain is True
        h.gateway.publish_raw(RawFrame("sim1", "sim", bytes.fromhex("68aa16"), utc_now()))
        raw = await collector.arrived(f"{BASE}/raw/sim1")
        assert raw[-1].payload == b"68aa16"


# connection options ----------------------------------------------------------------------------


async def test_mqtt5(broker: Broker, collector: Collector, tmp_path: Path) -> None:
    async with running(settings_text(tmp_path / "data", broker.port, 'protocol = "5"')) as h:
        h.start()
        h.sample()
        await collector.arrived(f"{BASE}/main/state")
        await until(lambda: bool(collector.on(f"{BASE}/main/state")))


# paho leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_tls_client_certificate_and_password_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker, pki = secure_broker(tmp_path, username="meter", password="s3cret pass")
    broker.start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret pass\n")
    tls = (
        f'username = "meter"\npassword_file = "{secret}"\n'
        f'[mqtt.tls]\nca_file = "{pki.ca}"\ncert_file = "{pki.client_cert}"\n'
        f'key_file = "{pki.client_key}"\n'
    )
    subscriber = Collector(
        broker.port,
        tls={
            "ca_certs": str(pki.ca),
            "certfile": str(pki.client_cert),
            "keyfile": str(pki.client_key),
        },
        username="meter",
        password="s3cret pass",
    )
    try:
        async with running(settings_text(tmp_path / "data", broker.port, tls)) as h:
            h.start()
            h.sample()
            await until(lambda: bool(subscriber.on(f"{BASE}/main/state")), 15)
        # Verification is on by default: a broker certificate from another CA is refused.
        wrong = tls.replace(str(pki.ca), str(pki.other_ca))
        caplog.set_level(logging.WARNING, "gateway.mqtt")
        async with running(settings_text(tmp_path / "data2", broker.port, wrong)) as h:
            h.start()
            await until(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, 10)
            assert not h.bridge.connected
        # And a wrong password is refused by the broker, reported, and retried slowly.
        secret.write_text("wrong\n")
        caplog.clear()
        async with running(settings_text(tmp_path / "data3", broker.port, tls)) as h:
            h.start()
            await until(lambda: "retrying in 60.0 s" in caplog.text, 10)
            assert not h.bridge.connected
    finally:
        subscriber.close()
        broker.stop()


def test_status_detail_is_json(tmp_path: Path) -> None:
    harness = Harness(settings_text(tmp_path / "data", 1))
    try:
        document = json.loads(harness.bridge.presence.status_detail(connected=False))
        assert document["outbox"]["messages"] == 0
        assert document["outbox"]["policy"] == "drop_oldest"
        assert document["meters"] == {"main": "offline"}
    finally:
        harness.close()


async def test_billing_snapshots_are_queued_and_retained(broker: Broker, tmp_path: Path) -> None:
    async with running(settings_text(tmp_path / "data", broker.port)) as h:
        h.start()
        await until(lambda: h.bridge.connected)
        h.bridge.on_billing("main", BillingRecord(4, utc_now(), {"1-0:1.8.0": Decimal("99.5")}))
        await until(lambda: h.bridge.outbox.waiting == 0)
    late = Collector(broker.port)
    try:
        billing = await late.arrived(f"{BASE}/main/billing")
        assert billing[-1].retain
        assert billing[-1].json()["number"] == 4
        assert billing[-1].json()["values"] == {"1-0:1.8.0": 99.5}
    finally:
        late.close()


async def test_a_swallowed_cancellation_still_ends_the_bridge_loops() -> None:
    """Python 3.11's wait_for (in every aiomqtt publish) can drop a cancel that races with the
    publish completing; the bridge's loops must end anyway instead of waiting forever."""
    from gateway.mqtt.client import raise_if_cancelling  # noqa: PLC0415

    waiting = asyncio.Event()

    async def loop_like_the_bridge() -> None:
        while True:
            raise_if_cancelling()
            try:
                waiting.set()
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass  # what the racy wait_for amounts to: the cancel is gone, the loop goes on

    task = asyncio.create_task(loop_like_the_bridge())
    await asyncio.wait_for(waiting.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_a_broker_away_is_one_warning_a_while_with_the_attempts_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The interval shortened so that a test sees two lines; the backoff's jittered steps of up
    # to 1, 2, 4 s put attempts between them.
    monkeypatch.setattr(bridge_module, "RETRY_LOG_EVERY_S", 2.5)
    caplog.set_level(logging.DEBUG, "gateway.mqtt")
    nobody = free_port()  # nothing listens: every attempt is refused
    async with running(settings_text(tmp_path / "data", nobody)) as h:
        h.start()
        await until(lambda: "more like it since the last line" in caplog.text, 60)
    lines = [r for r in caplog.records if f"MQTT broker localhost:{nobody}" in r.getMessage()]
    assert all(r.levelno == logging.WARNING for r in lines), "every retry line is a warning"
    assert "more like it" not in lines[0].getMessage(), "the first refusal is told at once"
    folded = lines[1].getMessage()
    assert "retrying in" in folded and re.search(r"\(and [1-9]\d* more like it", folded), folded
