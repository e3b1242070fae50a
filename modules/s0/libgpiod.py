"""libgpiod v2 behind the GPIO interface: the GPIO character device, read from the event loop.

The ``gpiod`` package (optional extra ``[gpio]``) is imported when a real chip is opened, so a
gateway without GPIO never needs it.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gateway.errors import CannotConnect, ConnectionLost, FatalAdapterError
from modules.s0.gpio import Drive, EventQueue, InputSpec, LineId
from modules.s0.pulses import EdgeEvent

__all__ = ["EVENT_BUFFER_SIZE", "GpiodInputs", "GpiodOutput"]

_LOGGER = logging.getLogger(__name__)

# The kernel caps a request's event buffer at 16 events per line for 64 lines (gpiolib-cdev);
# at 20 pulses/s with both edges that is 25 s of a stalled event loop before anything is lost.
EVENT_BUFFER_SIZE = 1024
# ENOTSUPP (524) is the kernel-internal "not supported" some drivers leak to user space.
_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, 524}


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


class GpiodInputs:
    """Input lines requested through libgpiod v2, read from the event loop via ``req.fd``."""

    def __init__(
        self, request: Any, keys: dict[int, str], description: str, levels: dict[str, bool]
    ) -> None:
        self._request = request
        self._keys = keys
        self.description = description
        self.levels: Mapping[str, bool] = levels
        self._queue = EventQueue()
        self._loop = asyncio.get_running_loop()
        fd: int = request.fd
        self._fd = fd
        self._loop.add_reader(fd, self._on_readable)

    @classmethod
    def open(
        cls, chip: str | None, lines: Mapping[str, InputSpec], *, consumer: str
    ) -> GpiodInputs:
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


class GpiodOutput:
    """One output line requested through libgpiod v2."""

    def __init__(self, request: Any, offset: int, description: str) -> None:
        self._request = request
        self._offset = offset
        self.description = description

    @classmethod
    def open(
        cls, chip: str | None, line: LineId, *, consumer: str, active_low: bool, drive: Drive
    ) -> GpiodOutput:
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
