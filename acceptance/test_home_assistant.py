"""`make acceptance`: two gateways, three sim meters and a real Home Assistant on one mosquitto.

What a user would check by hand after pointing Home Assistant at the broker: every entity the
gateways announce exists, Home Assistant logs nothing about them, the Energy dashboard accepts the
energy sensors, the values are the gateway's own, the breaker buttons switch the breaker, and
the two gateways neither mix their values nor take each other's availability down.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acceptance.home_assistant import HomeAssistant
from tests.support.mqtt import Collector
from tests.support.processes import Broker, free_port, gateway, wait_for_port

ROOTFS = Path(os.environ.get("ACCEPTANCE_DIR", ".acceptance")).resolve() / "rootfs"
DISCOVERY = "homeassistant"
WAIT_S = 120.0  # Home Assistant's first start installs what its integrations need
# The sim meters run in real time: one second of a 10 kW load moves A+ by 0.003 kWh, so HA
# (behind by a publish interval) and the API agree within this.
ENERGY_TOLERANCE_KWH = 0.01

STATISTICS_WAIT_S = 420.0  # the recorder compiles statistics at every 5th minute
NO_PRICE = {"entity_energy_price": None, "number_energy_price": None}

pytestmark = pytest.mark.timeout(900)


def gateway_config(name: str, data: Path, broker: int, http: int, meters: dict[str, int]) -> str:
    """A gateway with one sim module per meter (meter id -> the household's base load in W,
    different for each so their registers part within seconds); the first meter has a breaker
    that Home Assistant may switch."""
    text = (
        f'[gateway]\nname = "{name}"\ndata_dir = "{data}"\ntimezone = "UTC"\n'
        "publish_interval_s = 1.0\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker}\nha_version = "2026.2"\n'
        "unsigned_commands = true\n"
        f"[http]\nport = {http}\n[zeroconf]\nenabled = false\n"
    )
    for index, meter in enumerate(meters):
        text += (
            f'[[meters]]\nid = "{meter}"\nname = "{name} {meter}"\n'
            'manufacturer = "Kamstrup"\nmodel = "382L"\n'
        )
        if index == 0:
            text += '[meters.breaker]\nenabled = true\nremote_reconnect = "direct"\n'
    for meter, base_load_w in meters.items():
        text += (
            f'[[modules]]\ntype = "sim"\nname = "sim-{meter}"\nmeter = "{meter}"\n'
            f"base_load_w = {base_load_w}\nspeed = 1.0\ninterval_s = 1.0\n"
        )
    return text


async def until(
    check: Callable[[], Awaitable[object]], what: str, timeout_s: float = WAIT_S
) -> Any:
    """Poll an async check until it returns something truthy; its last answer otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(1.0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def hass(broker: Broker, http: aiohttp.ClientSession) -> AsyncIterator[HomeAssistant]:
    if not (ROOTFS / "ha" / "bin" / "hass").exists():
        pytest.fail(f"no Home Assistant in {ROOTFS}: `make acceptance` sets it up")
    instance = HomeAssistant(ROOTFS)
    instance.start()
    try:
        await instance.onboard(http)
        await instance.add_mqtt(http, broker.port)
        yield instance
    finally:
        instance.stop()


class Gateways:
    """Two gateways on one broker: alpha with meters main and garage, beta with main."""

    def __init__(self, tmp_path: Path, broker: Broker) -> None:
        self.http = {"alpha": free_port(), "beta": free_port()}
        self.meters = {"alpha": {"main": 500, "garage": 3000}, "beta": {"main": 8000}}
        self.configs = {}
        for name, meters in self.meters.items():
            config = tmp_path / f"{name}.toml"
            config.write_text(
                gateway_config(name, tmp_path / name, broker.port, self.http[name], meters)
            )
            self.configs[name] = config
        self.logs = {name: tmp_path / f"{name}.log" for name in self.meters}

    def api(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.http[name]}/api/v1/{path}"


def entity_by_unique_id(registry: list[dict[str, Any]]) -> dict[str, str]:
    return {e["unique_id"]: e["entity_id"] for e in registry if e["platform"] == "mqtt"}


async def test_home_assistant_accepts_every_entity_and_keeps_two_gateways_apart(
    tmp_path: Path, broker: Broker, hass: HomeAssistant, http: aiohttp.ClientSession
) -> None:
    discovery = Collector(broker.port, (f"{DISCOVERY}/#",))
    setup = Gateways(tmp_path, broker)
    try:
        with (
            gateway(setup.configs["alpha"], log=setup.logs["alpha"]),
            gateway(setup.configs["beta"], log=setup.logs["beta"]) as beta,
        ):
            for name in setup.http:
                wait_for_port(setup.http[name], 30)
            await _every_entity_exists(hass, http, discovery, setup)
            await _values_are_each_gateways_own(hass, http, setup)
            await _breaker_buttons_switch_the_breaker(hass, http, setup)
            await _energy_dashboard_accepts(hass, http)
            beta.terminate()
            beta.wait(30)
            await _availability_follows_each_gateway(hass, http)
    finally:
        discovery.close()
    problems = [line for line in hass.log_lines("ERROR", "WARNING") if _ours(line)]
    assert problems == [], "Home Assistant complained about our entities"


def _ours(line: str) -> bool:
    return any(word in line for word in ("mqtt", "meter-gateway", "meter_gateway", "sensor."))


async def _registry(hass: HomeAssistant, http: aiohttp.ClientSession) -> dict[str, str]:
    return entity_by_unique_id(await hass.ws(http, {"type": "config/entity_registry/list"}))


def _announced(discovery: Collector) -> dict[str, dict[str, Any]]:
    """unique_id -> component, from the last retained config of every device."""
    devices: dict[str, dict[str, Any]] = {}
    for message in discovery.messages:
        if message.payload:
            devices[message.topic] = message.json()
    return {
        component["unique_id"]: component
        for config in devices.values()
        for component in config["components"].values()
    }


async def _every_entity_exists(
    hass: HomeAssistant, http: aiohttp.ClientSession, discovery: Collector, setup: Gateways
) -> None:
    required = {
        _uid(name, meter, "energy_import")
        for name, meters in setup.meters.items()
        for meter in meters
    } | {f"meter-gateway_{name}_status" for name in setup.meters}

    async def all_there() -> bool:
        announced = _announced(discovery)
        if not required <= set(announced):
            return False
        return set(announced) <= set(await _registry(hass, http))

    await until(all_there, "every announced entity in Home Assistant's registry")
    registry = await _registry(hass, http)
    announced = _announced(discovery)
    assert len(set(registry[uid] for uid in announced)) == len(announced), "entity ids collide"
    assert not any(entity.endswith("_2") for entity in registry.values()), registry

    async def sensors_have_values() -> bool:
        states = await hass.states(http)
        sensors = [registry[uid] for uid, c in announced.items() if c["platform"] == "sensor"]
        return all(states[e]["state"] not in ("unavailable", "unknown") for e in sensors)

    await until(sensors_have_values, "a value on every sensor")


def _uid(gateway_name: str, meter: str, key: str) -> str:
    return f"meter-gateway_{gateway_name}_{meter}_{key}"


async def _energy_dashboard_accepts(hass: HomeAssistant, http: aiohttp.ClientSession) -> None:
    registry = await _registry(hass, http)
    imported = registry[_uid("alpha", "main", "energy_import")]
    exported = registry[_uid("alpha", "main", "energy_export")]
    await hass.ws(
        http,
        {
            "type": "energy/save_prefs",
            "energy_sources": [
                {
                    "type": "grid",
                    # All keys, as HA's own frontend sends them: its validators index them.
                    "flow_from": [{"stat_energy_from": imported, **NO_PRICE, "stat_cost": None}],
                    "flow_to": [
                        {"stat_energy_to": exported, **NO_PRICE, "stat_compensation": None}
                    ],
                    "cost_adjustment_day": 0.0,
                }
            ],
        },
    )
    # The recorder's own checks (state class, units) hold at once...
    problems = await hass.ws(http, {"type": "recorder/validate_statistics"})
    assert {k: v for k, v in problems.items() if k in (imported, exported)} == {}, problems

    # ... the dashboard's need statistics, which the recorder compiles every 5 minutes.
    async def valid() -> list[Any] | None:
        result = await hass.ws(http, {"type": "energy/validate"})
        issues = [issue for source in result["energy_sources"] for issue in source]
        return None if issues else [True]

    await until(valid, "the Energy dashboard's validation without issues", STATISTICS_WAIT_S)


async def _values_are_each_gateways_own(
    hass: HomeAssistant, http: aiohttp.ClientSession, setup: Gateways
) -> None:
    registry = await _registry(hass, http)
    for name, meters in setup.meters.items():
        for meter in meters:
            entity = registry[_uid(name, meter, "energy_import")]

            async def agree(entity: str = entity, name: str = name, meter: str = meter) -> bool:
                async with http.get(setup.api(name, f"meters/{meter}/registers")) as response:
                    registers = (await response.json())["registers"]
                ours = float(registers["1-0:1.8.0"]["value"])
                theirs = float((await hass.states(http))[entity]["state"])
                return abs(ours - theirs) <= ENERGY_TOLERANCE_KWH

            await until(agree, f"{entity} equal to {name}'s API", 30)

    # The sims have different base loads: once they have counted a little, equal A+ on two meters
    # would mean one gateway's values reach the other's entities.
    async def apart() -> bool:
        states = await hass.states(http)
        values = [
            float(states[registry[_uid(name, meter, "energy_import")]]["state"])
            for name, meters in setup.meters.items()
            for meter in meters
        ]
        return len(set(values)) == len(values)

    await until(apart, "three meters with three different A+ values")


async def _breaker_buttons_switch_the_breaker(
    hass: HomeAssistant, http: aiohttp.ClientSession, setup: Gateways
) -> None:
    registry = await _registry(hass, http)
    state_entity = registry[_uid("alpha", "main", "breaker_state")]
    for command, expected in (("disconnect", "disconnected"), ("reconnect", "connected")):
        button = registry[_uid("alpha", "main", f"breaker_{command}")]
        await hass.post(http, "services/button/press", {"entity_id": button})

        async def switched(expected: str = expected) -> bool:
            async with http.get(setup.api("alpha", "meters/main/breaker")) as response:
                api = await response.json()
            shown = (await hass.states(http))[state_entity]["state"]
            return bool(api["state"] == expected and shown == expected)

        await until(switched, f"breaker {expected} in the API and in Home Assistant", 30)


async def _availability_follows_each_gateway(
    hass: HomeAssistant, http: aiohttp.ClientSession
) -> None:
    registry = await _registry(hass, http)
    beta = registry[_uid("beta", "main", "energy_import")]
    alpha = registry[_uid("alpha", "main", "energy_import")]

    async def only_beta_gone() -> bool:
        states = await hass.states(http)
        return bool(
            states[beta]["state"] == "unavailable" and states[alpha]["state"] != "unavailable"
        )

    await until(only_beta_gone, "beta's entities unavailable, alpha's not", 60)
