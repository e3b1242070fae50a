"""The adapter contract and the context the supervisor hands to each module.

An adapter is any class with a ``Config`` Struct type and one cancellable ``run(ctx)``; no base
class. ``run`` connects, pushes Samples through ``ctx``, handles commands addressed to it, and
releases everything in ``finally``. Returning or raising ends the run; the supervisor decides
when to start it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from gateway.config import ModuleConfig, Settings
from gateway.engine import Register
from gateway.engine.commands import CommandSpec
from gateway.model import Command, Event, RawFrame, Sample, utc_now

__all__ = ["Adapter", "Hub", "ModuleContext", "ModuleHealth"]


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

    def publish_raw(self, frame: RawFrame) -> None:
        """Hand a raw frame to outputs that want it."""
        ...

    async def execute(self, command: Command) -> Mapping[str, Any]:
        """Carry out a command or raise CommandError saying why not."""
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


class ModuleContext:
    """Everything a running adapter may touch: its meter(s), events, state, commands."""

    def __init__(self, hub: Hub, config: ModuleConfig, health: ModuleHealth) -> None:
        self._hub = hub
        self.config = config
        self.name = config.name
        self.meter = config.meter
        self.health = health
        self.commands: asyncio.Queue[Command] = asyncio.Queue()

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
        """Persist a blob for this module (learned formats, pulse counts, ...)."""
        self._hub.save_state(self.name, key, value)

    async def execute(self, command: Command) -> Mapping[str, Any]:
        """Run a gateway command (a local push button's ``button``); CommandError if refused."""
        return await self._hub.execute(command)
