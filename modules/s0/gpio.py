"""The one small interface to GPIO lines: edge events in (``PulseSource``), levels out.

Two implementations behind it: libgpiod v2 (the ``gpiod`` package, optional extra ``[gpio]``,
imported only when a real chip is opened) and ``SoftwareChip``, an in-process chip that tests and
trials drive with given timestamps, the way the kernel's gpio-sim is driven. The adapters see no
difference: ``open_inputs`` and ``open_output`` pick the implementation from the chip name
(``software:<name>`` is a software chip).
"""

from __future__ import annotations

import asyncio
import errno
import glob
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, Protocol

from gateway.errors import CannotConnect, ConnectionLost, FatalAdapterError
from modules.s0.pulses import EdgeEvent

__all__ = [
    "SOFTWARE_PREFIX",
    "Bias",
    "Drive",
    "EdgeEvent",
    "Edges",
    "InputSpec",
    "LineId",
    "OutputLine",
    "PulseSource",
    "SoftwareChip",
    "open_inputs",
    "open_output",
]

_LOGGER = logging.getLogger(__name__)

SOFTWARE_PREFIX = "software:"
# The kernel caps a request's event buffer at 16 events per line for 64 lines (gpiolib-cdev);
# at 20 pulses/s with both edges that is 25 s of a stalled event loop before anything is lost.
EVENT_BUFFER_SIZE = 1024
# ENOTSUPP (524) is the kernel-internal "not supported" some drivers leak to user space.
_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, 524}

LineId = str | int
Bias = Literal["pull_up", "pull_down", "disabled", "as_is"]
Edges = Literal["rising", "falling", "both"]
Drive = Literal["push_pull", "open_drain", "open_source"]


@dataclass(frozen=True, slots=True)
class InputSpec:
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
        return _software_chip(chip).request_inputs(lines, consumer=consumer)
    return _GpiodInputs.open(chip, lines, consumer=consumer)


def open_output(
    chip: str | None, line: LineId, *, consumer: str, active_low: bool = False, drive: Drive
) -> OutputLine:
    """Request one output line, inactive; raises CannotConnect/FatalAdapterError."""
    if chip is not None and chip.startswith(SOFTWARE_PREFIX):
        return _software_chip(chip).request_output(line, consumer=consumer, active_low=active_low)
    return _GpiodOutput.open(chip, line, consumer=consumer, active_low=active_low, drive=drive)


class _EventQueue:
    """Events buffered between the reader callback and ``read()``; a read can be cancelled
    at any moment without losing one."""

    def __init__(self) -> None:
        self._events: list[EdgeEvent] = []
        self._ready = asyncio.Event()
        self._error: Exception | None = None

    def push(self, events: Sequence[EdgeEvent]) -> None:
        self._events.extend(events)
        self._ready.set()

    def fail(self, error: Exception) -> None:
        self._error = error
        self._ready.set()

    async def read(self) -> list[EdgeEvent]:
        while not self._events and self._error is None:
            self._ready.clear()
            await self._ready.wait()
        if self._events:
            return self.take()
        assert self._error is not None
        raise self._error

    def take(self) -> list[EdgeEvent]:
        events, self._events = self._events, []
        return events


# libgpiod v2 --------------------------------------------------------------------------------


def _gpiod() -> Any:
    try:
        import gpiod  # noqa: PLC0415 - optional extra, only needed for real chips
    except ImportError as err:
        raise FatalAdapterError(
            "GPIO needs the gpiod package (libgpiod v2): pip install 'meter-gateway[gpio]'"
        ) from err
    return gpiod


@dataclass(frozen=True, slots=True)
class _Line:
    """A line found on a chip."""

    path: str
    offset: int
    description: str


def _chip_paths() -> list[str]:
    gpiod = _gpiod()
    paths = sorted(glob.glob("/dev/gpiochip*"), key=lambda p: (len(p), p))
    return [path for path in paths if gpiod.is_gpiochip_device(path)]


def _chip_label(path: str) -> str:
    gpiod = _gpiod()
    try:
        with gpiod.Chip(path) as chip:
            label: str = chip.get_info().label
            return label
    except PermissionError:
        return "no permission: see the gpio group"
    except OSError:
        return "?"


def _known_chips() -> str:
    found = [f"{path.rsplit('/', 1)[-1]} [{_chip_label(path)}]" for path in _chip_paths()]
    return ", ".join(found) or "none: is this a machine with GPIO, and is /dev mounted?"


def _chip_path(chip: str) -> str:
    """A chip named as a path, gpiochipN, N, or by its label."""
    if chip.startswith("/"):
        candidates = [chip]
    elif chip.isdigit():
        candidates = [f"/dev/gpiochip{chip}"]
    elif chip.startswith("gpiochip"):
        candidates = [f"/dev/{chip}"]
    else:
        candidates = [path for path in _chip_paths() if _chip_label(path) == chip]
    for path in candidates:
        if _gpiod().is_gpiochip_device(path):
            return path
    raise CannotConnect(f"no GPIO chip {chip!r} (chips here: {_known_chips()})")


def _open_chip(path: str) -> Any:
    gpiod = _gpiod()
    try:
        return gpiod.Chip(path)
    except PermissionError as err:
        raise CannotConnect(
            f"no permission to open {path}: add the user to group gpio "
            '(udev rule KERNEL=="gpiochip*", GROUP="gpio", MODE="0660")'
        ) from err
    except OSError as err:
        raise CannotConnect(f"cannot open GPIO chip {path}: {err.strerror or err}") from err


def _find_line(chip: str | None, line: LineId) -> _Line:
    """Resolve a chip and line given by name or number; check nobody holds the line."""
    if chip is None:
        if not isinstance(line, str) or line.isdigit():
            raise FatalAdapterError(f"line {line!r}: a line given by number needs `chip`")
        paths = _chip_paths()
        if not paths:
            raise CannotConnect(f"no GPIO chips to look for line {line!r} on")
    else:
        paths = [_chip_path(chip)]
    for path in paths:
        with _open_chip(path) as handle:
            info = handle.get_info()
            name = f"{info.name} [{info.label}]"
            try:
                offset: int = handle.line_offset_from_id(line)
            except (OSError, ValueError):
                if chip is None:
                    continue
                raise FatalAdapterError(
                    f"no line {line!r} on GPIO chip {name} ({info.num_lines} lines)"
                ) from None
            line_info = handle.get_line_info(offset)
            label = f" ({line_info.name})" if line_info.name else ""
            description = f"line {offset}{label} of {name}"
            if line_info.used:
                raise CannotConnect(
                    f"{description} is held by {line_info.consumer or 'another process'!r}"
                )
            return _Line(path, offset, description)
    raise FatalAdapterError(f"no line named {line!r} on any GPIO chip ({_known_chips()})")


def _request(found: _Line, config: dict[int, Any], *, consumer: str, **kwargs: Any) -> Any:
    gpiod = _gpiod()
    try:
        return gpiod.request_lines(found.path, config=config, consumer=consumer, **kwargs)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise CannotConnect(f"{found.description} is held by another process") from err
        raise CannotConnect(f"cannot request {found.description}: {err.strerror or err}") from err


class _GpiodInputs:
    """Input lines requested through libgpiod v2, read from the event loop via ``req.fd``."""

    def __init__(
        self, request: Any, keys: dict[int, str], description: str, levels: dict[str, bool]
    ) -> None:
        self._request = request
        self._keys = keys
        self.description = description
        self.levels: Mapping[str, bool] = levels
        self._queue = _EventQueue()
        self._loop = asyncio.get_running_loop()
        fd: int = request.fd
        self._fd = fd
        self._loop.add_reader(fd, self._on_readable)

    @classmethod
    def open(
        cls, chip: str | None, lines: Mapping[str, InputSpec], *, consumer: str
    ) -> _GpiodInputs:
        gpiod = _gpiod()
        found = {key: _find_line(chip, spec.line) for key, spec in lines.items()}
        paths = {line.path for line in found.values()}
        if len(paths) > 1:
            raise FatalAdapterError(
                "the pulse and direction lines must be on one chip: "
                + ", ".join(line.description for line in found.values())
            )
        path = paths.pop()
        description = " and ".join(line.description for line in found.values())

        def settings(spec: InputSpec, debounce: bool) -> Any:
            edge = gpiod.line.Edge
            bias = gpiod.line.Bias
            return gpiod.LineSettings(
                direction=gpiod.line.Direction.INPUT,
                edge_detection={"rising": edge.RISING, "falling": edge.FALLING, "both": edge.BOTH}[
                    spec.edges
                ],
                bias={
                    "pull_up": bias.PULL_UP,
                    "pull_down": bias.PULL_DOWN,
                    "disabled": bias.DISABLED,
                    "as_is": bias.AS_IS,
                }[spec.bias],
                debounce_period=timedelta(seconds=spec.debounce_s if debounce else 0.0),
                event_clock=gpiod.line.Clock.MONOTONIC,
            )

        first = next(iter(found.values()))
        target = _Line(path, first.offset, description)
        try:
            request = _request(
                target,
                {found[key].offset: settings(spec, True) for key, spec in lines.items()},
                consumer=consumer,
                event_buffer_size=EVENT_BUFFER_SIZE,
            )
        except CannotConnect as err:
            cause = err.__cause__
            debounced = any(spec.debounce_s > 0 for spec in lines.values())
            if not (debounced and isinstance(cause, OSError) and cause.errno in _UNSUPPORTED):
                raise
            _LOGGER.warning("%s: no kernel debounce here; relying on min_pulse_s", description)
            request = _request(
                target,
                {found[key].offset: settings(spec, False) for key, spec in lines.items()},
                consumer=consumer,
                event_buffer_size=EVENT_BUFFER_SIZE,
            )
        try:
            active = gpiod.line.Value.ACTIVE
            levels = {key: request.get_value(found[key].offset) == active for key in lines}
            return cls(
                request, {line.offset: key for key, line in found.items()}, description, levels
            )
        except BaseException:
            request.release()
            raise

    def now_ns(self) -> int:
        """CLOCK_MONOTONIC, the clock libgpiod stamps events with (event_clock MONOTONIC)."""
        return time.monotonic_ns()

    async def read(self) -> list[EdgeEvent]:
        """Wait for edge events."""
        return await self._queue.read()

    def read_nowait(self) -> list[EdgeEvent]:
        """Events the kernel holds for us right now."""
        if self._request is not None and self._request.wait_edge_events(0):
            self._on_readable()
        return self._queue.take()

    def close(self) -> None:
        """Release the lines."""
        if self._request is None:
            return
        self._loop.remove_reader(self._fd)
        self._request.release()
        self._request = None

    def _on_readable(self) -> None:
        gpiod = _gpiod()
        try:
            raw = self._request.read_edge_events()
        except OSError as err:
            self._loop.remove_reader(self._fd)
            self._queue.fail(ConnectionLost(f"{self.description}: {err.strerror or err}"))
            return
        rising = gpiod.EdgeEvent.Type.RISING_EDGE
        self._queue.push(
            [
                EdgeEvent(
                    self._keys[event.line_offset],
                    event.event_type == rising,
                    event.timestamp_ns,
                    event.line_seqno,
                )
                for event in raw
            ]
        )


class _GpiodOutput:
    """One output line requested through libgpiod v2."""

    def __init__(self, request: Any, offset: int, description: str) -> None:
        self._request = request
        self._offset = offset
        self.description = description

    @classmethod
    def open(
        cls, chip: str | None, line: LineId, *, consumer: str, active_low: bool, drive: Drive
    ) -> _GpiodOutput:
        gpiod = _gpiod()
        found = _find_line(chip, line)
        settings = gpiod.LineSettings(
            direction=gpiod.line.Direction.OUTPUT,
            active_low=active_low,
            drive={
                "push_pull": gpiod.line.Drive.PUSH_PULL,
                "open_drain": gpiod.line.Drive.OPEN_DRAIN,
                "open_source": gpiod.line.Drive.OPEN_SOURCE,
            }[drive],
            output_value=gpiod.line.Value.INACTIVE,
        )
        request = _request(found, {found.offset: settings}, consumer=consumer)
        return cls(request, found.offset, found.description)

    def set(self, active: bool) -> None:
        """Drive the line."""
        value = _gpiod().line.Value
        try:
            self._request.set_value(self._offset, value.ACTIVE if active else value.INACTIVE)
        except OSError as err:
            raise ConnectionLost(f"{self.description}: {err.strerror or err}") from err

    def close(self) -> None:
        """Inactive, then released."""
        if self._request is None:
            return
        try:
            self.set(False)
        except ConnectionLost:
            pass
        finally:
            self._request.release()
            self._request = None


# software -----------------------------------------------------------------------------------

_SOFTWARE_CHIPS: dict[str, SoftwareChip] = {}


def _software_chip(chip: str) -> SoftwareChip:
    name = chip.removeprefix(SOFTWARE_PREFIX)
    try:
        return _SOFTWARE_CHIPS[name]
    except KeyError:
        known = ", ".join(SOFTWARE_PREFIX + n for n in _SOFTWARE_CHIPS) or "none"
        raise CannotConnect(f"no GPIO chip {chip!r} (software chips: {known})") from None


@dataclass(slots=True)
class _SoftwareLine:
    name: str
    level: bool = False
    holder: str | None = None  # consumer holding it, as the kernel's line info says
    edges: Edges | None = None  # requested as an input with these edges
    seqno: int = 0
    drop: int = 0  # the next N events are lost, as in a kernel buffer overflow
    queue: _EventQueue | None = None
    key: str = ""
    wired_to: list[int] = field(default_factory=list)
    history: list[tuple[int, bool]] = field(default_factory=list)


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
        queue = _EventQueue()
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
        queue: _EventQueue,
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
