"""A smart switch over MQTT as the breaker's actuator (Tasmota, Shelly, zigbee2mqtt, ESPHome).

It publishes ON/OFF to the switch's command topic when the engine's breaker switches, and
forwards every position the switch reports on its state topic as ``breaker_feedback``: the
engine confirms a switch from it, and a plug switched by hand shows up as a mismatch. On every
(re)connection it sends the position the breaker should be in, so a plug that rebooted into ON
while the breaker is open is switched off again. Never a safety function.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from typing import ClassVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from gateway.adapter import Actuator, ModuleContext
from gateway.backoff import Backoff
from gateway.config import ModuleConfig, MqttSection
from gateway.engine.commands import CommandSpec
from gateway.errors import FatalAdapterError, GatewayError
from gateway.model import Position
from gateway.mqtt.client import (
    CONNECT_TIMEOUT_S,
    broker_client,
    connected,
    refused_for_good,
    run_session_tasks,
)
from modules.relay.feedback import check_wiring, desired_position

__all__ = ["MqttSwitchAdapter", "MqttSwitchConfig", "position_of"]

_LOGGER = logging.getLogger(__name__)

# An unacknowledged QoS 1/2 publish or subscribe in this time means the link is dead.
BROKER_TIMEOUT_S = 10.0
# A session that lasted this long was healthy: the next failure backs off from the start.
HEALTHY_SESSION_S = 10.0
# While waiting for a confirmation, a newer switch command is looked for this often.
SUPERSEDE_POLL_S = 0.2


class MqttSwitchConfig(ModuleConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "mqtt_switch"``: one switch on the gateway's ``[mqtt]`` broker."""

    meter: str  # the meter whose breaker this switch is; name it in [meters.breaker] actuator
    command_topic: str  # e.g. "cmnd/plug1/POWER" (Tasmota), "zigbee2mqtt/plug1/set"
    state_topic: str  # e.g. "stat/plug1/POWER", "zigbee2mqtt/plug1"
    payload_on: str = "ON"  # sent to close the breaker (power on)
    payload_off: str = "OFF"  # sent to open it
    state_on: str = "ON"  # the state topic's word for on (compared ignoring case)
    state_off: str = "OFF"
    state_key: str | None = None  # JSON state: the key holding it ("state" for zigbee2mqtt)
    qos: int = 1
    confirm_timeout_s: float | None = None  # default: the meter's [meters.breaker] value
    reassert: bool = True  # on each (re)connection, send the position the breaker should have
    client_id: str | None = None  # default: meter-gateway-<gateway.name>-<module name>

    def __post_init__(self) -> None:
        for key, topic in (
            ("command_topic", self.command_topic),
            ("state_topic", self.state_topic),
        ):
            if not topic or "+" in topic or "#" in topic:
                raise ValueError(f"`{key}` must be a topic without wildcards, got {topic!r}")
        if self.command_topic == self.state_topic:
            raise ValueError("`state_topic` must differ from `command_topic`")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"`qos` must be 0, 1 or 2, got {self.qos}")
        if self.state_on.lower() == self.state_off.lower():
            raise ValueError("`state_on` and `state_off` must differ")
        if self.confirm_timeout_s is not None and not self.confirm_timeout_s > 0:
            raise ValueError("`confirm_timeout_s` must be greater than 0")


def position_of(payload: bytes, config: MqttSwitchConfig) -> Position | None:
    """The breaker position a state message reports; None for anything else (LWT, telemetry)."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if config.state_key is not None:
        try:
            document = json.loads(text)
        except ValueError:
            return None
        if not isinstance(document, dict) or config.state_key not in document:
            return None
        value = document[config.state_key]
        # JSON true/false (Shelly gen2 "output") compare as the words true/false.
        text = json.dumps(value) if isinstance(value, bool) else str(value)
    word = text.lower()
    if word == config.state_on.lower():
        return "closed"
    if word == config.state_off.lower():
        return "open"
    return None


class MqttSwitchAdapter:
    """Switches the breaker through a smart switch and reports what the switch says."""

    Config = MqttSwitchConfig
    COMMANDS: ClassVar[
        tuple[CommandSpec, ...]
    ] = ()  # switched by SwitchRequests, never by a client

    def __init__(self, config: MqttSwitchConfig) -> None:
        self.config = config
        self._position: Position | None = None
        self._changed = asyncio.Event()

    async def run(self, ctx: ModuleContext) -> None:
        """Keep a broker session up; switches asked for meanwhile wait in
        ``ctx.switch_requests``."""
        check_wiring(ctx, _LOGGER)
        broker = ctx.settings.mqtt
        backoff = Backoff(healthy_after_s=HEALTHY_SESSION_S)
        while True:
            started = time.monotonic()
            try:
                await self._session(ctx, broker)
                reason = "the broker closed the session"
            except MqttConnectError as err:
                if refused_for_good(err):
                    raise FatalAdapterError(
                        f"{self.config.name}: broker {broker.host}:{broker.port} refused us: {err}"
                    ) from err
                reason = str(err)
            except aiomqtt.MqttError as err:
                reason = str(err) or type(err).__name__
            self._position = None
            delay = backoff.next_delay(time.monotonic() - started)
            if ctx.health.communicating:
                ctx.health.communicating = False
                ctx.event("communication_lost", f"module {ctx.name}: {reason}")
            ctx.health.last_error = reason
            log = _LOGGER.warning if backoff.attempt <= 1 else _LOGGER.debug
            log(
                "%s: broker %s:%d: %s; reconnecting in %.1f s",
                ctx.name,
                broker.host,
                broker.port,
                reason,
                delay,
            )
            await asyncio.sleep(delay)

    async def _session(self, ctx: ModuleContext, broker: MqttSection) -> None:
        client = await self._client(ctx, broker)
        async with connected(client, CONNECT_TIMEOUT_S):
            _LOGGER.info(
                "%s: connected to %s:%d; state on %s",
                ctx.name,
                broker.host,
                broker.port,
                self.config.state_topic,
            )
            if not ctx.health.communicating:
                ctx.health.communicating = True
                if ctx.health.last_error is not None:
                    ctx.event("communication_restored", f"module {ctx.name} reaches the broker")
            async with asyncio.timeout(BROKER_TIMEOUT_S):
                await client.subscribe(self.config.state_topic, qos=self.config.qos)
                desired = desired_position(ctx)
                if self.config.reassert and desired is not None:
                    await self._publish(client, desired)
            await run_session_tasks(
                {
                    f"{ctx.name}-states": self._states(ctx, client),
                    f"{ctx.name}-commands": self._commands(ctx, client),
                }
            )

    async def _states(self, ctx: ModuleContext, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            raw = message.payload
            payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw).encode()
            position = position_of(payload, self.config)
            if position is None:
                _LOGGER.debug("%s: ignored state %r", ctx.name, payload[:64])
                continue
            first, self._position = self._position is None, position
            self._changed.set()
            ctx.report_position(position)
            desired = desired_position(ctx)
            if first and self.config.reassert and desired not in (None, position):
                # The plug came online after us (rebooted, or reconnected later than we did)
                # and missed the position we sent; later contradictions are someone's hand.
                _LOGGER.info("%s: the switch reports %s; sending %s", ctx.name, position, desired)
                async with asyncio.timeout(BROKER_TIMEOUT_S):
                    await self._publish(client, desired)

    async def _commands(self, ctx: Actuator, client: aiomqtt.Client) -> None:
        while True:
            target = (await ctx.switch_requests.get()).position
            try:
                async with asyncio.timeout(BROKER_TIMEOUT_S):
                    await self._publish(client, target)
            except (aiomqtt.MqttError, TimeoutError) as err:
                ctx.switch_failed(
                    target, f"could not send {target} to {self.config.command_topic}: {err}"
                )
                raise aiomqtt.MqttError(f"publish failed: {err}") from err
            await self._confirm(ctx, target)

    async def _confirm(self, ctx: Actuator, target: Position) -> None:
        """Wait for the switch to report ``target``; say what it reports instead."""
        timeout_s = self.config.confirm_timeout_s or _meter_timeout_s(ctx)
        deadline = time.monotonic() + timeout_s
        while self._position != target:
            remaining = deadline - time.monotonic()
            if not ctx.switch_requests.empty() or remaining <= 0:
                break  # a newer switch supersedes this one, or time is up
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, SUPERSEDE_POLL_S)):
                    await self._changed.wait()
        seen = self._position
        if seen == target:
            ctx.report_position(target)  # a switch already there may not publish again
        elif not ctx.switch_requests.empty():
            pass
        elif seen is None:
            # The engine's own confirmation timeout reports this as breaker_actuator_failed.
            _LOGGER.warning(
                "%s: no state on %s within %.0f s of switching %s",
                ctx.name,
                self.config.state_topic,
                timeout_s,
                target,
            )
        else:
            ctx.switch_failed(
                target,
                f"the switch reports {seen} on {self.config.state_topic}"
                f" {timeout_s:.0f} s after it was told {target}",
                reported=seen,
            )

    async def _publish(self, client: aiomqtt.Client, target: Position) -> None:
        payload = self.config.payload_on if target == "closed" else self.config.payload_off
        await client.publish(self.config.command_topic, payload.encode(), qos=self.config.qos)

    async def _client(self, ctx: ModuleContext, broker: MqttSection) -> aiomqtt.Client:
        try:
            return await broker_client(
                broker,
                identifier=self.config.client_id
                or f"meter-gateway-{ctx.settings.gateway.name}-{ctx.name}",
                timeout_s=BROKER_TIMEOUT_S,
            )
        except (GatewayError, OSError, ssl.SSLError) as err:
            raise FatalAdapterError(f"{ctx.name}: {err}") from err


def _meter_timeout_s(ctx: Actuator) -> float:
    assert ctx.meter is not None
    try:
        return ctx.settings.meter(ctx.meter).breaker.confirm_timeout_s
    except KeyError:
        return 10.0
