"""The Z-Wave module: the meter as a Z-Wave node, for in-home displays and home controllers.

A USB stick with Serial API end-node firmware carries the radio; this adapter is the node's
application (the 382L's Z-Wave module in software). It resets the stick, announces a meter node
with its command classes, joins or leaves a network in learn mode on command, answers other
nodes (Meter, Version, Manufacturer Specific, Association, Z-Wave Plus Info, Multi Channel) and
sends Meter Reports to the lifeline when values change. What it reports follows the meter's
display list; the decisions are in ``node.py``, the serial protocol in ``host.py``, S2 and S0
(key exchange, nonces, encryption) in ``security.py``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from gateway import __version__
from gateway.adapter import ModuleContext
from gateway.engine.commands import REMOTE, CommandSpec, ModuleArgs, Queued
from gateway.errors import AdapterError, CommandError, FatalAdapterError
from gateway.model import Command
from gateway.transport import SerialSettings, open_link
from modules.codecs.errors import FrameError
from modules.codecs.zwave.api.messages import (
    APPLICATION_NODEINFO_LISTENING,
    GENERIC_TYPE_METER,
    SPECIFIC_TYPE_SIMPLE_METER,
    LearnMode,
    LearnStatus,
    RxStatus,
    TxStatus,
)
from modules.codecs.zwave.api.node import (
    ApplNodeInformationRequest,
    GetInitDataRequest,
    GetInitDataResponse,
    GetVersionRequest,
    GetVersionResponse,
    MemoryGetIdRequest,
    MemoryGetIdResponse,
    SerialApiStarted,
    SetLearnModeCallback,
    SetLearnModeRequest,
    SetLearnModeResponse,
    SoftResetRequest,
)
from modules.codecs.zwave.api.transport import ApplicationCommand, BridgeApplicationCommand
from modules.codecs.zwave.cc.base import CommandClassId
from modules.codecs.zwave.serial import BAUD_RATE, ControlByte
from modules.zwave.config import ZwaveConfig
from modules.zwave.host import SerialApiHost
from modules.zwave.node import Identity, MeterNode
from modules.zwave.security import Level, NodeSecurity, Secrets, load_secrets, save_secrets
from modules.zwave.values import ReportPolicy, channel_for, channels_for

__all__ = ["ZwaveAdapter", "ZwaveConfig"]

_LOGGER = logging.getLogger(__name__)

# zwave-js gives a 700/800-series module 5 s to say SERIAL_API_STARTED after a soft reset;
# 500-series modules never say it, and INS12350 has the host wait 1.5 s for them instead.
STARTED_TIMEOUT_S = 5.0
# A stick that hangs with its port open says nothing, and a node without a lifeline never sends:
# after this much silence the module asks the stick for its ids, which also notices a stick
# reset to factory defaults behind the gateway's back.
STICK_CHECK_S = 60.0
STATE_KEY = "network"
_END_NODE_API = 0x01  # GetInitData capabilities bit 0: the stick runs end-node firmware
_LEARN_CALLBACK_ID = 0x01  # learn mode reports progress through this callback id
_BROADCAST_OR_MULTICAST = RxStatus.TYPE_BROAD | RxStatus.TYPE_MULTI
_OFFERED = {
    "s2_authenticated": Level.S2_AUTHENTICATED,
    "s2_unauthenticated": Level.S2_UNAUTHENTICATED,
    "s0": Level.S0,
}
_LEARN_MODES = {
    "classic": LearnMode.CLASSIC,
    "nwi": LearnMode.NWI,
    "nwe": LearnMode.NWE,
    "stop": LearnMode.DISABLE,
}


class _NetworkState(msgspec.Struct, frozen=True):
    """What the node persists: the network it belongs to and its lifeline."""

    home_id: int = 0
    node_id: int = 0
    lifeline: tuple[int, ...] = ()


class LearnModeArgs(ModuleArgs, frozen=True):
    """``learn_mode``: classic inclusion/exclusion, network-wide inclusion (nwi) or exclusion
    (nwe), or stop; default: classic when in a network, else nwi."""

    # any case, as the module has always taken it (NWI is nwi)
    mode: str | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode.lower() not in _LEARN_MODES:
            known = ", ".join(_LEARN_MODES)
            raise ValueError(f"`mode` {self.mode[:20]!r} is not one of {known}")


class ZwaveAdapter:
    """A Z-Wave meter node that reports one meter's display values."""

    Config = ZwaveConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = (
        CommandSpec(
            "exclude",
            "Put the Z-Wave stick into network-wide exclusion (leave the network).",
            REMOTE,
            ModuleArgs,
            Queued,
        ),
        CommandSpec(
            "learn_mode",
            "Put the Z-Wave stick into learn mode to join (or leave) a controller's network.",
            REMOTE,
            LearnModeArgs,
            Queued,
        ),
    )

    def __init__(self, config: ZwaveConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Reset the stick, announce the node and serve until the link fails or is cancelled."""
        settings = SerialSettings(baudrate=BAUD_RATE, bytesize=8, parity="N", stopbits=1)
        async with open_link(self.config.port, settings) as link:
            host = SerialApiHost(link, on_bad_frame=ctx.frame_failed)
            session = _Session(self.config, ctx, host)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(host.receive(), name=f"{ctx.name}.receive")
                    await session.start()
                    group.create_task(session.dispatch(), name=f"{ctx.name}.dispatch")
                    group.create_task(session.report(), name=f"{ctx.name}.report")
                    group.create_task(session.housekeeping(), name=f"{ctx.name}.housekeeping")
                    group.create_task(session.take_commands(), name=f"{ctx.name}.commands")
            except* AdapterError as errors:
                # The supervisor handles AdapterErrors; it should not see them in a group.
                raise errors.exceptions[0] from None


class _Session:
    """One connected run: the stick's state, the node application and learn mode."""

    def __init__(self, config: ZwaveConfig, ctx: ModuleContext, host: SerialApiHost) -> None:
        self.config = config
        self.ctx = ctx
        self.host = host
        codes = config.obis or getattr(
            ctx.settings.meter(config.meter).display, config.display_list
        )
        skipped = [code for code in codes if channel_for(code) is None]
        if skipped:
            _LOGGER.info("%s: no Meter CC scale for %s; not reported", ctx.name, ", ".join(skipped))
        channels = channels_for(codes)
        if not channels:
            raise FatalAdapterError(f"none of {', '.join(codes)} can be reported over Z-Wave")
        self.state = _load_state(ctx)
        policy = ReportPolicy(
            min_interval_s=config.report_min_interval_s,
            interval_s=config.report_interval_s,
            delta_kwh=config.report_delta_kwh,
            delta_pct=config.report_delta_pct,
        )
        identity = Identity(
            manufacturer_id=config.manufacturer_id,
            product_type=config.product_type,
            product_id=config.product_id,
            application_version=_two_numbers(__version__),
            serial_number=f"{ctx.settings.gateway.name}-{config.meter}",
        )
        offered = [_OFFERED[name] for name in config.security]
        security_classes = [CommandClassId.SECURITY_2] if any(lv.is_s2 for lv in offered) else []
        if Level.S0 in offered:
            security_classes.append(CommandClassId.SECURITY)
        self.node = MeterNode(
            channels,
            identity,
            policy,
            lifeline=self.state.lifeline,
            security_classes=security_classes,
        )
        self.keys_path = (
            Path(config.keys_file)
            if config.keys_file
            else ctx.settings.data_path / f"zwave-{ctx.name}-keys.json"
        )
        try:
            # A node that offers no security needs no key pair on disk.
            secrets = load_secrets(self.keys_path) if offered else Secrets.generate()
        except (OSError, ValueError) as err:
            raise FatalAdapterError(f"{self.keys_path}: {err}") from err
        self.security = NodeSecurity(
            secrets,
            offered,
            self.node.secure_classes,
            own_node_id=self.state.node_id,
            home_id=self.state.home_id,
        )
        self.learning: str | None = None
        self.learn_deadline = 0.0
        self._loop = asyncio.get_running_loop()
        self.changes = ctx.subscribe(config.meter)

    async def start(self) -> None:
        """Soft-reset the stick, check its firmware, announce the node, read the network ids."""
        # INS12350 start-up: a NAK first makes the module drop any frame it was half-way through.
        await self.host.link.write(bytes((ControlByte.NAK,)))
        await self.host.send(SoftResetRequest())
        await self._await_started()
        init = await self.host.request(GetInitDataRequest(), GetInitDataResponse)
        if not init.capabilities & _END_NODE_API:
            raise FatalAdapterError(
                f"{self.config.port} runs Z-Wave controller firmware; the zwave module needs a "
                "stick with Serial API end-node firmware"
            )
        version = await self.host.request(GetVersionRequest(), GetVersionResponse)
        self.node.identity = msgspec.structs.replace(
            self.node.identity,
            library_type=version.library_type,
            protocol_version=_two_numbers(version.version),
        )
        await self._announce()
        await self._read_network_ids(learned=False)
        self.ctx.frame_ok()
        _LOGGER.info(
            "%s: %s on %s, %s, reporting %s",
            self.ctx.name,
            version.version,
            self.config.port,
            self._membership(),
            ", ".join(channel.obis for channel in self.node.channels),
        )
        if self.config.security:
            # The DSK is on no label here: the log and the keys file are where users find it.
            _LOGGER.info(
                "%s: S2 DSK %s (PIN %s, asked for S2 Authenticated inclusion); security %s",
                self.ctx.name,
                self.security.secrets.dsk,
                self.security.secrets.pin,
                ", ".join(lv.label for lv in self.security.granted) or "none granted yet",
            )

    async def dispatch(self) -> None:
        """Handle what the stick sends on its own: commands from other nodes, learn progress."""
        while True:
            message = await self.host.unsolicited.get()
            self.ctx.frame_ok()
            if isinstance(message, ApplicationCommand | BridgeApplicationCommand):
                await self._on_command(message)
            elif isinstance(message, SetLearnModeCallback):
                await self._on_learn(message)
            elif isinstance(message, SetLearnModeResponse) and not message.accepted:
                self._learn_over("zwave_learn_mode_failed", "the stick refused learn mode")
            elif isinstance(message, SerialApiStarted):
                # The stick restarted by itself (its watchdog, a brown-out): tell it again.
                _LOGGER.warning("%s: the stick restarted; announcing the node again", self.ctx.name)
                await self._announce()
            else:
                _LOGGER.debug("%s: ignored %s", self.ctx.name, type(message).__name__)

    async def report(self) -> None:
        """Send the lifeline what is due: looked at when the meter's state changes (the node is
        a sink, subscribed to its meter) and when time alone makes a report due (a periodic
        one, or a change held back by report_min_interval_s)."""
        while True:
            await self.changes.wait(self._until_due())
            if not self.state.node_id or not self.node.lifeline:
                continue
            now = self._loop.time()
            for payload in self.node.reports_due(self.ctx.published(), now):
                for target in self.node.lifeline:
                    for frame in self.security.send(target, payload, self.security.highest, now):
                        await self._send(frame.node_id, frame.payload)

    async def housekeeping(self) -> None:
        """End learn mode at its time-out; ask the stick for its network ids when it has been
        silent long enough to have been reset or excluded by someone else; run the key
        exchange's timers."""
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            if self.learning is not None and self._loop.time() >= self.learn_deadline:
                await self._stop_learning("zwave_learn_mode_timeout", "no controller answered")
            if self._loop.time() - self.host.last_heard >= STICK_CHECK_S:
                await self._read_network_ids(learned=False)
            await self._security_due()

    async def take_commands(self) -> None:
        """Learn mode on request (``learn_mode`` with an optional ``mode``, ``exclude``)."""
        while True:
            command = await self.ctx.commands.get()
            try:
                await self._command(command)
            except CommandError as err:
                _LOGGER.warning("%s: command %s refused: %s", self.ctx.name, command.name, err)
                self.ctx.event("command_refused", str(err), command=command.name, id=command.id)

    # internals ---------------------------------------------------------------------------------

    def _until_due(self) -> float | None:
        """How long the report loop may wait for a change before time makes a report due."""
        if not self.state.node_id or not self.node.lifeline:
            return None  # nothing to report to: a new lifeline wakes the loop
        due_at = self.node.policy.next_due()
        if due_at is None:
            return None
        wait = due_at - self._loop.time()
        # Still overdue right after a pass: a value the meter no longer has; look again later.
        return wait if wait > 0 else self.config.poll_interval_s

    def _lifeline_changed(self) -> None:
        """A new lifeline gets every value at once; an empty one ends the waiting."""
        self.changes.notify(self.config.meter)

    async def _await_started(self) -> None:
        try:
            async with asyncio.timeout(STARTED_TIMEOUT_S):
                while not isinstance(await self.host.unsolicited.get(), SerialApiStarted):
                    pass  # whatever the stick had queued before its reset is stale now
        except TimeoutError:
            _LOGGER.debug("%s: no SERIAL_API_STARTED (a 500-series stick)", self.ctx.name)

    async def _announce(self) -> None:
        await self.host.send(
            ApplNodeInformationRequest(
                APPLICATION_NODEINFO_LISTENING,
                GENERIC_TYPE_METER,
                SPECIFIC_TYPE_SIMPLE_METER,
                self.node.node_information(secure=self.security.highest != Level.NONE),
            )
        )

    async def _read_network_ids(self, *, learned: bool) -> None:
        ids = await self.host.request(MemoryGetIdRequest(), MemoryGetIdResponse)
        old = self.state
        node_id = ids.node_id
        home_id = ids.home_id if node_id else 0
        was_secure = self.security.highest != Level.NONE
        if (home_id, node_id) != (old.home_id, old.node_id):
            # Another network (or none): its lifeline and its keys mean nothing here.
            self.node.lifeline = ()
            self.node.policy.forget()
            self._lifeline_changed()
            self.security.forget()
        self.security.set_network(home_id, node_id)
        if learned and node_id:
            self.security.begin_inclusion(self._loop.time())
        if self.security.changed:
            self._save_secrets()
        if was_secure != (self.security.highest != Level.NONE):
            await self._announce()  # the node information lists every class again
        self._save(home_id, node_id)
        if learned and node_id:
            self.ctx.event(
                "zwave_included",
                f"included as node {node_id} in network {home_id:08x}",
                node_id=node_id,
                home_id=f"{home_id:08x}",
            )
        elif learned:
            self.ctx.event("zwave_excluded", "left the Z-Wave network")
        elif old.node_id and not node_id:
            self.ctx.event("zwave_excluded", "the stick is no longer in a network")

    async def _on_command(self, message: ApplicationCommand | BridgeApplicationCommand) -> None:
        before = self.node.lifeline
        source, now = message.source_node_id, self._loop.time()
        try:
            step = self.security.receive(
                source,
                message.payload,
                now,
                multicast=bool(message.rx_status & _BROADCAST_OR_MULTICAST),
            )
            frames = list(step.frames)
            for inbound in step.inbound:
                if not self.security.accepts(inbound):
                    _LOGGER.debug(
                        "%s: %s command from node %d ignored: the node is included with %s",
                        self.ctx.name,
                        inbound.level.label,
                        source,
                        self.security.highest.label,
                    )
                    continue
                answers = self.node.handle(
                    inbound.payload, self.ctx.published(), now, rx_status=message.rx_status
                )
                for answer in answers:
                    frames += self.security.send(source, answer, inbound.level, now)
        except FrameError as err:
            self.ctx.frame_failed(err, message.payload)
            return
        for kind, detail in step.events:
            _LOGGER.info("%s: %s", self.ctx.name, detail)
            self.ctx.event(kind, detail)
        if self.security.changed:
            self._save_secrets()
        if self.node.lifeline != before:
            self._save(self.state.home_id, self.state.node_id)
            self._lifeline_changed()
            _LOGGER.info(
                "%s: lifeline is now %s", self.ctx.name, list(self.node.lifeline) or "empty"
            )
        for frame in frames:
            await self._send(frame.node_id, frame.payload)
        if any(kind == "zwave_secure_inclusion" for kind, _ in step.events):
            await self._announce()  # secure now: the node information lists the open classes

    async def _security_due(self) -> None:
        """The key exchange's timers: the KEX Set echo again, or giving up."""
        step = self.security.tick(self._loop.time())
        for kind, detail in step.events:
            _LOGGER.warning("%s: %s", self.ctx.name, detail)
            self.ctx.event(kind, detail)
        for frame in step.frames:
            await self._send(frame.node_id, frame.payload)

    def _save_secrets(self) -> None:
        if not self.config.security:
            self.security.changed = False  # nothing secret to keep
            return
        try:
            save_secrets(self.keys_path, self.security.secrets)
        except OSError as err:
            # The keys stay in memory; a restart would need a new inclusion.
            _LOGGER.error("%s: cannot write %s: %s", self.ctx.name, self.keys_path, err)
            return
        self.security.changed = False
        self._publish_status()

    async def _send(self, node_id: int, payload: bytes) -> None:
        status = await self.host.send_data(node_id, payload)
        if status != TxStatus.OK:
            _LOGGER.debug("%s: node %d not reached (status %d)", self.ctx.name, node_id, status)

    async def _command(self, command: Command) -> None:
        if command.name == "exclude":
            mode = "nwe"
        else:
            default = "classic" if self.state.node_id else "nwi"
            mode = str(command.args.get("mode", default)).lower()
            if mode not in _LEARN_MODES:
                known = ", ".join(_LEARN_MODES)
                raise CommandError("bad_mode", f"learn mode {mode!r} is not one of {known}")
        if mode == "stop":
            await self._stop_learning("zwave_learn_mode_stopped", "stopped on request")
            return
        await self.host.send(SetLearnModeRequest(_LEARN_MODES[mode], _LEARN_CALLBACK_ID))
        self.learning = mode
        self.learn_deadline = self._loop.time() + self.config.learn_timeout_s
        self._publish_status()
        what = {"nwe": "exclusion", "nwi": "network-wide inclusion"}.get(
            mode, "inclusion/exclusion"
        )
        self.ctx.event("zwave_learn_mode", f"learn mode for {what} started", mode=mode)

    async def _stop_learning(self, kind: str, detail: str) -> None:
        if self.learning is None:
            return
        await self.host.send(SetLearnModeRequest(LearnMode.DISABLE, 0))
        self._learn_over(kind, detail)

    def _learn_over(self, kind: str, detail: str) -> None:
        self.learning = None
        self._publish_status()
        self.ctx.event(kind, detail)

    async def _on_learn(self, message: SetLearnModeCallback) -> None:
        if message.status == LearnStatus.ASSIGN_NODEID_DONE:
            _LOGGER.info("%s: the controller assigned node id %d", self.ctx.name, message.node_id)
        elif message.status == LearnStatus.ASSIGN_COMPLETE:
            self.learning = None
            await self._read_network_ids(learned=True)

    def _save(self, home_id: int, node_id: int) -> None:
        self.state = _NetworkState(home_id, node_id, self.node.lifeline)
        self.ctx.save_state(STATE_KEY, msgspec.json.encode(self.state))
        self._publish_status()

    def _membership(self) -> str:
        if not self.state.node_id:
            return "not in a network (send learn_mode to include it)"
        return f"node {self.state.node_id} of network {self.state.home_id:08x}"

    def _publish_status(self) -> None:
        """The node's Z-Wave status in the module's health, where the core offers a place."""
        status: dict[str, Any] = {
            "home_id": f"{self.state.home_id:08x}" if self.state.node_id else None,
            "node_id": self.state.node_id or None,
            "learn_mode": self.learning,
            "lifeline": list(self.node.lifeline),
            "retransmissions": self.host.retransmissions,
            "security": [level.label for level in self.security.granted],
            # What Z-Wave JS shows to compare while it asks for the PIN: the DSK without its
            # first group. The PIN itself stays in the log and the keys file.
            "dsk_after_pin": self.security.secrets.dsk[6:] if self.config.security else None,
        }
        self.ctx.health.detail.clear()
        self.ctx.health.detail.update(status)


def _load_state(ctx: ModuleContext) -> _NetworkState:
    blob = ctx.load_state(STATE_KEY)
    if blob is None:
        return _NetworkState()
    try:
        return msgspec.json.decode(blob, type=_NetworkState)
    except msgspec.DecodeError:
        _LOGGER.warning("%s: saved Z-Wave state unreadable; starting afresh", ctx.name)
        return _NetworkState()


def _two_numbers(text: str) -> tuple[int, int]:
    """(major, minor) from "Z-Wave 7.18" or "0.1.0"; bytes, so clamped to 255."""
    match = re.search(r"(\d+)\.(\d+)", text)
    if match is None:
        return (0, 0)
    return (min(int(match[1]), 0xFF), min(int(match[2]), 0xFF))
