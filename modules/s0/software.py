"""An in-process GPIO chip behind the GPIO interface, for tests and trials (like gpio-sim).

A chip registers itself under its name when created; a config opens it as
``chip = "software:<name>"``. Only the event source differs from a real chip: the adapters run
the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import msgspec

from gateway.errors import CannotConnect, ConnectionLost, FatalAdapterError
from modules.s0.gpio import SOFTWARE_PREFIX, Edges, EventQueue, InputSpec, LineId
from modules.s0.pulses import EdgeEvent

__all__ = ["SoftwareChip", "find"]

_SOFTWARE_CHIPS: dict[str, SoftwareChip] = {}


def find(chip: str) -> SoftwareChip:
    """The software chip a config's ``chip`` names."""
    name = chip.removeprefix(SOFTWARE_PREFIX)
    try:
        return _SOFTWARE_CHIPS[name]
    except KeyError:
        known = ", ".join(SOFTWARE_PREFIX + n for n in _SOFTWARE_CHIPS) or "none"
        raise CannotConnect(f"no GPIO chip {chip!r} (software chips: {known})") from None


class _SoftwareLine(msgspec.Struct):
    name: str
    level: bool = False
    holder: str | None = None  # consumer holding it, as the kernel's line info says
    edges: Edges | None = None  # requested as an input with these edges
    seqno: int = 0
    drop: int = 0  # the next N events are lost, as in a kernel buffer overflow
    queue: EventQueue | None = None
    key: str = ""
    wired_to: list[int] = msgspec.field(default_factory=list)
    history: list[tuple[int, bool]] = msgspec.field(default_factory=list)


class SoftwareChip:
    """An in-process GPIO chip, like gpio-sim: lines with pulls, edges at given times.

    Register it by creating it (``software:<name>`` in a config opens it) and drive its lines
    from the event loop's thread. ``clock`` gives the timestamps of edges made without one.
    """

    def __init__(
        self,
        name: str,
        lines: int | Sequence[str] = 8,
        *,
        label: str = "software",
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if name in _SOFTWARE_CHIPS:
            raise ValueError(f"software GPIO chip {name!r} exists already")
        self.name = name
        self.label = label
        self.clock = clock
        names = [f"line{n}" for n in range(lines)] if isinstance(lines, int) else list(lines)
        self._lines = [_SoftwareLine(line_name) for line_name in names]
        _SOFTWARE_CHIPS[name] = self

    @property
    def path(self) -> str:
        """What a config's ``chip`` says to open this chip."""
        return SOFTWARE_PREFIX + self.name

    def close(self) -> None:
        """Unregister the chip; open requests keep working until released."""
        if _SOFTWARE_CHIPS.get(self.name) is self:
            del _SOFTWARE_CHIPS[self.name]

    def __enter__(self) -> SoftwareChip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # driving the lines, as gpio-sim's pulls do ------------------------------------------------

    def set_level(self, line: LineId, high: bool, *, at_ns: int | None = None) -> None:
        """Pull a line high or low; an edge is reported if the level changes."""
        self._drive(self._line(line), high, self.clock() if at_ns is None else at_ns)

    def pulse(self, line: LineId, *, at_ns: int | None = None, width_ns: int = 30_000_000) -> None:
        """One S0 pulse: an open collector pulls the line low for ``width_ns``."""
        start = self.clock() if at_ns is None else at_ns
        self.set_level(line, False, at_ns=start)
        self.set_level(line, True, at_ns=start + width_ns)

    def drop_next(self, line: LineId, events: int) -> None:
        """Lose the next ``events`` edge events of a line, as a full kernel buffer does."""
        self._line(line).drop += events

    def hold(self, line: LineId, consumer: str) -> None:
        """Another process requests the line."""
        self._line(line).holder = consumer

    def release(self, line: LineId) -> None:
        """Whoever holds the line lets it go."""
        target = self._line(line)
        target.holder, target.edges, target.queue = None, None, None

    def wire(self, output: LineId, input_line: LineId) -> None:
        """Connect an output line to an input line, as a jumper wire does."""
        self._line(output).wired_to.append(self._index(input_line))

    def history(self, line: LineId) -> list[tuple[int, bool]]:
        """Every level an output request drove on the line: (timestamp ns, high)."""
        return list(self._line(line).history)

    def level(self, line: LineId) -> bool:
        """A line's level now."""
        return self._line(line).level

    # what open_inputs / open_output use ------------------------------------------------------

    def request_inputs(self, lines: Mapping[str, InputSpec], *, consumer: str) -> _SoftwareInputs:
        """Request input lines with edge detection."""
        requested = {key: self._request_line(spec.line) for key, spec in lines.items()}
        queue = EventQueue()
        for key, spec in lines.items():
            target = requested[key]
            if spec.bias in ("pull_up", "pull_down") and not self._driven(target):
                target.level = spec.bias == "pull_up"
            target.holder, target.edges, target.queue, target.key = consumer, spec.edges, queue, key
            target.seqno = 0
        description = " and ".join(f"{target.name} of {self.path}" for target in requested.values())
        levels = {key: target.level for key, target in requested.items()}
        return _SoftwareInputs(self, list(requested.values()), queue, description, levels)

    def request_output(self, line: LineId, *, consumer: str, active_low: bool) -> _SoftwareOutput:
        """Request an output line, inactive."""
        target = self._request_line(line)
        target.holder = consumer
        output = _SoftwareOutput(self, target, active_low, f"{target.name} of {self.path}")
        output.set(False)
        return output

    # internals ---------------------------------------------------------------------------------

    def _index(self, line: LineId) -> int:
        if isinstance(line, int) or line.isdigit():
            index = int(line)
            if 0 <= index < len(self._lines):
                return index
        else:
            for index, target in enumerate(self._lines):
                if target.name == line:
                    return index
        raise FatalAdapterError(
            f"no line {line!r} on GPIO chip {self.path} [{self.label}] ({len(self._lines)} lines)"
        )

    def _line(self, line: LineId) -> _SoftwareLine:
        return self._lines[self._index(line)]

    def _driven(self, target: _SoftwareLine) -> bool:
        """Wired to an output, whose level wins over a pull."""
        index = self._lines.index(target)
        return any(index in line.wired_to for line in self._lines)

    def _request_line(self, line: LineId) -> _SoftwareLine:
        target = self._line(line)
        if target.holder is not None:
            raise CannotConnect(f"{target.name} of {self.path} is held by {target.holder!r}")
        return target

    def _drive(self, target: _SoftwareLine, high: bool, at_ns: int) -> None:
        if target.level == high:
            return
        target.level = high
        edges, queue = target.edges, target.queue
        if edges is None or queue is None:
            return
        if edges != "both" and (edges == "rising") != high:
            return
        target.seqno += 1
        if target.drop:
            target.drop -= 1
            return
        queue.push([EdgeEvent(target.key, high, at_ns, target.seqno)])

    def _output(self, target: _SoftwareLine, high: bool) -> None:
        now = self.clock()
        target.history.append((now, high))
        target.level = high
        for index in target.wired_to:
            self._drive(self._lines[index], high, now)


class _SoftwareInputs:
    """Input lines of a software chip."""

    def __init__(
        self,
        chip: SoftwareChip,
        lines: list[_SoftwareLine],
        queue: EventQueue,
        description: str,
        levels: dict[str, bool],
    ) -> None:
        self._chip = chip
        self._lines = lines
        self._queue = queue
        self.description = description
        self.levels: Mapping[str, bool] = levels

    def now_ns(self) -> int:
        """The chip's clock."""
        return self._chip.clock()

    async def read(self) -> list[EdgeEvent]:
        """Wait for edge events."""
        return await self._queue.read()

    def read_nowait(self) -> list[EdgeEvent]:
        """Events queued right now."""
        return self._queue.take()

    def close(self) -> None:
        """Release the lines."""
        for target in self._lines:
            if target.queue is self._queue:
                target.holder, target.edges, target.queue = None, None, None
        self._lines = []


class _SoftwareOutput:
    """An output line of a software chip; every level it drives is kept in the line's history."""

    def __init__(
        self, chip: SoftwareChip, target: _SoftwareLine, active_low: bool, description: str
    ) -> None:
        self._chip = chip
        self._target: _SoftwareLine | None = target
        self._active_low = active_low
        self.description = description

    def set(self, active: bool) -> None:
        """Drive the line."""
        if self._target is None:
            raise ConnectionLost(f"{self.description} was released")
        self._chip._output(self._target, active != self._active_low)

    def close(self) -> None:
        """Inactive, then released."""
        if self._target is None:
            return
        self.set(False)
        self._target.holder = None
        self._target = None
