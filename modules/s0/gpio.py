"""The one small interface to GPIO lines: edge events in (``PulseSource``), levels out.

Two implementations behind it: libgpiod v2 (``modules.s0.libgpiod``: the ``gpiod`` package,
optional extra ``[gpio]``, imported only when a real chip is opened) and ``SoftwareChip``
(``modules.s0.software``), an in-process chip that tests and trials drive with given timestamps,
the way the kernel's gpio-sim is driven. The adapters see no difference: ``open_inputs`` and
``open_output`` pick the implementation from the chip name (``software:<name>`` is a software
chip).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import msgspec

from modules.s0.pulses import EdgeEvent

__all__ = [
    "SOFTWARE_PREFIX",
    "Bias",
    "Drive",
    "EdgeEvent",
    "Edges",
    "EventQueue",
    "InputSpec",
    "LineId",
    "OutputLine",
    "PulseSource",
    "open_inputs",
    "open_output",
]

SOFTWARE_PREFIX = "software:"

LineId = str | int
Bias = Literal["pull_up", "pull_down", "disabled", "as_is"]
Edges = Literal["rising", "falling", "both"]
Drive = Literal["push_pull", "open_drain", "open_source"]


class InputSpec(msgspec.Struct, frozen=True):
    """How to request one input line."""

    line: LineId
    edges: Edges
    bias: Bias = "as_is"
    debounce_s: float = 0.0


class PulseSource(Protocol):
    """Requested input lines delivering edge events with kernel timestamps."""

    description: str  # "line 17 (GPIO17) of gpiochip0 [pinctrl-bcm2711]", for messages
    levels: Mapping[str, bool]  # each line's level (True = high) when it was requested

    def now_ns(self) -> int:
        """The clock of the event timestamps (CLOCK_MONOTONIC for the kernel)."""
        ...

    async def read(self) -> list[EdgeEvent]:
        """Wait for edge events and return all that are queued, oldest first."""
        ...

    def read_nowait(self) -> list[EdgeEvent]:
        """Whatever events are queued now, without waiting (before closing: none is lost)."""
        ...

    def close(self) -> None:
        """Release the lines (idempotent)."""
        ...


class OutputLine(Protocol):
    """One requested output line."""

    description: str

    def set(self, active: bool) -> None:
        """Drive the line active or inactive (active_low inverts the level)."""
        ...

    def close(self) -> None:
        """Leave the line inactive and release it (idempotent)."""
        ...


def open_inputs(chip: str | None, lines: Mapping[str, InputSpec], *, consumer: str) -> PulseSource:
    """Request input lines with edge detection; raises CannotConnect/FatalAdapterError."""
    if chip is not None and chip.startswith(SOFTWARE_PREFIX):
        from modules.s0 import software  # noqa: PLC0415 - the implementations import this module

        return software.find(chip).request_inputs(lines, consumer=consumer)
    from modules.s0 import libgpiod  # noqa: PLC0415

    return libgpiod.GpiodInputs.open(chip, lines, consumer=consumer)


def open_output(
    chip: str | None, line: LineId, *, consumer: str, active_low: bool = False, drive: Drive
) -> OutputLine:
    """Request one output line, inactive; raises CannotConnect/FatalAdapterError."""
    if chip is not None and chip.startswith(SOFTWARE_PREFIX):
        from modules.s0 import software  # noqa: PLC0415

        return software.find(chip).request_output(line, consumer=consumer, active_low=active_low)
    from modules.s0 import libgpiod  # noqa: PLC0415

    return libgpiod.GpiodOutput.open(
        chip, line, consumer=consumer, active_low=active_low, drive=drive
    )


class EventQueue:
    """Events buffered between a line request and ``read()``; a read can be cancelled at any
    moment without losing one."""

    def __init__(self) -> None:
        self._events: list[EdgeEvent] = []
        self._ready = asyncio.Event()
        self._error: Exception | None = None

    def push(self, events: Sequence[EdgeEvent]) -> None:
        """Queue events and wake the reader."""
        self._events.extend(events)
        self._ready.set()

    def fail(self, error: Exception) -> None:
        """The lines are gone: ``read()`` raises ``error`` once the queue is empty."""
        self._error = error
        self._ready.set()

    async def read(self) -> list[EdgeEvent]:
        """Wait until something is queued; return it all."""
        while not self._events and self._error is None:
            self._ready.clear()
            await self._ready.wait()
        if self._events:
            return self.take()
        assert self._error is not None
        raise self._error

    def take(self) -> list[EdgeEvent]:
        """Everything queued now."""
        events, self._events = self._events, []
        return events
