"""The MQTT smart switch actuator against a real mosquitto and a fake plug on the broker."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway import config
from gateway.adapter import ModuleContext, ModuleHealth
from gateway.app import Gateway
from gateway.errors import ConfigError
from gateway.model import Command
from modules.mqtt_switch.adapter import _LOGGER as switch_logger
from modules.mqtt_switch.adapter import MqttSwitchConfig, position_of
from modules.relay.feedback import check_wiring
from tests.support import gateway as support
from tests.support.gateway import until
from tests.support.processes import Broker

pytestmark = [pytest.mark.network]

COMMAND_TOPIC = "plug1/cmnd/POWER"
STATE_TOPIC = "plug1/stat/POWER"


class FakeSwitch:
    """A smart plug on the broker: takes ON/OFF on its command topic, reports its state.

    ``mode``: "obey" switches and reports, "ignore" says nothing, "contrary" reports the
    opposite of what it was told (a relay welded shut, a plug in a child lock).
    """

    def __init__(
        self,
        port: int,
        command_topic: str = COMMAND_TOPIC,
        state_topic: str = STATE_TOPIC,
        *,
        state: str = "ON",
        mode: str = "obey",
        encode: Callable[[str], str] = lambda word: word,
    ) -> None:
        self.state = state
        self.mode = mode
        self.received: list[str] = []
        self.command_topic = command_topic
        self.state_topic = state_topic
        self._encode = encode
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)  # before loop_start: no leak
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the fake switch could not subscribe")

    def switched(self) -> list[str]:
        """The commands received, repeats of the same word folded (a reassert may repeat)."""
        return [w for i, w in enumerate(self.received) if i == 0 or self.received[i - 1] != w]

    def report(self, state: str) -> None:
        """Switch by hand (or report a state) and publish it, retained as plugs do."""
        self.state = state
        self.client.publish(self.state_topic, self._encode(state), qos=1, retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(self.command_topic, qos=1)
        client.publish(self.state_topic, self._encode(self.state), qos=1, retain=True)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: Any) -> None:
        word = bytes(message.payload).decode()
        self.received.append(word)
        if self.mode == "obey":
            self.report(word)
        elif self.mode == "contrary":
            self.report("OFF" if word == "ON" else "ON")


def gateway_config(tmp_path: Path, port: int, *, module: str = "", timeout_s: float = 1.5) -> str:
    return f"""
[gateway]
data_dir = "{tmp_path / "data"}"
persist_interval_s = 0.2
[mqtt]
enabled = false
host = "127.0.0.1"
port = {port}
keepalive_s = 5
[http]
enabled = false
[zeroconf]
enabled = false

[[meters]]
id = "main"
[meters.breaker]
enabled = true
actuator = "switch1"
confirm_timeout_s = {timeout_s}
remote_reconnect = "direct"

[[modules]]
type = "mqtt_switch"
name = "switch1"
meter = "main"
command_topic = "{COMMAND_TOPIC}"
state_topic = "{STATE_TOPIC}"
{module}
"""


@asynccontextmanager
async def running(text: str) -> AsyncIterator[Gateway]:
    async with support.running(text) as gateway:
        await until(lambda: gateway.health["switch1"].communicating)
        yield gateway


def kinds(gateway: Gateway) -> list[str]:
    return [event.kind for _, event in gateway.store.events("main", limit=1000)]


def breaker(gateway: Gateway) -> tuple[str, str]:
    state = gateway.engines["main"].state.breaker
    return state.state, state.actuator


async def command(gateway: Gateway, name: str) -> dict[str, Any]:
    return dict(await gateway.execute(Command("main", name, f"test-{name}")))


# pure parts -----------------------------------------------------------------------------------


def switch_config(**keys: Any) -> MqttSwitchConfig:
    base = {
        "type": "mqtt_switch",
        "name": "s",
        "meter": "main",
        "command_topic": "a/set",
        "state_topic": "a",
    }
    return msgspec.convert({**base, **keys}, MqttSwitchConfig)


def test_states_of_common_firmwares() -> None:
    tasmota = switch_config()
    assert position_of(b"ON", tasmota) == "closed"
    assert position_of(b" off\n", tasmota) == "open"
    assert position_of(b"Online", tasmota) is None, "an LWT word is not a position"
    assert position_of(b"\xff", tasmota) is None
    zigbee = switch_config(state_key="state")
    assert position_of(b'{"state": "OFF", "power": 0}', zigbee) == "open"
    assert position_of(b'{"power": 0}', zigbee) is None
    assert position_of(b"OFF", zigbee) is None
    assert position_of(b"[1]", zigbee) is None
    shelly = switch_config(state_key="output", state_on="true", state_off="false")
    assert position_of(b'{"id": 0, "output": true}', shelly) == "closed"
    assert position_of(b'{"id": 0, "output": false}', shelly) == "open"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"command_topic": "a/+/set"}, "without wildcards"),
        ({"state_topic": "a/#"}, "without wildcards"),
        ({"state_topic": "a/set"}, "must differ"),
        ({"qos": 3}, "0, 1 or 2"),
        ({"state_on": "on", "state_off": "ON"}, "must differ"),
        ({"confirm_timeout_s": 0.0}, "greater than 0"),
    ],
)
def test_config_mistakes_are_named(keys: dict[str, Any], message: str, tmp_path: Path) -> None:
    lines = "\n".join(
        f"{key} = {value!r}".replace("'", '"') if isinstance(value, str) else f"{key} = {value}"
        for key, value in {"command_topic": "a/set", "state_topic": "a", **keys}.items()
    )
    text = (
        f'[gateway]\ndata_dir = "{tmp_path}"\n[[meters]]\nid = "main"\n'
        f'[[modules]]\ntype = "mqtt_switch"\nname = "s"\nmeter = "main"\n{lines}\n'
    )
    with pytest.raises(ConfigError, match=message):
        config.loads(text)


# against a broker -----------------------------------------------------------------------------


async def test_switches_confirms_and_sees_a_plug_switched_by_hand(
    tmp_path: Path, broker: Broker
) -> None:
    plug = FakeSwitch(broker.port)
    try:
        async with running(gateway_config(tmp_path, broker.port)) as gateway:
            result = await command(gateway, "disconnect")
            assert (result["state"], result["actuator"]) == ("disconnected", "pending")
            await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
            assert plug.switched() == ["OFF"] and plug.state == "OFF"
            assert gateway.engines["main"].registers["breaker_feedback"].value == "open"
            # Someone switches the plug back on by hand: the state says so, not a silent lie.
            plug.report("ON")
            await until(lambda: breaker(gateway) == ("disconnected", "failed"))
            assert "breaker_actuator_mismatch" in kinds(gateway)
            await command(gateway, "reconnect")
            await until(lambda: breaker(gateway) == ("connected", "confirmed"))
            # The plug already reported ON, so the breaker may confirm before the ON we send
            # has crossed the broker to the plug.
            await until(lambda: plug.switched() == ["OFF", "ON"])
    finally:
        plug.close()


async def test_a_silent_switch_and_a_contrary_switch_are_failed_actuations(
    tmp_path: Path, broker: Broker
) -> None:
    plug = FakeSwitch(broker.port, mode="ignore")
    try:
        async with running(gateway_config(tmp_path, broker.port)) as gateway:
            await command(gateway, "disconnect")
            # The engine times the confirmation out (1.5 s) and says the state may be wrong.
            await until(lambda: breaker(gateway) == ("disconnected", "failed"), 6)
            assert "breaker_actuator_failed" in kinds(gateway)

            def module_failure() -> list[dict[str, Any]]:
                return [
                    dict(event.data)
                    for _, event in gateway.store.events("main", kind="breaker_actuator_failed")
                    if event.data.get("module") == "switch1"
                ]

            # The silent plug still says ON from before: that contradicts the switch.
            await until(module_failure, 6)
            # Back on: the plug already says ON, which confirms at once.
            await command(gateway, "reconnect")
            await until(lambda: breaker(gateway) == ("connected", "confirmed"))
            plug.mode = "contrary"
            await command(gateway, "disconnect")
            await until(lambda: len(module_failure()) == 2, 6)
            assert [(e["target"], e["reported"]) for e in module_failure()] == [
                ("open", "closed"),
                ("open", "closed"),
            ]
            assert plug.received[-1] == "OFF" and plug.state == "ON"
            await until(lambda: breaker(gateway) == ("disconnected", "failed"), 3)
    finally:
        plug.close()


async def test_after_a_broker_outage_it_reconnects_and_reasserts_the_breaker(
    tmp_path: Path, broker: Broker
) -> None:
    plug = FakeSwitch(broker.port)
    try:
        async with running(gateway_config(tmp_path, broker.port)) as gateway:
            await command(gateway, "disconnect")
            await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
            broker.stop()
            await until(lambda: not gateway.health["switch1"].communicating)
            # A switch during the outage waits for the broker (the engine times it out).
            await command(gateway, "reconnect")
            plug.state = "OFF"  # the plug rebooted while the broker was away
            broker.start()
            await until(lambda: gateway.health["switch1"].communicating, 15)
            await until(lambda: breaker(gateway) == ("connected", "confirmed"), 10)
            assert plug.state == "ON"
            assert plug.switched() == ["OFF", "ON"]
            assert {"communication_lost", "communication_restored"} <= set(kinds(gateway))
            assert gateway.health["switch1"].restarts == 0, "reconnected inside run()"
    finally:
        plug.close()


async def test_a_restart_restores_the_last_confirmed_position_not_on(
    tmp_path: Path, broker: Broker
) -> None:
    plug = FakeSwitch(broker.port)
    text = gateway_config(tmp_path, broker.port)
    try:
        async with running(text) as gateway:
            await command(gateway, "disconnect")
            await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
        assert plug.switched() == ["OFF"]
        # A restart with the plug still off: nothing is switched, the breaker stays open.
        async with running(text) as gateway:
            await until(lambda: gateway.engines["main"].registers["breaker_feedback"].value)
            assert breaker(gateway)[0] == "disconnected"
            assert plug.switched() == ["OFF"], "a restart must not switch the plug on"
        # The plug rebooted into ON while the gateway was down: it is switched off again.
        plug.report("ON")
        async with running(text) as gateway:
            await until(lambda: plug.state == "OFF")
            await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
        assert plug.switched() == ["OFF"], "only OFF was ever sent"
    finally:
        plug.close()


async def test_json_state_topics_confirm(tmp_path: Path, broker: Broker) -> None:
    plug = FakeSwitch(
        broker.port,
        "z2m/plug/set",
        "z2m/plug",
        encode=lambda word: f'{{"state": "{word}", "linkquality": 90}}',
    )
    module = 'state_key = "state"\ncommand_topic = "z2m/plug/set"\nstate_topic = "z2m/plug"\n'
    text = gateway_config(tmp_path, broker.port).replace(
        f'command_topic = "{COMMAND_TOPIC}"\nstate_topic = "{STATE_TOPIC}"\n', module
    )
    try:
        async with running(text) as gateway:
            await command(gateway, "disconnect")
            await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
            assert plug.switched() == ["OFF"]
    finally:
        plug.close()


def test_the_example_config_shows_every_key() -> None:
    text = (Path(__file__).parents[2] / "conf" / "examples" / "mqtt_switch.toml").read_text()
    for key in MqttSwitchConfig.__struct_fields__:
        assert f"\n{key} = " in text or f"\n# {key} = " in text, key


def test_a_wiring_warning_is_logged_under_the_module_that_has_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = support.offline_text(
        tmp_path,
        '[[meters]]\nid = "main"\n'
        '[[modules]]\ntype = "mqtt_switch"\nname = "plug"\nmeter = "main"\n'
        'command_topic = "plug/set"\nstate_topic = "plug/state"\n',
    )
    gateway = Gateway(config.loads(text), outputs=lambda _g: [])
    module = gateway.settings.modules[0]
    ctx = ModuleContext(gateway, module, ModuleHealth(module.name, module.type))
    with caplog.at_level("WARNING"):
        assert check_wiring(ctx, switch_logger) is False
    [record] = [r for r in caplog.records if "breaker actuator" in r.getMessage()]
    assert record.name == "modules.mqtt_switch.adapter"
