"""The MQTT bridge: meter state, events and profiles out; commands in; Home Assistant discovery.

Two kinds of messages, on purpose:

- Data (``state``, ``event``, ``profile``, ``billing``) goes through the outbox: held in
  memory and published at once, in order; written to SQLite only while the broker does not
  acknowledge it in time (gateway/mqtt/outbox.py), and deleted from there only after PUBACK. A
  broker outage or a restart delays it; nothing spilled is lost unless the size bound says so.
- Session state (``status``, ``status/detail``, ``availability``, discovery configs, per-value
  topics, command replies) is derived from the present and re-published on every connection.
  Queuing it would replay stale copies (an old ``offline`` after a newer ``online``) or put a
  reply behind a week of backlog.

Topics: ``<base>/<gateway>/status`` (retained, last will ``offline``),
``<base>/<gateway>/status/detail``, the gateway's commands ``<base>/<gateway>/set/<command>``,
``<base>/<gateway>/<meter>/{state,availability,event,profile,billing,reply}``,
``<base>/<gateway>/<meter>/set/<command>``, ``<base>/<gateway>/<meter>/value/<name>`` (optional),
``<base>/<gateway>/raw/<module>`` (optional, hex, QoS 0). A receiver (``[cluster] receiver``)
also sends every frame its modules could frame to ``<base>/raw/<protocol>/<gateway>/<module>``
(gateway/cluster/wire.py) as data: QoS 1, through the outbox, so a broker outage delays the
frames and loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sqlite3
import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiomqtt
import msgspec
from aiomqtt.exceptions import MqttConnectError

from gateway.backoff import Backoff
from gateway.cluster.wire import raw_payload, raw_topic
from gateway.config import MqttSection, read_secret
from gateway.contracts.http import OutputStatus
from gateway.engine import Register, Update
from gateway.engine.records import BillingRecord, ProfileRow
from gateway.errors import CommandError, GatewayError
from gateway.model import Command, Event, RawFrame
from gateway.mqtt.client import (
    CONNECT_TIMEOUT_S,
    broker_client,
    connected,
    first_of,
    publish_in_order,
    raise_if_cancelling,
    refused_for_good,
    run_session_tasks,
    transient,
    while_linked,
)
from gateway.mqtt.outbox import STATE_MODULE, Message, Outbox
from gateway.mqtt.payloads import (
    Topics,
    billing_payload,
    command_id_of,
    event_payload,
    parse_command,
    profile_payload,
    reply_payload,
    state_payload,
    value_text,
)
from gateway.mqtt.presence import Presence
from gateway.ratelog import RateLimitedLog
from gateway.signing import CommandVerifier

if TYPE_CHECKING:
    from gateway.view import GatewayView, Output

__all__ = ["MqttBridge"]

_LOGGER = logging.getLogger(__name__)

# A QoS 1 publish not acknowledged in this time means the link is dead even if TCP says not.
PUBLISH_TIMEOUT_S = 30.0
# Messages published concurrently while draining: enough to keep a LAN broker busy, few
# enough that a lost connection re-sends (duplicates) little.
DRAIN_BATCH = 100
MAX_INFLIGHT = 100
# Batches handed to the client before the oldest is acknowledged. Waiting for every PUBACK of
# a batch before reading the next costs several turns of the event loop per batch, and a loop
# busy with a thousand meters turns slowly: the outbox fell behind with the CPU half idle. With
# a second batch handed over, paho keeps MAX_INFLIGHT on the wire and sends the next one as each
# PUBACK comes; a backlog of less than a batch goes as before, one batch at a time.
DRAIN_PIPELINE = 2
# Acknowledged rows are deleted in bulk: inside the next register flush, or after this many
# acks or this long while a backlog drains, or this long after the last ack when idle.
ACK_COMMIT_MAX = 1000
ACK_COMMIT_DRAIN_S = 5.0
ACK_COMMIT_IDLE_S = 30.0
# Availability and pending discovery are checked this often.
MAINTAIN_EVERY_S = 1.0
STATUS_DETAIL_EVERY_S = 30.0
# Home Assistant subscribes to discovery right after its birth message; a short wait avoids
# racing its MQTT setup (rtlamr2mqtt#406).
DISCOVERY_AFTER_BIRTH_S = 1.0
COMMAND_TIMEOUT_S = 30.0
# On SIGTERM: what is still queued gets this long to reach the broker before we say offline.
SHUTDOWN_DRAIN_S = 3.0
RAW_QUEUE_MAX = 256
# A session this long was healthy: the next failure starts the backoff from its first step.
HEALTHY_SESSION_S = 10.0
# A broker away for hours is retried every minute at most; its line repeats this seldom, with
# the count of attempts folded into it (journald shares the SD card with the database).
RETRY_LOG_EVERY_S = 600.0
# How often the outbox is checked for messages overdue for the disk.
SPILL_CHECK_S = 1.0
# State sequence numbers are saved with every checkpoint and spill. After a kill -9 they resume
# this far past the saved one, beyond any number handed out since (at most one state per meter
# and 0.8 publish intervals between checkpoints, commands included twice over): a number never
# comes round twice, and the jump shows the gap.
SEQ_MARGIN = 100
SEQ_NOTE = "mqtt_seq"
_VALUE_DECODER = msgspec.json.Decoder(float_hook=lambda text: text)


class MqttBridge:
    """The ``mqtt`` output: one broker connection, kept up forever."""

    name = "mqtt"

    def __init__(self, gateway: GatewayView) -> None:
        self._gateway = gateway
        self.config: MqttSection = gateway.settings.mqtt
        self.gateway_name = gateway.settings.gateway.name
        self._base = self.config.base_topic.rstrip("/")
        self._receiver = gateway.settings.cluster.receiver
        self.topics = Topics(
            self._base,
            self.gateway_name,
            self.config.discovery_prefix.rstrip("/"),
        )
        self.outbox = Outbox(
            gateway.store,
            max_bytes=int(self.config.outbox_max_mb * 1_000_000),
            policy=self.config.outbox_policy,
            spill_after_s=self.config.outbox_spill_after_s,
        )
        self.presence = Presence(gateway, self.config, self.topics, self.outbox)
        self._client: aiomqtt.Client | None = None
        self._legacy_cleared = False  # once per run, at the first connection
        self._wakeup = asyncio.Event()
        self._maintain_now = asyncio.Event()
        self._seq: dict[str, int] = {}
        self._seq_saved: dict[str, int] = {}
        gateway_section = gateway.settings.gateway
        self._seq_gap = (
            0
            if gateway.clean_start
            else 2 * math.ceil(gateway_section.checkpoint_s / gateway_section.publish_interval_s)
            + SEQ_MARGIN
        )
        self._latest_state: dict[str, int] = {}
        self._state_meters: dict[str, str] = {}
        self._reannounce_at: float | None = None
        self._first_ack_at: float | None = None
        self._inflight: list[asyncio.Task[None]] = []  # batches handed over, oldest first
        self._raw: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(RAW_QUEUE_MAX)
        self._undo_command = gateway.add_command("resend_discovery", self._resend_discovery)
        # One verifier for the bridge's life, so a replay is caught across reconnects.
        secret_file = self.config.command_secret_file
        self._verifier = (
            CommandVerifier(
                read_secret(secret_file, what="mqtt.command_secret_file").encode(),
                self.config.command_max_age_s,
                gateway=gateway.settings.gateway.name,
            )
            if secret_file
            else None
        )

    @property
    def connected(self) -> bool:
        """True while a broker session is up."""
        return self._client is not None

    def status(self) -> OutputStatus:
        """The connection and the outbox, for /api/v1/health and /metrics."""
        return OutputStatus(
            connected=self.connected,
            outbox_depth=self.outbox.waiting,
            outbox_bytes=self.outbox.waiting_bytes,
            outbox_dropped=self.outbox.dropped,
        )

    # the Output protocol ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and reconnect with jittered backoff until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._spill_loop(), name="mqtt-spill")
                await self._connect_forever()
        finally:
            self._undo_command()
            # Stopping: what the broker has not acknowledged goes to disk, for the next start.
            try:
                self._spill()
            except (sqlite3.Error, GatewayError) as err:
                _LOGGER.warning("MQTT: %d messages lost at shutdown: %s", self.outbox.depth, err)

    async def _connect_forever(self) -> None:
        backoff = Backoff(healthy_after_s=HEALTHY_SESSION_S)
        retries = RateLimitedLog(_LOGGER, RETRY_LOG_EVERY_S)
        while True:
            # No raise_if_cancelling() here: Python 3.11's TaskGroup leaves this task's
            # cancelling() at 1 after a failed session (it cancels its parent and never
            # uncancels), which would end the bridge at the first lost link. The sleep below
            # honours a real cancellation.
            started = time.monotonic()
            fatal = False
            try:
                await self._session()
                reason = "the broker closed the session"
            except MqttConnectError as err:
                reason = str(err)
                fatal = refused_for_good(err)
            except aiomqtt.MqttError as err:
                reason = str(err) or type(err).__name__
                fatal = "CERTIFICATE_VERIFY_FAILED" in reason
            except ExceptionGroup as group:
                # A link lost while several publishes were waiting (discovery, say) is
                # still just a lost link: one line, no traceback.
                lost = first_of(group, aiomqtt.MqttError)
                if lost is None:
                    raise
                reason = str(lost) or type(lost).__name__
            except (OSError, ssl.SSLError, GatewayError) as err:
                reason, fatal = str(err), not transient(err)
            except Exception as err:
                # A bug or a store error must not stop the meters: log it, start over.
                _LOGGER.exception("MQTT bridge failed")
                reason = f"{type(err).__name__}: {err}"
            ran_s = time.monotonic() - started
            if ran_s >= HEALTHY_SESSION_S:
                retries = RateLimitedLog(_LOGGER, RETRY_LOG_EVERY_S)  # a new outage: say so
            delay = backoff.fatal_delay() if fatal else backoff.next_delay(ran_s)
            retries.warning(
                "MQTT broker %s:%d: %s; retrying in %.1f s (%d messages wait in the outbox)",
                self.config.host,
                self.config.port,
                reason,
                delay,
                self.outbox.waiting,
            )
            await asyncio.sleep(delay)

    async def _spill_loop(self) -> None:
        """Messages the broker has not acknowledged in time go to disk, a batch at a time."""
        while True:
            raise_if_cancelling()
            await asyncio.sleep(SPILL_CHECK_S)
            if self.outbox.spill_due():
                try:
                    self._spill()
                except (sqlite3.Error, GatewayError) as err:
                    # They stay in memory and go with the next spill or the broker.
                    _LOGGER.warning("MQTT outbox: cannot spill to disk: %s", err)

    def _spill(self) -> None:
        """Spill the outbox with the state sequence numbers, in one transaction."""
        with self._gateway.store.transaction():
            spilled = self.outbox.spill()
            self.on_checkpoint()
        if spilled:
            _LOGGER.debug("MQTT outbox: %d messages to disk", spilled)

    def on_checkpoint(self) -> None:
        """Inside a checkpoint's (or a spill's) transaction: the state sequence numbers."""
        changed = {m: seq for m, seq in self._seq.items() if self._seq_saved.get(m) != seq}
        for meter, seq in changed.items():
            # In the meter's checkpoint row, which the checkpoint writes anyway: no page of its own.
            self._gateway.store.put_meter_note(meter, SEQ_NOTE, str(seq))
        if changed:
            self._gateway.store.after_commit(functools.partial(self._seq_saved.update, changed))

    def on_state(self, meter: str, registers: Mapping[str, Register]) -> None:
        """Queue the meter's state (from memory, as ``Meters.published`` shows it)."""
        seq = self._seq_of(meter) + 1
        topic = self.topics.state(meter)
        row = self.outbox.append(topic, state_payload(meter, registers, seq), retain=True)
        self._seq[meter] = seq
        if row is not None:
            self._latest_state[meter] = row
            self._state_meters[topic] = meter
        if self.presence.needs_announce(meter):
            self._maintain_now.set()
        self._wakeup.set()

    def on_live(self, update: Update) -> None:
        """The meter delivered: note it for availability (values wait for the flush)."""
        if self.presence.seen(update.meter):
            self._maintain_now.set()

    def on_event(self, event_id: int, event: Event) -> None:
        """Queue an event from the non-volatile log."""
        self.outbox.append(self.topics.event(event.meter), event_payload(event_id, event))
        self._wakeup.set()

    def on_profile(self, meter: str, row: ProfileRow) -> None:
        """Queue a closed load-profile interval, inside the transaction that stores it."""
        self.outbox.append(self.topics.profile(meter), profile_payload(meter, row))
        self._wakeup.set()

    def on_billing(self, meter: str, record: BillingRecord) -> None:
        """Queue a debiting-stop snapshot (retained: the last one stays readable)."""
        payload = billing_payload(meter, record)
        self.outbox.append(self.topics.billing(meter), payload, retain=True)
        self._wakeup.set()

    def on_raw(self, frame: RawFrame) -> None:
        """A receiver's frame goes to the decode workers through the outbox (QoS 1); the hex
        debug copy goes only while connected (QoS 0, never queued on disk)."""
        if self._receiver and frame.ok:
            topic = raw_topic(self._base, frame.protocol, self.gateway_name, frame.module)
            self.outbox.append(topic, raw_payload(frame))
            self._wakeup.set()
        if not self.config.raw_frames or self._client is None:
            return
        try:
            self._raw.put_nowait((frame.module, frame.data))
        except asyncio.QueueFull:
            self.presence.raw_dropped += 1

    # connection ---------------------------------------------------------------------------------

    async def _session(self) -> None:
        client = await self._new_client()
        async with connected(client, CONNECT_TIMEOUT_S):
            self._client = client
            _LOGGER.info(
                "MQTT connected to %s:%d as %s (%d queued messages to deliver)",
                self.config.host,
                self.config.port,
                client.identifier,
                self.outbox.waiting,
            )
            try:
                await self._serve(client)
            except asyncio.CancelledError:
                self._client = None
                await self._goodbye(client)
                raise
            finally:
                self._client = None
                await self._settle_inflight()
                self._commit_acks()

    async def _new_client(self) -> aiomqtt.Client:
        client = await broker_client(
            self.config,
            identifier=self.config.client_id or f"meter-gateway-{self.gateway_name}",
            timeout_s=PUBLISH_TIMEOUT_S,
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True),
            max_inflight=MAX_INFLIGHT,
        )
        client.pending_calls_threshold = DRAIN_BATCH * 3
        return client

    async def _serve(self, client: aiomqtt.Client) -> None:
        await while_linked(client, self._greet(client))
        commands: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        await run_session_tasks(
            {
                "mqtt-receive": self._receive(client, commands),
                "mqtt-commands": self._run_commands(client, commands),
                "mqtt-drain": self._drain(client),
                "mqtt-maintain": self._maintain(client),
                "mqtt-raw": self._forward_raw(client),
            }
        )

    async def _greet(self, client: aiomqtt.Client) -> None:
        """Subscriptions, online, discovery, availability: before any session task runs."""
        # Subscribe before saying online: a client that sees "online" may send a command at
        # once, and one published before the subscription is gone (seen on a loaded host).
        subscriptions = [(topic, 1) for topic in self.topics.commands]
        if self.config.discovery:
            subscriptions.append((self.topics.ha_status, 1))
        await client.subscribe(subscriptions)
        await client.publish(self.topics.status, b"online", qos=1, retain=True)
        if not self._legacy_cleared:
            # Topics before the gateway's name was in them: their retained state would show
            # stale values (and, with two gateways, each other's) to anyone still reading them.
            meters = [meter.id for meter in self._gateway.settings.meters]
            for topic in self.topics.legacy(meters):
                await client.publish(topic, b"", qos=1, retain=True)
            self._legacy_cleared = True
        await self.presence.announce(client)
        await self.presence.publish_availability(client, everything=True)
        await self.presence.publish_detail(client)

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """On shutdown: hand over what is queued (bounded), then say offline ourselves."""
        try:
            async with asyncio.timeout(SHUTDOWN_DRAIN_S):
                if self._inflight:
                    await asyncio.wait(self._inflight)
                self._commit_acks()
                cursor = 0
                while batch := self.outbox.peek(cursor, DRAIN_BATCH):
                    await self._deliver_batch(client, batch)
                    cursor = batch[-1].id
                self._commit_acks()
                await client.publish(self.topics.status, b"offline", qos=1, retain=True)
        except (TimeoutError, aiomqtt.MqttError) as err:
            _LOGGER.warning(
                "MQTT shutdown: %s; %d messages stay queued for the next start",
                str(err) or "out of time",
                self.outbox.waiting,
            )

    # tasks of a session -------------------------------------------------------------------------

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish the outbox in id order, forever; acked rows are deleted in bulk."""
        cursor = 0
        last_commit = time.monotonic()
        inflight = self._inflight
        while True:
            raise_if_cancelling()
            if len(inflight) < DRAIN_PIPELINE and (batch := self.outbox.peek(cursor, DRAIN_BATCH)):
                # Its publishes start in id order, after those of the batches before it.
                inflight.append(asyncio.create_task(self._deliver_batch(client, batch)))
                cursor = batch[-1].id
                continue
            if not inflight:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Shielded: on shutdown the batches in flight finish (no re-sent duplicates).
            await asyncio.shield(inflight[0])
            inflight.pop(0)
            now = time.monotonic()
            if self.outbox.waiting and (
                self.outbox.pending_acks >= ACK_COMMIT_MAX
                or now - last_commit >= ACK_COMMIT_DRAIN_S
            ):
                # A backlog is draining: keep the table (and a crash's re-sends) small.
                self._commit_acks()
                last_commit = now

    async def _settle_inflight(self) -> None:
        """End the batches still waiting for PUBACKs of a dead session; their rows stay queued."""
        tasks = list(self._inflight)
        self._inflight.clear()
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # the session's own error says what happened

    async def _deliver_batch(self, client: aiomqtt.Client, batch: list[Message]) -> None:
        def acked(index: int) -> None:
            self.outbox.ack(batch[index].id)
            if self._first_ack_at is None:
                self._first_ack_at = time.monotonic()

        await publish_in_order(
            client, [(m.topic, m.payload, m.qos, m.retain) for m in batch], acked, PUBLISH_TIMEOUT_S
        )
        if not self.config.per_value_topics:
            return
        for message in batch:
            meter = self._state_meters.get(message.topic)
            if meter is not None and self._latest_state.get(meter) == message.id:
                await self._publish_values(client, meter, message.payload)

    async def _publish_values(self, client: aiomqtt.Client, meter: str, state: bytes) -> None:
        """Per-value topics follow the newest delivered state, never an older one."""
        readings = _VALUE_DECODER.decode(state).get("readings", {})
        async with asyncio.TaskGroup() as group:
            for key, reading in readings.items():
                group.create_task(
                    client.publish(
                        self.topics.value(meter, key),
                        value_text(reading.get("value")),
                        qos=1,
                        retain=True,
                    )
                )

    async def _receive(
        self, client: aiomqtt.Client, commands: asyncio.Queue[aiomqtt.Message]
    ) -> None:
        async for message in client.messages:
            topic = message.topic.value
            if topic == self.topics.ha_status:
                if bytes(message.payload).strip() == b"online":
                    _LOGGER.info("Home Assistant is online: discovery follows")
                    self._reannounce_at = time.monotonic() + DISCOVERY_AFTER_BIRTH_S
                continue
            if message.retain:
                # Retained commands would run again at every reconnect; refuse to guess.
                _LOGGER.warning("ignored a retained command on %s; clear it on the broker", topic)
                continue
            await commands.put(message)

    async def _run_commands(
        self, client: aiomqtt.Client, commands: asyncio.Queue[aiomqtt.Message]
    ) -> None:
        """Execute commands one at a time, in arrival order, and reply to each."""
        while True:
            raise_if_cancelling()
            message = await commands.get()
            parsed = self.topics.parse_command(message.topic.value)
            if parsed is None:
                continue
            meter, name = parsed
            payload = message.payload if isinstance(message.payload, bytes) else b""
            command_id: str | None = command_id_of(payload)
            try:
                if self._verifier is not None:
                    command = self._verifier.verify(meter, name, payload, time.time())
                else:
                    command = parse_command(meter, name, payload)
                    self._allow_unsigned(name)
                command_id = command.id
                result = await self._execute(command)
            except CommandError as err:
                _LOGGER.info("command %s for %s refused: %s (%s)", name, meter, err, err.code)
                reply = reply_payload(command_id, name, error=err)
            else:
                reply = reply_payload(command_id, name, result=result)
            await client.publish(self.topics.reply(meter), reply, qos=1)

    async def _execute(self, command: Command) -> Mapping[str, Any]:
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                return await self._gateway.execute(command)
        except TimeoutError:
            raise CommandError(
                "timeout", f"{command.name} did not finish within {COMMAND_TIMEOUT_S:.0f} s"
            ) from None
        except (CommandError, asyncio.CancelledError, aiomqtt.MqttError):
            raise
        except Exception as err:
            _LOGGER.exception("command %s (id %s) failed", command.name, command.id)
            raise CommandError("internal", f"{type(err).__name__}: {err}") from err

    async def _maintain(self, client: aiomqtt.Client) -> None:
        """Availability, new discovery, status detail and idle ack commits, once a second."""
        last_detail = time.monotonic()
        detail_dropped = self.outbox.dropped
        while True:
            raise_if_cancelling()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MAINTAIN_EVERY_S):
                    await self._maintain_now.wait()
            self._maintain_now.clear()
            now = time.monotonic()
            if self._reannounce_at is not None and now >= self._reannounce_at:
                self._reannounce_at = None
                await self.presence.announce(client)
            elif self.config.discovery:
                await self.presence.announce(client, only_changed=True)
            await self.presence.publish_availability(client)
            if now - last_detail >= STATUS_DETAIL_EVERY_S or self.outbox.dropped != detail_dropped:
                last_detail, detail_dropped = now, self.outbox.dropped
                await self.presence.publish_detail(client)
            if self._first_ack_at is not None and now - self._first_ack_at >= ACK_COMMIT_IDLE_S:
                self._commit_acks()

    async def _forward_raw(self, client: aiomqtt.Client) -> None:
        while True:
            raise_if_cancelling()
            module, raw = await self._raw.get()
            await client.publish(self.topics.raw(module), raw.hex().encode(), qos=0)

    # commands -----------------------------------------------------------------------------------

    async def _resend_discovery(self, command: Command) -> Mapping[str, Any]:
        """``resend_discovery``: publish every discovery config again (harmless)."""
        if command.args:
            raise CommandError(
                "bad_args", f"resend_discovery takes no arguments, got {sorted(command.args)}"
            )
        client = self._client
        if not self.config.discovery:
            raise CommandError("discovery_disabled", "mqtt.discovery is false in the config")
        if client is None:
            raise CommandError(
                "not_connected", "no broker connection; discovery is re-sent on reconnect"
            )
        return {"published": await self.presence.announce(client)}

    def _allow_unsigned(self, name: str) -> None:
        """Refuse an unsigned command that would change something, unless opted in."""
        if self.config.unsigned_commands or name not in self._gateway.commands:
            return  # an unknown name gets its own answer from execute()
        spec = self._gateway.command_spec(name)
        if spec is not None and not spec.changes_state:
            return
        raise CommandError(
            "commands_disabled",
            f"{name} changes state and MQTT commands are not signed: set"
            " mqtt.command_secret_file (signed commands) or, on a broker you trust,"
            " mqtt.unsigned_commands = true",
        )

    # helpers ------------------------------------------------------------------------------------

    def _seq_of(self, meter: str) -> int:
        if meter not in self._seq:
            store = self._gateway.store
            noted = store.meter_note(meter, SEQ_NOTE)
            # Where a data directory from before the checkpoint rows kept it.
            raw = store.get_state(STATE_MODULE, f"seq:{meter}")
            saved = max(int(noted or 0), int(raw.decode()) if raw else 0)
            self._seq_saved[meter] = saved
            self._seq[meter] = saved + self._seq_gap if saved else 0
        return self._seq[meter]

    def _commit_acks(self) -> None:
        self._first_ack_at = None
        try:
            self.outbox.commit_acks()
        except sqlite3.Error as err:
            # The rows stay and go out again after a restart: a duplicate, never a loss.
            _LOGGER.warning("cannot delete delivered messages from the outbox: %s", err)


if TYPE_CHECKING:

    def _is_an_output(bridge: MqttBridge) -> Output:
        """mypy checks here that the bridge keeps up with the Output protocol."""
        return bridge
