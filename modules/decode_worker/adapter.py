"""``[[modules]] type = "decode_worker"``: decode the raw frames receivers share, per meter out.

Every worker of a group subscribes to ``$share/<group>/<base>/raw/<protocol>/#`` (MQTT 5 shared
subscription): the broker hands each frame to one member, so adding workers adds decoding
capacity and a worker that goes away leaves its share to the others. Decoding is stateless
(the keys come from this module's own config), so any worker can take any frame.

A frame is acknowledged to the broker only after the sample decoded from it has been
acknowledged in turn (or when there is nothing to publish): a worker killed in between leaves
the frame unacknowledged on its persistent session and the broker sends it again, to this worker
when it is back (mosquitto) or to another member (brokers that re-balance). Nothing is lost;
a frame may be decoded twice, which the engine's duplicate check absorbs (``meter_feed``).

Kamstrup compact frames need the format learned from an earlier full frame of the same meter;
each worker learns its own, so right after a start a compact frame may fail on a worker that
has not seen the full frame yet (counted as ``unknown_compact_format``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import ClassVar, Literal

import aiomqtt

from gateway.adapter import ModuleContext
from gateway.cluster.wire import (
    DecodedSample,
    WireError,
    encode_sample,
    frame_digest,
    raw_filter,
    read_raw,
    receiver_of,
    sample_topic,
)
from gateway.config import ModuleConfig
from gateway.engine.commands import CommandSpec
from gateway.errors import ConfigError, ConnectionLost, FatalAdapterError
from gateway.mqtt.client import CONNECT_TIMEOUT_S, broker_client, connected, run_session_tasks
from modules.codecs.errors import FrameError
from modules.codecs.wmbus.layers import strip_crcs
from modules.wmbus.config import WmbusMeterConfig, meter_entries
from modules.wmbus.pipeline import MeterEntry, Router, meter_time, readings
from modules.wmbus.receivers import Heard

__all__ = ["DecodeWorkerAdapter", "DecodeWorkerConfig"]

_LOGGER = logging.getLogger(__name__)

# An unacknowledged publish or subscribe in this time means the link is dead.
BROKER_TIMEOUT_S = 10.0
# How long the broker keeps this worker's session (subscription and unacknowledged frames)
# while it is away: a restart or a reboot, not a decommissioned worker.
SESSION_EXPIRY_S = 3600
# Frames decoded and waiting for their sample's PUBACK at once.
MAX_INFLIGHT = 64
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class DecodeWorkerConfig(ModuleConfig, frozen=True, kw_only=True):
    """One worker in a shared-subscription group; its meters and keys as the wmbus module's."""

    protocol: Literal["wmbus"] = "wmbus"
    group: str = "decoders"  # the shared subscription group: every worker of a cluster
    # The meters whose keys this worker holds; `meter` names the engine meter (and so the
    # topic <base>/samples/<meter>), default: the radio id.
    meters: tuple[WmbusMeterConfig, ...] = ()
    session_expiry_s: int = SESSION_EXPIRY_S
    max_inflight: int = MAX_INFLIGHT
    client_id: str | None = None  # default: meter-gateway-<gateway.name>-<module name>

    def __post_init__(self) -> None:
        if not _NAME.match(self.group):
            raise ValueError(f"`group` {self.group!r}: use letters, digits, _ and - only")
        if not 0 < self.session_expiry_s < 2**32:
            raise ValueError("`session_expiry_s` must be 1..4294967295 (MQTT 5 session expiry)")
        if not 1 <= self.max_inflight <= 65535:  # noqa: PLR2004 - the range its message states
            raise ValueError("`max_inflight` must be 1..65535")
        seen: set[tuple[str, str | None]] = set()
        for index, entry in enumerate(self.meters):
            if (entry.address, entry.manufacturer) in seen:
                raise ValueError(f"meters[{index}]: meter {entry.id} is listed twice")
            seen.add((entry.address, entry.manufacturer))
            if entry.meter is not None and not _NAME.match(entry.meter):
                raise ValueError(f"meters[{index}].meter: use letters, digits, _ and - only")

    def meters_fed(self) -> tuple[str, ...]:
        """None here: the samples go to the broker, for the engine that owns each meter."""
        return ()

    def entries(self) -> list[MeterEntry]:
        """The meters with their keys read (ConfigError names the meter)."""
        return meter_entries(self.meters, self.meter)


class DecodeWorkerAdapter:
    """Takes its share of the group's raw frames, decodes them, publishes samples per meter."""

    Config = DecodeWorkerConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: DecodeWorkerConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """One broker session; a lost link ends the run (the supervisor starts it again)."""
        config = self.config
        try:
            router = Router(config.entries(), duplicate_window_s=0.0)
        except ConfigError as err:
            raise FatalAdapterError(f"{ctx.name}: {err}") from err
        settings = ctx.settings
        decoder = _Decoder(ctx, router, settings.mqtt.base_topic.rstrip("/"))
        client = await broker_client(
            settings.mqtt,
            identifier=config.client_id or f"meter-gateway-{settings.gateway.name}-{ctx.name}",
            timeout_s=BROKER_TIMEOUT_S,
            max_inflight=config.max_inflight,
            session_expiry_s=config.session_expiry_s,
        )
        # A frame is acknowledged when its sample is (see the module docstring).
        client._client.manual_ack_set(True)
        try:
            async with connected(client, CONNECT_TIMEOUT_S):
                await client.subscribe(
                    raw_filter(decoder.base, config.protocol, config.group), qos=1
                )
                _LOGGER.info(
                    "%s: decoding %s frames in group %r for %d meter(s)",
                    ctx.name,
                    config.protocol,
                    config.group,
                    len(tuple(router.entries)),
                )
                pending: asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None] | None]]
                pending = asyncio.Queue(config.max_inflight)
                async with asyncio.TaskGroup() as publishes:
                    await run_session_tasks(
                        {
                            "worker-decode": decoder.receive(client, pending, publishes),
                            "worker-ack": _acknowledge(client, pending),
                        }
                    )
        except aiomqtt.MqttError as err:
            raise ConnectionLost(f"{ctx.name}: broker {settings.mqtt.host}: {err}") from err


class _Decoder:
    """Frames in, samples out; counts what became of each frame in the module's health."""

    def __init__(self, ctx: ModuleContext, router: Router, base: str) -> None:
        self.ctx = ctx
        self.router = router
        self.base = base
        self.zone = ctx.settings.zone
        self.worker = f"{ctx.settings.gateway.name}/{ctx.name}"
        self.counts: dict[str, int] = ctx.health.detail.setdefault("frames", {})

    async def receive(
        self,
        client: aiomqtt.Client,
        pending: asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None] | None]],
        publishes: asyncio.TaskGroup,
    ) -> None:
        async for message in client.messages:
            out = self.decode(message.topic.value, message.payload)
            task = None
            if out is not None:
                topic, payload = out
                task = publishes.create_task(client.publish(topic, payload, qos=1))
            await pending.put((message, task))

    def decode(self, topic: str, payload: object) -> tuple[str, bytes] | None:
        """The sample topic and payload of one raw frame, or None (counted why)."""
        ctx = self.ctx
        if not isinstance(payload, bytes):
            self._count("broken")
            return None
        try:
            protocol, receiver = receiver_of(self.base, topic)
            at, rssi, data = read_raw(payload)
        except WireError as err:
            _LOGGER.debug("%s: %s", ctx.name, err)
            self._count("broken")
            return None
        outcome = self.router.route(Heard(data, rssi_dbm=rssi), now=time.monotonic(), at=at)
        if outcome.kind != "decoded":
            error = outcome.error
            if error is not None and outcome.entry is not None:
                ctx.frame_failed(error)
            self._count(error.code if error is not None else outcome.kind)
            return None
        entry, decoded, link = outcome.entry, outcome.decoded, outcome.link
        assert entry is not None and decoded is not None and link is not None
        try:
            body, _, _ = strip_crcs(data, "auto")
        except FrameError:  # the router read it just now; kept for the type checker
            self._count("broken")
            return None
        access = decoded.frame.get("access_number")
        sample = DecodedSample(
            meter=entry.meter,
            protocol=protocol,
            address=f"{link.manufacturer_code} {link.id}",
            access=access if isinstance(access, int) else None,
            digest=frame_digest(body[1:]),
            at=meter_time(decoded, self.zone, at),
            received=at,
            receiver=receiver,
            rssi=rssi,
            worker=self.worker,
            readings=tuple((r.obis, r.value, r.unit) for r in readings(decoded)),
        )
        ctx.frame_ok()
        self._count("decoded")
        return sample_topic(self.base, entry.meter), encode_sample(sample)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


async def _acknowledge(
    client: aiomqtt.Client,
    pending: asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None] | None]],
) -> None:
    """PUBACK each frame, in the order received (MQTT 5 section 4.6), once its sample is out."""
    while True:
        message, task = await pending.get()
        if task is not None:
            await task  # a publish that failed ends the session: the frame stays unacknowledged
        if message.qos:
            client._client.ack(message.mid, message.qos)
