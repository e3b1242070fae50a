"""The adapter contract, the roles a module takes, and the context the supervisor hands it.

An adapter is any class with a ``Config`` Struct type, the ``COMMANDS`` it takes and one
cancellable ``run(ctx)``; no base class. ``run`` connects, pushes Samples through ``ctx``,
handles what is addressed to it, and releases everything in ``finally``. Returning or raising
ends the run; the supervisor decides when to start it again.

What a module does with its context is one or more of three roles, each a typed protocol that
``ModuleContext`` implements (a helper that plays one role takes that protocol, not the whole
context):

- ``Source``: pushes Samples of its meter(s) (every reading module: M-Bus, P1, S0 input, ...).
- ``Actuator``: the breaker's switch (relay, mqtt_switch, a DLMS meter's disconnect control):
  takes the ``SwitchRequest``s the supervisor queues when the engine's breaker switches,
  confirms by reporting the position it sees, or says that it failed.
- ``Sink``: is told when a meter's state changes, by subscription (the Z-Wave display node,
  the S0 output): it waits on ``subscribe()`` instead of polling the registers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from gateway.cluster.merge import Heard
from gateway.config import ModuleConfig, Settings
from gateway.engine import Register
from gateway.engine.book import BREAKER_FEEDBACK
from gateway.engine.commands import CommandSpec
from gateway.model import (
    Command,
    Event,
    Position,
    RawFrame,
    Reading,
    Sample,
    SwitchRequest,
    utc_now,
)

__all__ = [
    "Actuator",
    "Adapter",
    "Hub",
    "ModuleContext",
    "ModuleHealth",
    "Sink",
    "Source",
    "StateChanges",
]


class Adapter(Protocol):
    """What the registry's adapter classes provide: a config Struct and the commands the module
    takes (rows of the command table, ``gateway.commands``; empty for most)."""

    Config: ClassVar[type[ModuleConfig]]
    COMMANDS: ClassVar[tuple[CommandSpec, ...]]

    def __init__(self, config: Any) -> None: ...

    async def run(self, ctx: ModuleContext) -> None:
        """Run until cancelled or the link is lost."""
        ...


class Hub(Protocol):
    """The gateway side of a module context."""

    settings: Settings

    def submit(self, module: str, sample: Sample) -> None:
        """Feed a sample to its meter's engine."""
        ...

    def report(self, event: Event) -> None:
        """Log and publish an event."""
        ...

    def registers(self, meter: str) -> Mapping[str, Register]:
        """A meter's current registers."""
        ...

    def published(self, meter: str) -> Mapping[str, Register]:
        """A meter's registers as every output shows them (the durability contract)."""
        ...

    def load_state(self, module: str, key: str) -> bytes | None:
        """A module's persisted blob."""
        ...

    def save_state(self, module: str, key: str, value: bytes) -> None:
        """Persist a module's blob."""
        ...

    def keep_state(self, module: str, key: str, value: bytes) -> None:
        """Persist a module's blob with the next checkpoint."""
        ...

    def publish_raw(self, frame: RawFrame) -> None:
        """Hand a raw frame to outputs that want it."""
        ...

    async def execute(self, command: Command) -> Mapping[str, Any]:
        """Carry out a command or raise CommandError saying why not."""
        ...


class StateChanges:
    """A sink's subscription to one meter's state (or every meter's): set by the supervisor
    whenever the meter's registers may have changed (a sample, a command, a tick, a checkpoint
    that moved what outputs show), cleared by the wait that sees it. Changes that come faster
    than the sink looks are seen as one; the sink then reads the registers as they are. A new
    subscription starts as changed: the state as it is is news to the sink."""

    def __init__(self, meter: str | None) -> None:
        self.meter = meter
        self._changed = asyncio.Event()
        self._changed.set()

    def notify(self, meter: str) -> None:
        """The supervisor's side: ``meter``'s state changed."""
        if self.meter is None or self.meter == meter:
            self._changed.set()

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Until the state changed since the last wait (True), or ``timeout_s`` passed
        (False; for the sink's own timers, such as saving its position)."""
        if not self._changed.is_set():
            if timeout_s is None:
                await self._changed.wait()
            else:
                try:
                    async with asyncio.timeout(timeout_s):
                        await self._changed.wait()
                except TimeoutError:
                    return False
        self._changed.clear()
        return True


class ChangeBoard:
    """The sinks' subscriptions by meter: a meter's change reaches the sinks of that meter
    (and those of every meter) without a walk over every module, which at a thousand meters
    with a module each cost more than the engine's whole sample."""

    def __init__(self) -> None:
        self._by_meter: dict[str | None, list[StateChanges]] = {}

    def add(self, changes: StateChanges) -> None:
        """Deliver ``meter``'s changes (every meter's when its meter is None) to ``changes``."""
        self._by_meter.setdefault(changes.meter, []).append(changes)

    def discard(self, subscriptions: Iterable[StateChanges]) -> None:
        """Stop delivering to these (their module stopped or restarted)."""
        for changes in subscriptions:
            listeners = self._by_meter.get(changes.meter, [])
            if changes in listeners:
                listeners.remove(changes)

    def notify(self, meter: str) -> None:
        """``meter``'s registers may have changed."""
        for changes in self._by_meter.get(meter, ()):
            changes.notify(meter)
        for changes in self._by_meter.get(None, ()):
            changes.notify(meter)


class Source(Protocol):
    """The source role: a module that pushes what its meter(s) said."""

    name: str
    meter: str | None

    def submit(self, sample: Sample) -> None:
        """Deliver one consistent batch of readings."""
        ...

    def frame_ok(self, raw: bytes | None = None) -> None:
        """A frame arrived and decoded."""
        ...

    def frame_failed(self, error: Exception, raw: bytes | None = None) -> None:
        """A frame arrived but could not be used."""
        ...


class Actuator(Protocol):
    """The actuator role: the breaker's switch. The supervisor queues a ``SwitchRequest`` on
    ``switch_requests`` each time the engine's breaker switches; the module makes it real and
    confirms with ``report_position`` (the position it sees: the engine turns it into a
    confirmation, or a mismatch event), or says ``switch_failed``. An actuator that says
    nothing is failed by the engine's own confirmation timeout."""

    name: str
    meter: str | None
    switch_requests: asyncio.Queue[SwitchRequest]

    @property
    def settings(self) -> Settings:
        """The whole gateway config (whose breaker this module drives)."""
        ...

    def registers(self, meter: str | None = None) -> Mapping[str, Register]:
        """The engine's registers (where the breaker should be)."""
        ...

    def report_position(self, position: Position) -> None:
        """Tell the engine where the breaker is (a ``breaker_feedback`` reading)."""
        ...

    def switch_failed(self, target: Position, detail: str, **data: Any) -> None:
        """A switch to ``target`` could not be made (a ``breaker_actuator_failed`` event)."""
        ...


class Sink(Protocol):
    """The sink role: a module told of state changes (a display, a pulse output)."""

    name: str
    meter: str | None

    def subscribe(self, meter: str | None = None) -> StateChanges:
        """Be told when this module's meter (or the given one) changes."""
        ...

    def registers(self, meter: str | None = None) -> Mapping[str, Register]:
        """The engine's registers as they are now."""
        ...

    def published(self, meter: str | None = None) -> Mapping[str, Register]:
        """The registers as every output shows them."""
        ...


@dataclass(slots=True)
class ModuleHealth:
    """What the supervisor knows about one module, for status, API and metrics."""

    name: str
    type: str
    state: str = "starting"  # starting | running | backoff | stopped
    since: datetime = field(default_factory=utc_now)
    frames_ok: int = 0
    frames_failed: int = 0
    last_frame_at: datetime | None = None
    last_error: str | None = None
    restarts: int = 0
    communicating: bool = False
    detail: dict[str, Any] = field(default_factory=dict)  # module-specific status (node id, ...)
    # Which receivers hear which meter (meter -> receiver -> copies and RSSI), where a module
    # merges several receivers' copies (meter_feed); /metrics shows it.
    coverage: Mapping[str, Mapping[str, Heard]] = field(default_factory=dict)


class ModuleContext:
    """Everything a running adapter may touch: its meter(s), events, state, commands; it is
    the ``Source``, ``Actuator`` and ``Sink`` a module uses."""

    def __init__(
        self,
        hub: Hub,
        config: ModuleConfig,
        health: ModuleHealth,
        board: ChangeBoard | None = None,
    ) -> None:
        self._hub = hub
        self._board = board or ChangeBoard()
        self.config = config
        self.name = config.name
        self.meter = config.meter
        self.health = health
        self.commands: asyncio.Queue[Command] = asyncio.Queue()
        self.switch_requests: asyncio.Queue[SwitchRequest] = asyncio.Queue()
        self._subscriptions: list[StateChanges] = []

    @property
    def settings(self) -> Settings:
        """The whole gateway config (time zone, data directory, ...)."""
        return self._hub.settings

    def submit(self, sample: Sample) -> None:
        """Deliver one consistent batch of readings."""
        self.frame_ok(sample.raw, rssi=sample.rssi)
        self._hub.submit(self.name, sample)

    def frame_ok(self, raw: bytes | None = None, *, rssi: float | None = None) -> None:
        """A frame arrived and decoded; communication is (back) up. ``rssi`` (dBm) goes with
        the raw frame to the outputs that forward it."""
        health = self.health
        health.frames_ok += 1
        health.last_frame_at = utc_now()
        if not health.communicating:
            health.communicating = True
            if health.restarts or health.frames_failed:
                self.event("communication_restored", f"module {self.name} is receiving again")
        if raw is not None:
            self._hub.publish_raw(RawFrame(self.name, self.config.type, raw, utc_now(), rssi))

    def frame_failed(
        self, error: Exception, raw: bytes | None = None, *, rssi: float | None = None
    ) -> None:
        """A frame arrived but could not be used; counted, not fatal."""
        self.health.frames_failed += 1
        self.health.last_error = str(error)
        if raw is not None:
            frame = RawFrame(self.name, self.config.type, raw, utc_now(), rssi, ok=False)
            self._hub.publish_raw(frame)

    def event(self, kind: str, detail: str = "", *, meter: str | None = None, **data: Any) -> None:
        """Record an event for this module's meter (or the given one)."""
        target = meter or self.meter or "gateway"
        self._hub.report(
            Event(
                meter=target,
                at=utc_now(),
                kind=kind,
                detail=detail,
                data={"module": self.name, **data},
            )
        )

    def registers(self, meter: str | None = None) -> Mapping[str, Register]:
        """The engine's registers for this module's meter (or the given one)."""
        target = meter or self.meter
        return self._hub.registers(target) if target else {}

    def published(self, meter: str | None = None) -> Mapping[str, Register]:
        """The meter's registers as every output shows them: what a display module shows, so
        it never shows a total only the gateway counts above what is on disk."""
        target = meter or self.meter
        return self._hub.published(target) if target else {}

    def load_state(self, key: str) -> bytes | None:
        """This module's persisted blob under ``key``."""
        return self._hub.load_state(self.name, key)

    def save_state(self, key: str, value: bytes) -> None:
        """Persist a blob for this module now, in a commit of its own (learned formats, a
        key's trouble reports: rare values that must last at once)."""
        self._hub.save_state(self.name, key, value)

    def keep_state(self, key: str, value: bytes) -> None:
        """Persist a blob for this module with the gateway's next checkpoint (every
        ``checkpoint_interval_s``, a switch, a stop), in its commit: for a value that changes
        all the time (a pulse count), which a commit of its own would write to the SD card
        again and again. ``load_state`` returns it at once."""
        self._hub.keep_state(self.name, key, value)

    async def execute(self, command: Command) -> Mapping[str, Any]:
        """Run a gateway command (a local push button's ``button``); CommandError if refused."""
        return await self._hub.execute(command)

    # the actuator role -------------------------------------------------------------------------

    def report_position(self, position: Position) -> None:
        """Tell the engine where the breaker is: it confirms a pending switch from this, and a
        position nobody asked for (a plug switched by hand) is a mismatch."""
        assert self.meter is not None
        # A sample must not move the meter's clock back: an accelerated or fast meter clock runs
        # ahead of ours, and the engine treats an earlier sample as a clock adjustment.
        newest = max((register.at for register in self.registers().values()), default=None)
        now = utc_now()
        at = max(now, newest) if newest is not None else now
        self.submit(Sample(self.meter, self.name, at, (Reading(BREAKER_FEEDBACK, position, None),)))

    def switch_failed(self, target: Position, detail: str, **data: Any) -> None:
        """A switch to ``target`` could not be made: logged as ``breaker_actuator_failed``."""
        self.event("breaker_actuator_failed", detail, target=target, **data)

    # the sink role -----------------------------------------------------------------------------

    def subscribe(self, meter: str | None = None) -> StateChanges:
        """Be told when this module's meter (or the given one) changes; see ``StateChanges``."""
        changes = StateChanges(meter or self.meter)
        self._subscriptions.append(changes)
        self._board.add(changes)
        return changes

    @property
    def subscriptions(self) -> tuple[StateChanges, ...]:
        """This module's subscriptions (the supervisor drops them when the module stops)."""
        return tuple(self._subscriptions)

    def state_changed(self, meter: str) -> None:
        """The supervisor's side: ``meter``'s registers may have changed."""
        for changes in self._subscriptions:
            changes.notify(meter)
