"""``[[modules]] type = "meter_feed"``: this gateway's meters' decoded samples, from the broker.

The engine of a meter runs on exactly one gateway: the one whose config lists it (its
[[meters]], narrowed by ``[cluster] meter_hash_range``). This module subscribes to
``<base>/samples/<meter>`` for each of them on a persistent MQTT 5 session: while the gateway is
down the broker keeps the session's messages (up to ``session_expiry_s``, and mosquitto's
``max_queued_messages``), and they arrive in order when it is back. Copies of one telegram from
several receivers (or redelivered by a worker) are merged and fed to the engine once
(gateway/cluster/merge.py), with the best RSSI and the number of receivers that heard it;
coverage per meter and receiver is in the module's health (``/api/v1/health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import ClassVar

import aiomqtt

from gateway.adapter import ModuleContext
from gateway.cluster.merge import Merged, Merger
from gateway.cluster.wire import WireError, decode_sample, sample_topic
from gateway.config import ModuleConfig
from gateway.engine.commands import CommandSpec
from gateway.errors import ConnectionLost, FatalAdapterError, StoreError
from gateway.model import Reading, Sample
from gateway.mqtt.client import (
    CONNECT_TIMEOUT_S,
    broker_client,
    connected,
    raise_if_cancelling,
    run_session_tasks,
)

__all__ = ["MeterFeedAdapter", "MeterFeedConfig"]

_LOGGER = logging.getLogger(__name__)

# An unacknowledged subscribe in this time means the link is dead.
BROKER_TIMEOUT_S = 10.0
# A day: an engine gateway down over a weekend night comes back to every sample (mosquitto
# holds at most max_queued_messages per session; raise it for many meters, README).
SESSION_EXPIRY_S = 86400
# Receivers hear a telegram within milliseconds of each other; their copies pass through
# outboxes, the broker and different workers. This long covers a loaded LAN.
MERGE_WINDOW_S = 2.0
# Copies later than that (a redelivery after a worker crash) are still recognised this long.
DUPLICATE_WINDOW_S = 120.0
RSSI_READING = "rssi_dbm"
STATE_RELEASED = "released"
RECEIVERS_READING = "receivers"


class MeterFeedConfig(ModuleConfig, frozen=True, kw_only=True):
    """The engine side: which meters' samples to take, and how copies are merged."""

    meters: tuple[str, ...] = ()  # default: `meter` if set, else every [[meters]] here
    session_expiry_s: int = SESSION_EXPIRY_S
    merge_window_s: float = MERGE_WINDOW_S
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    client_id: str | None = None  # default: meter-gateway-<gateway.name>-<module name>

    def __post_init__(self) -> None:
        if not 0 < self.session_expiry_s < 2**32:
            raise ValueError("`session_expiry_s` must be 1..4294967295 (MQTT 5 session expiry)")
        if not 0 <= self.merge_window_s <= 60:  # noqa: PLR2004 - the range its message states
            raise ValueError("`merge_window_s` must be 0..60 s")
        if not self.merge_window_s <= self.duplicate_window_s <= 86400:  # noqa: PLR2004 - the range its message states
            raise ValueError("`duplicate_window_s` must be merge_window_s..86400 s")

    def meters_fed(self) -> tuple[str, ...]:
        """The meters named here (each must be in [[meters]])."""
        return self.meters or super().meters_fed()


class MeterFeedAdapter:
    """Subscribes to its meters' samples and feeds each telegram to the engine once."""

    Config = MeterFeedConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: MeterFeedConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """One broker session; a lost link ends the run (the supervisor starts it again)."""
        config, settings = self.config, ctx.settings
        meters = config.meters_fed() or tuple(meter.id for meter in settings.meters)
        if not meters:
            raise FatalAdapterError(f"{ctx.name}: no meters to feed: add [[meters]]")
        base = settings.mqtt.base_topic.rstrip("/")
        merger = Merger(config.merge_window_s, config.duplicate_window_s)
        saved = ctx.load_state(STATE_RELEASED)
        if saved:
            merger.remember(saved, time.monotonic(), time.time())
        ctx.health.coverage = merger.coverage
        client = await broker_client(
            settings.mqtt,
            identifier=config.client_id or f"meter-gateway-{settings.gateway.name}-{ctx.name}",
            timeout_s=BROKER_TIMEOUT_S,
            session_expiry_s=config.session_expiry_s,
        )
        inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        try:
            async with connected(client, CONNECT_TIMEOUT_S):
                await client.subscribe([(sample_topic(base, meter), 1) for meter in meters])
                _LOGGER.info("%s: taking the samples of %d meter(s)", ctx.name, len(meters))
                await run_session_tasks(
                    {
                        "feed-receive": _receive(client, inbox),
                        "feed-merge": _merge(ctx, merger, inbox, frozenset(meters)),
                    }
                )
        except aiomqtt.MqttError as err:
            raise ConnectionLost(f"{ctx.name}: broker {settings.mqtt.host}: {err}") from err
        finally:
            # Held telegrams go to the engine now rather than waiting for a restart.
            for merged in merger.flush(time.monotonic()):
                _submit(ctx, merged)
            _show(ctx, merger)
            # A copy arriving after the restart is still known (a kill -9 forgets this).
            with contextlib.suppress(StoreError):
                ctx.save_state(STATE_RELEASED, merger.memory(time.monotonic(), time.time()))


async def _receive(client: aiomqtt.Client, inbox: asyncio.Queue[aiomqtt.Message]) -> None:
    async for message in client.messages:
        inbox.put_nowait(message)


async def _merge(
    ctx: ModuleContext,
    merger: Merger,
    inbox: asyncio.Queue[aiomqtt.Message],
    meters: frozenset[str],
) -> None:
    """Samples in, merged telegrams to the engine when their window has passed."""
    broken = 0
    while True:
        raise_if_cancelling()
        now = time.monotonic()
        released = merger.due(now)
        for merged in released:
            _submit(ctx, merged)
        if released:
            _show(ctx, merger)
        due = merger.next_due()
        try:
            async with asyncio.timeout(None if due is None else max(0.0, due - now)):
                message = await inbox.get()
        except TimeoutError:
            continue
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            sample = decode_sample(payload)
        except WireError as err:
            broken += 1
            ctx.health.detail["broken_messages"] = broken
            _LOGGER.warning("%s: %s on %s", ctx.name, err, message.topic.value)
            continue
        if sample.meter not in meters or not message.topic.value.endswith(f"/{sample.meter}"):
            _LOGGER.warning("%s: a sample for %r on %s", ctx.name, sample.meter, message.topic)
            continue
        merger.add(sample, time.monotonic())


def _submit(ctx: ModuleContext, merged: Merged) -> None:
    sample, best = merged.sample, merged.best_rssi
    extra: tuple[Reading, ...] = (Reading(RECEIVERS_READING, len(merged.receivers)),)
    if best is not None:
        extra += (Reading(RSSI_READING, best, "dBm"),)
    ctx.submit(Sample(sample.meter, ctx.name, sample.at, sample.values() + extra, rssi=best))


def _show(ctx: ModuleContext, merger: Merger) -> None:
    """Counts and coverage for /api/v1/health: which receivers hear which meter, how well."""
    detail = ctx.health.detail
    detail["telegrams"] = {
        "accepted": sum(merger.accepted.values()),
        "copies_merged": merger.copies,
        "late_copies": merger.late_copies,
    }
    detail["accepted"] = dict(merger.accepted)
    detail["coverage"] = {
        meter: {
            receiver: {
                "telegrams": heard.telegrams,
                "rssi_dbm": heard.rssi_dbm,
                "best_rssi_dbm": heard.best_rssi_dbm,
            }
            for receiver, heard in receivers.items()
        }
        for meter, receivers in merger.coverage.items()
    }
