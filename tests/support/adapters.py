"""Small real adapters for supervisor tests (registered by the tests that use them)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import ClassVar

from gateway.adapter import ModuleContext
from gateway.config import ModuleConfig
from gateway.engine.commands import REMOTE, CommandSpec, ModuleArgs, Queued
from gateway.errors import ConnectionLost
from gateway.model import Reading, Sample, utc_now


class FlakyConfig(ModuleConfig, frozen=True):
    """A module that delivers ``good_samples`` samples and then loses its link."""

    meter: str
    good_samples: int = 1
    period_s: float = 0.01


class FlakyAdapter:
    """Fails after a few samples, like a USB stick pulled out."""

    Config = FlakyConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: FlakyConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        for n in range(self.config.good_samples):
            await asyncio.sleep(self.config.period_s)
            ctx.submit(
                Sample(
                    self.config.meter,
                    self.config.name,
                    utc_now(),
                    (Reading("1-0:1.7.0", Decimal(n), "W"),),
                )
            )
        raise ConnectionLost("the stick went away")


class CrashConfig(ModuleConfig, frozen=True):
    """A module with a bug."""


class CrashAdapter:
    """Raises a programming error at once."""

    Config = CrashConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: CrashConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        await asyncio.sleep(0)
        raise ZeroDivisionError("a bug in one module")


class EchoArgs(ModuleArgs, frozen=True):
    """``echo_back``: the text to echo."""

    text: str = ""


class EchoConfig(ModuleConfig, frozen=True):
    """A module that takes one command."""

    meter: str


class CommandEchoAdapter:
    """Turns each `echo_back` command into a reading, so a test can see it arrived."""

    Config = EchoConfig
    COMMANDS = (CommandSpec("echo_back", "Echo a text as a reading.", REMOTE, EchoArgs, Queued),)

    def __init__(self, config: EchoConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        while True:
            command = await ctx.commands.get()
            reading = Reading("echo", str(command.args.get("text", "")), None)
            ctx.submit(Sample(self.config.meter, self.config.name, utc_now(), (reading,)))


class CounterConfig(ModuleConfig, frozen=True):
    """A sink on one meter."""

    meter: str


class ChangeCounter:
    """A sink: counts how often it is told its meter changed and keeps the A+ it then reads."""

    Config = CounterConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()
    seen: ClassVar[dict[str, int]] = {}
    values: ClassVar[dict[str, list[object]]] = {}

    def __init__(self, config: CounterConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        changes = ctx.subscribe()
        name = self.config.name
        ChangeCounter.seen[name] = 0
        ChangeCounter.values[name] = []
        while True:
            await changes.wait()
            register = ctx.registers().get("1-0:1.8.0")
            ChangeCounter.values[name].append(None if register is None else register.value)
            ChangeCounter.seen[name] += 1
