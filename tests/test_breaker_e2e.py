"""Breaker end to end: prepayment credit runs out under the sim meter and real actuators open.

Actuators: the GPIO relay through the software GPIO chip (the real adapter and GPIO code, only
the lines simulated; its auxiliary contact wired to the relay, a push button on a third line),
and an MQTT smart switch on a real mosquitto (a fake plug in the test obeys its command topic
and reports on its state topic). Top-ups go through the HTTP API with the token and through
the gateway's command path; a top-up recloses per the control mode, and a replayed or reordered
top-up is refused. The page shows all of it and says the breaker is never a safety function.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import config
from gateway.app import Gateway
from gateway.errors import CommandError
from gateway.lan import LanServer
from gateway.model import Command
from gateway.signing import sign_payload
from gateway.view import GatewayView
from modules.s0.software import SoftwareChip
from tests.modules.test_mqtt_switch import FakeSwitch
from tests.support.gateway import serving, until
from tests.support.mqtt import Collector
from tests.support.processes import Broker
from tests.test_web_page import ARTIFACTS, CHROMIUM, chromium

TOKEN = "a long random token for the breaker test"
_CHIPS = itertools.count()
# The sim advances 60 s of meter time per 0.1 s: a household uses ~0.1 kWh per real second.
GATEWAY_NAME = "home"  # the default [gateway] name: signed commands are bound to it
SIM = 'type = "sim"\nname = "sim1"\nmeter = "main"\nspeed = 600.0\ninterval_s = 0.1\n'
# Friendly hours off: the test must not depend on the day and hour it runs at.
NEVER_FRIENDLY = "[meters.prepayment.friendly_hours]\nenabled = false\n"


@pytest.fixture
def chip() -> Iterator[SoftwareChip]:
    instance = SoftwareChip(f"breaker-e2e-{next(_CHIPS)}", ("relay", "aux", "button"))
    instance.wire("relay", "aux")  # a working contactor: its auxiliary contact follows
    instance.set_level("button", True)
    try:
        yield instance
    finally:
        instance.close()


def settings_text(tmp_path: Path, *, actuator: str, reconnect: str, module: str, mqtt: str) -> str:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return f"""
[gateway]
data_dir = "{tmp_path / "data"}"
timezone = "Europe/Copenhagen"
persist_interval_s = 0.2
[mqtt]
enabled = false
{mqtt}
[http]
bind = "127.0.0.1"
port = 0
token_file = "{token_file}"
[zeroconf]
enabled = false

[[meters]]
id = "main"
[meters.breaker]
enabled = true
actuator = "{actuator}"
confirm_timeout_s = 5.0
[meters.prepayment]
enabled = true
unit = "kWh"
warning_levels = [0.05]
reconnect = "{reconnect}"
{NEVER_FRIENDLY}
[[modules]]
{SIM}
[[modules]]
{module}
"""


@asynccontextmanager
async def running(text: str) -> AsyncIterator[tuple[Gateway, str]]:
    """The gateway in this process with its HTTP server; yields it and the base URL."""
    servers: list[LanServer] = []

    def outputs(gateway: GatewayView) -> list[LanServer]:
        servers.append(LanServer(gateway))
        return servers

    async with serving(Gateway(config.loads(text), outputs=outputs)) as gateway:
        await until(lambda: servers and servers[0].port)
        yield gateway, f"http://127.0.0.1:{servers[0].port}"


def breaker(gateway: Gateway) -> tuple[str, list[str], str]:
    state = gateway.engines["main"].state.breaker
    return state.state, list(state.causes), state.actuator


def credit(gateway: Gateway) -> Any:
    return gateway.engines["main"].state.prepayment.balance


def kinds(gateway: Gateway) -> list[str]:
    return [event.kind for _, event in gateway.store.events("main", limit=10_000)]


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], *, token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


def top_up(top_up_id: str, sequence: int, amount: str) -> dict[str, Any]:
    return {"args": {"id": top_up_id, "sequence": sequence, "amount": amount}}


async def test_gpio_relay_opens_when_credit_runs_out_and_the_button_recloses(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    relay = (
        f'type = "relay"\nname = "relay1"\nmeter = "main"\nchip = "{chip.path}"\n'
        'line = "relay"\nfeedback_line = "aux"\nbutton_line = "button"\n'
    )
    text = settings_text(tmp_path, actuator="relay1", reconnect="button", module=relay, mqtt="")
    async with running(text) as (gateway, base), aiohttp.ClientSession() as http:
        url = f"{base}/api/v1/meters/main/commands/top_up"
        status, body = await post(http, url, top_up("t-1", 1, "0.2"), token=None)
        assert status == 403 or status == 401, body
        status, body = await post(http, url, top_up("t-1", 1, "0.2"), token="wrong")
        assert status == 401 and body["error"]["code"] == "unauthorized"
        status, body = await post(http, url, top_up("t-1", 1, "0.2"))
        assert status == 200, body
        # The sim household spends the credit; prepayment opens the breaker through the relay.
        await until(lambda: breaker(gateway) == ("disconnected", ["prepayment"], "confirmed"))
        assert credit(gateway) <= 0
        assert chip.level("relay") is True, "energized: open"
        assert gateway.engines["main"].registers["breaker_feedback"].value == "open"
        assert {"credit_low", "credit_exhausted", "breaker_disconnected"} <= set(kinds(gateway))
        # A top-up brings credit back; in "button" mode the breaker waits for the button.
        status, body = await post(http, url, top_up("t-2", 2, "1000"))
        assert status == 200 and body["result"]["unit"] == "kWh", body
        assert breaker(gateway)[:2] == ("ready_for_reconnection", [])
        await asyncio.sleep(0.3)
        assert chip.level("relay") is True, "no reconnection without the button"
        # A replayed top-up and one out of order are refused and change nothing.
        balance = credit(gateway)
        status, body = await post(http, url, top_up("t-2", 2, "1000"))
        assert status == 409 and body["error"]["code"] == "replayed", body
        status, body = await post(http, url, top_up("t-3", 2, "1000"))
        assert status == 409 and body["error"]["code"] == "out_of_order", body
        assert "not after the last accepted 2" in body["error"]["message"]
        assert credit(gateway) <= balance
        # The local push button on its GPIO line closes it.
        chip.set_level("button", False)
        chip.set_level("button", True)
        await until(lambda: breaker(gateway) == ("connected", [], "confirmed"))
        assert chip.level("relay") is False
        # The API shows state, causes, confirmation and the credit history.
        async with http.get(f"{base}/api/v1/meters/main/breaker") as response:
            shown = await response.json()
        assert shown["state"] == "connected" and shown["actuator"]["confirmation"] == "confirmed"
        assert shown["actuator"]["module"] == "relay1"
        assert shown["prepayment"]["credit"] == str(credit(gateway))
        assert "never a safety function" in shown["safety"]
        history = [entry["kind"] for entry in shown["history"]]
        assert history[0] == "breaker_connected"
        assert history.count("top_up") == 2 and "credit_exhausted" in history


@pytest.mark.network
async def test_mqtt_switch_opens_when_credit_runs_out_and_a_top_up_recloses(
    tmp_path: Path, broker: Broker
) -> None:
    plug = FakeSwitch(broker.port, "plug/set", "plug/state")
    switch = (
        'type = "mqtt_switch"\nname = "plug"\nmeter = "main"\n'
        'command_topic = "plug/set"\nstate_topic = "plug/state"\n'
    )
    mqtt = f'host = "127.0.0.1"\nport = {broker.port}\n'
    text = settings_text(tmp_path, actuator="plug", reconnect="auto", module=switch, mqtt=mqtt)
    try:
        async with running(text) as (gateway, _base):
            await until(lambda: gateway.health["plug"].communicating)
            await gateway.execute(
                Command("main", "top_up", "c-1", {"id": "m-1", "sequence": 10, "amount": "0.2"})
            )
            await until(lambda: breaker(gateway) == ("disconnected", ["prepayment"], "confirmed"))
            assert plug.state == "OFF" and "OFF" in plug.received
            assert credit(gateway) <= 0
            # "auto": the top-up that brings credit back recloses at once.
            result = await gateway.execute(
                Command("main", "top_up", "c-2", {"id": "m-2", "sequence": 11, "amount": "1000"})
            )
            assert result["unit"] == "kWh"
            await until(lambda: breaker(gateway) == ("connected", [], "confirmed"))
            assert plug.state == "ON"
            with pytest.raises(CommandError) as replay:
                await gateway.execute(
                    Command(
                        "main", "top_up", "c-3", {"id": "m-2", "sequence": 11, "amount": "1000"}
                    )
                )
            assert replay.value.code == "replayed"
            assert breaker(gateway) == ("connected", [], "confirmed")
    finally:
        plug.close()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make test` does it)")
async def test_the_page_shows_the_breaker_and_its_button_needs_the_token(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    relay = (
        f'type = "relay"\nname = "relay1"\nmeter = "main"\nchip = "{chip.path}"\n'
        'line = "relay"\nfeedback_line = "aux"\n'
    )
    text = settings_text(tmp_path, actuator="relay1", reconnect="auto", module=relay, mqtt="")
    async with running(text) as (gateway, base):
        await gateway.execute(
            Command("main", "top_up", "c-1", {"id": "p-1", "sequence": 1, "amount": "1000"})
        )
        await until(lambda: breaker(gateway) == ("connected", [], "confirmed"))
        async with chromium(tmp_path, f"{base}/") as page:
            await page.wait_for("document.body && document.body.dataset.ready === '1'", 20)
            panel = await page.evaluate(
                "({hidden: document.querySelector('#breaker').hidden,"
                " safety: document.querySelector('#breaker-safety').textContent,"
                " state: document.querySelector('#breaker-state').textContent,"
                " actuator: document.querySelector('#breaker-actuator').dataset.confirmation,"
                " credit: document.querySelector('#credit-value').textContent,"
                " unit: document.querySelector('#credit-unit').textContent})"
            )
            assert panel["hidden"] is False
            assert "never a safety function" in panel["safety"]
            assert (panel["state"], panel["actuator"]) == ("connected", "confirmed")
            assert panel["unit"] == "kWh" and panel["credit"].replace(",", "")[:3] == "999"
            # Without the token the button is refused, and the page says why.
            await page.evaluate("document.querySelector('#breaker-button').click()")
            refusal = await page.wait_for(
                "document.querySelector('#breaker-result').textContent.startsWith('refused')"
                " && document.querySelector('#breaker-result').textContent",
                10,
            )
            assert "API token" in refusal
            assert breaker(gateway)[0] == "connected" and chip.level("relay") is False
            # With it, the web page's button is the meter's push button: it opens the breaker.
            await page.evaluate(
                f"document.querySelector('#api-token').value = {TOKEN!r};"
                " document.querySelector('#breaker-button').click()"
            )
            await page.wait_for(
                "document.querySelector('#breaker-result').textContent"
                " === 'done: ready for reconnection'",
                10,
            )
            await until(lambda: chip.level("relay") is True)
            await page.wait_for(
                "document.querySelector('#breaker-state').textContent"
                " === 'ready for reconnection' && document.querySelector("
                "'#breaker-history tbody').textContent.includes('ready for reconnection')",
                10,
            )
            await page.screenshot(ARTIFACTS / "web-page-breaker.png")
            assert page.exceptions == []


@pytest.mark.network
async def test_unsigned_mqtt_commands_are_refused_when_signing_is_on(
    tmp_path: Path, broker: Broker
) -> None:
    secret = tmp_path / "command-secret"
    secret.write_text("shared secret of the test\n")
    text = f"""
[gateway]
data_dir = "{tmp_path / "data"}"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
discovery = false
command_secret_file = "{secret}"
command_max_age_s = 30.0
[http]
enabled = false
[zeroconf]
enabled = false
[[meters]]
id = "main"
[meters.prepayment]
enabled = true
"""
    reply = "meter-gateway/home/main/reply"
    collector = Collector(broker.port, (reply,))
    gateway = Gateway(config.loads(text))
    task = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 10)

        async def ask(command: str, payload: bytes) -> dict[str, Any]:
            collector.clear()
            await collector.apublish(f"meter-gateway/home/main/set/{command}", payload)
            await until(lambda: collector.on(reply), 30)
            answer: dict[str, Any] = collector.on(reply)[-1].json()
            return answer

        await until(
            lambda: any(o.name == "mqtt" and o.status().connected is True for o in gateway.outputs)
        )
        unsigned = json.dumps({"id": "u-1", "power_w": 5000}).encode()
        answer = await ask("set_limits", unsigned)
        assert answer["ok"] is False and answer["error"]["code"] == "unsigned", answer
        assert not gateway.engines["main"].state.limit_overrides
        args = {"id": "t-1", "sequence": 1, "amount": "5"}
        key = b"shared secret of the test"
        signed = sign_payload(GATEWAY_NAME, "main", "top_up", args, secret=key, command_id="s-1")
        answer = await ask("top_up", signed)
        assert answer["ok"] is True and answer["id"] == "s-1", answer
        assert credit(gateway) == 5
        answer = await ask("top_up", signed)
        assert answer["error"]["code"] == "replayed", answer
        answer = await ask("disconnect", signed)  # signed for top_up, not for this topic
        assert answer["error"]["code"] == "bad_signature", answer
    finally:
        collector.close()
        gateway.request_stop()
        await asyncio.wait_for(task, 15)
