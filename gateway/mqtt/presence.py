"""Session state the bridge re-derives on every connection: discovery, availability, status.

None of it goes through the outbox: each message describes the present, so after a reconnect the
current truth is published again instead of replaying history (an old ``offline`` must never
arrive after a newer ``online``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiomqtt
import msgspec

from gateway import __version__
from gateway.config import ModuleConfig, MqttSection
from gateway.contracts import mqtt
from gateway.model import utc_now
from gateway.mqtt.discovery import Discovery
from gateway.mqtt.outbox import STATE_MODULE, Outbox
from gateway.mqtt.payloads import Topics, encode, iso, reading_key

if TYPE_CHECKING:
    from gateway.view import GatewayView

__all__ = ["Presence"]

_LOGGER = logging.getLogger(__name__)

_PUBLISHED_KEY = "published"
# The status's outbox figures leave out messages younger than this: a state on its way to the
# broker for a few milliseconds is not a backlog, and counting it made the figure flip 0/1.
IN_FLIGHT_S = 1.0
# Discovery documents made and handed to the client between two turns of the event loop: a
# thousand meters' documents in one go held the loop for tens of milliseconds at connect, and
# samples, commands and HTTP requests waited behind them.
ANNOUNCE_BATCH = 25


class Presence:
    """Publishes who is there and what they offer: discovery, availability, status detail."""

    def __init__(
        self, gateway: GatewayView, config: MqttSection, topics: Topics, outbox: Outbox
    ) -> None:
        self._gateway = gateway
        self.config = config
        self.topics = topics
        self.outbox = outbox
        self.discovery = Discovery(
            gateway.settings.gateway.name,
            topics,
            ha_version=gateway.settings.mqtt.ha_version,
            unsigned_commands=gateway.settings.mqtt.unsigned_commands,
        )
        self.raw_dropped = 0
        self._announced: dict[str, frozenset[str]] = {}
        self._available: dict[str, bool] = {}
        self._last_seen: dict[str, float] = {}
        self._modules_of: tuple[object, dict[str, tuple[ModuleConfig, ...]]] = (None, {})

    def needs_announce(self, meter: str) -> bool:
        """True when a meter has values its discovery config does not list yet.

        Asked of the engine's registers, the set ``announce`` lists: the published view can
        leave some out until a checkpoint, and compared with that, every state message asked
        for an announce pass over every meter (at 1,000 meters, the loop did little else)."""
        if not self.config.discovery:
            return False
        announced, codes = self._announced.get(meter), self._gateway.registers(meter).keys()
        return announced is None or len(announced) != len(codes) or not announced.issuperset(codes)

    def seen(self, meter: str) -> bool:
        """Note that a meter delivered; True if it was not known to be online."""
        self._last_seen[meter] = time.monotonic()
        return not self._available.get(meter)

    async def announce(self, client: aiomqtt.Client, *, only_changed: bool = False) -> int:
        """Publish discovery configs (all, or those of meters with new registers), a batch at
        a time with a turn of the event loop between batches."""
        announced: dict[str, frozenset[str]] = {}
        batch: list[tuple[str, dict[str, Any]]] = []
        published = 0
        if self.config.discovery:
            async with asyncio.TaskGroup() as group:
                if not only_changed:
                    batch.append(self.discovery.gateway_config())
                for meter in self._gateway.settings.meters:
                    registers = self._gateway.registers(meter.id)
                    codes = frozenset(registers)
                    if not codes or (only_changed and self._announced.get(meter.id) == codes):
                        continue
                    batch.append(self.discovery.meter_config(meter, registers))
                    announced[meter.id] = codes
                    if len(batch) >= ANNOUNCE_BATCH:
                        published += self._publish_configs(group, client, batch)
                        batch = []
                        await asyncio.sleep(0)
                published += self._publish_configs(group, client, batch)
            self._announced.update(announced)
        if not only_changed:
            await self._clear_removed(client)
        return published

    def _publish_configs(
        self,
        group: asyncio.TaskGroup,
        client: aiomqtt.Client,
        configs: list[tuple[str, dict[str, Any]]],
    ) -> int:
        """Hand device documents (or their entities, in entity mode) to the client."""
        if self.config.discovery_mode == "entity":
            configs = [entity for c in configs for entity in self.discovery.per_entity(*c)]
        for topic, payload in configs:
            group.create_task(client.publish(topic, encode(payload), qos=1, retain=True))
        return len(configs)

    async def publish_availability(
        self, client: aiomqtt.Client, *, everything: bool = False
    ) -> None:
        """``<base>/<gateway>/<meter>/availability`` of meters whose state changed (or all)."""
        now, wall = time.monotonic(), utc_now()
        changes: dict[str, bool] = {}
        for meter in self._gateway.settings.meters:
            available = self._meter_available(meter.id, now, wall)
            if everything or self._available.get(meter.id) != available:
                changes[meter.id] = available
        for meter_id, available in changes.items():
            if self._available.get(meter_id, available) != available:
                _LOGGER.info("meter %s is %s", meter_id, "online" if available else "offline")
            await client.publish(
                self.topics.availability(meter_id),
                b"online" if available else b"offline",
                qos=1,
                retain=True,
            )
            self._available[meter_id] = available

    async def publish_detail(self, client: aiomqtt.Client) -> None:
        """``<base>/<gateway>/status/detail``, retained."""
        payload = self.status_detail(connected=True)
        await client.publish(self.topics.status_detail, payload, qos=1, retain=True)

    def status_detail(self, *, connected: bool) -> bytes:
        """Version, outbox depth and drops, meter availability, module health, as JSON."""
        outbox = self.outbox
        oldest = outbox.oldest() if outbox.waiting else None
        backlog, backlog_bytes = outbox.backlog(IN_FLIGHT_S)
        modules = {
            name: mqtt.ModuleDetail(
                type=health.type,
                state=health.state,
                last_frame_at=iso(health.last_frame_at) if health.last_frame_at else None,
                frames_ok=health.frames_ok,
                frames_failed=health.frames_failed,
                restarts=health.restarts,
                last_error=health.last_error,
            )
            for name, health in self._gateway.health.items()
        }
        return encode(
            mqtt.StatusDetail(
                state="online" if connected else "offline",
                version=__version__,
                started=iso(self._gateway.started_at),
                outbox=mqtt.OutboxDetail(
                    messages=backlog,
                    bytes=backlog_bytes,
                    max_bytes=outbox.max_bytes,
                    policy=outbox.policy,
                    dropped=outbox.dropped,
                    oldest=iso(oldest) if oldest else None,
                ),
                raw_dropped=self.raw_dropped,
                meters={
                    m.id: "online" if self._available.get(m.id) else "offline"
                    for m in self._gateway.settings.meters
                },
                modules=modules,
            )
        )

    def _meter_available(self, meter: str, now: float, wall: datetime) -> bool:
        """Heard within the timeout: by the engine, by its own module, or by register time."""
        timeout_s = self.config.availability_timeout_s
        seen = self._last_seen.get(meter)
        if seen is not None and now - seen <= timeout_s:
            return True
        for module in self._own_modules(meter):
            health = self._gateway.health.get(module.name)
            if (
                health is not None
                and health.last_frame_at is not None
                and (wall - health.last_frame_at).total_seconds() <= timeout_s
            ):
                return True
        # Registers restored at start-up count while they are fresh; a meter clock running
        # ahead (an accelerated simulation) must not keep a silent meter online forever.
        registers = self._gateway.registers(meter).values()
        latest = max((r.at for r in registers if r.at <= wall), default=None)
        return latest is not None and wall - latest <= timedelta(seconds=timeout_s)

    def _own_modules(self, meter: str) -> tuple[ModuleConfig, ...]:
        """The single-meter modules feeding ``meter``, from an index made once per settings
        (each meter asked every module before: a million checks at a thousand meters)."""
        settings = self._gateway.settings
        if self._modules_of[0] is not settings:
            index: dict[str, list[ModuleConfig]] = {}
            for module in settings.modules:
                if module.meter is not None and _feeds_only(module, module.meter):
                    index.setdefault(module.meter, []).append(module)
            self._modules_of = (settings, {m: tuple(ms) for m, ms in index.items()})
        return self._modules_of[1].get(meter, ())

    async def _clear_removed(self, client: aiomqtt.Client) -> None:
        """Empty retained payloads for meters (and discovery) this gateway no longer has."""
        store = self._gateway.store
        meters = [m.id for m in self._gateway.settings.meters]
        raw = store.get_state(STATE_MODULE, _PUBLISHED_KEY)
        before: dict[str, list[str]] = (
            msgspec.json.decode(raw) if raw else {"meters": [], "configs": []}
        )
        current = (
            self.discovery.config_topics(m for m in meters if m in self._announced)
            if self.config.discovery
            else set()
        )
        topics = [t for t in before.get("configs", []) if t not in current]
        for meter in before.get("meters", []):
            if meter in meters:
                continue
            topics += [self.topics.state(meter), self.topics.availability(meter)]
            if self.config.per_value_topics:
                topics += [
                    self.topics.value(meter, reading_key(register.obis))
                    for register in store.load_registers(meter)
                ]
        if topics:
            _LOGGER.info("clearing %d retained topics of removed meters or entities", len(topics))
            async with asyncio.TaskGroup() as group:
                for topic in topics:
                    group.create_task(client.publish(topic, b"", qos=1, retain=True))
        after = {"meters": meters, "configs": sorted(current)}
        if after != before:
            store.put_state(STATE_MODULE, _PUBLISHED_KEY, encode(after))


def _feeds_only(module: ModuleConfig, meter: str) -> bool:
    """A single-meter module's own frames say its meter is heard (those of a module feeding
    several meters do not)."""
    return module.meter == meter and module.meters_fed() == (meter,)
