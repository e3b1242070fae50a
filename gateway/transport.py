"""The one transport helper: a byte link to a tty, a TCP peer or stdin.

The only module that imports the serial libraries. URLs: ``/dev/ttyUSB0`` (or any path),
``socket://host:port`` / ``tcp://host:port`` (ser2net, M-Bus/TCP gateways, Kamstrup IP modules,
DLMS wrapper port 4059), ``stdin`` (raw lines piped in, e.g. from rtl_wmbus) and ``exec:COMMAND``
(a shell command's standard output, e.g. ``rtl_sdr ... | rtl_wmbus``; stopped on close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from gateway.errors import CannotConnect, ConnectionLost

__all__ = ["Link", "SerialSettings", "open_link", "open_pty", "serve_tcp", "write_slowly"]

_LOGGER = logging.getLogger(__name__)

# A TCP connect to a LAN peer that takes longer than this will not succeed by waiting.
CONNECT_TIMEOUT_S = 10.0
# pyserial-asyncio reports connection_lost before the fd is released (zigpy serial.py); a short
# grace lets a reconnect find the port free.
SERIAL_RELEASE_S = 0.1
_READ_CHUNK = 4096
# A command (rtl_sdr | rtl_wmbus) gets this long to exit after SIGTERM before SIGKILL.
PROCESS_STOP_S = 5.0


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Line settings of a serial port (ignored for TCP)."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: float = 1
    rs485: bool = False


class Link:
    """An open byte stream with timeouts expressed by the caller's ``asyncio.timeout``."""

    def __init__(
        self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None
    ) -> None:
        self.url = url
        self._reader = reader
        self._writer = writer

    @property
    def is_serial(self) -> bool:
        """True for a local tty (baud rate can be changed)."""
        return self._serial is not None

    async def read(self, max_bytes: int = _READ_CHUNK) -> bytes:
        """Whatever bytes are available (at least one); ConnectionLost at end of stream."""
        try:
            data = await self._reader.read(max_bytes)
        except OSError as err:
            raise ConnectionLost(f"{self.url}: {err}") from err
        if not data:
            raise ConnectionLost(f"{self.url}: end of stream")
        return data

    async def read_within(self, silence_s: float | None) -> bytes:
        """``read``, or ConnectionLost when nothing comes for ``silence_s`` (None: no limit).

        For links a meter or receiver talks on unasked: silence that long means a lost cable
        or a hung device, and the caller's supervisor reopens the link."""
        try:
            async with asyncio.timeout(silence_s):
                return await self.read()
        except TimeoutError:
            raise ConnectionLost(f"{self.url}: nothing received for {silence_s:g} s") from None

    async def read_exactly(self, count: int) -> bytes:
        """Exactly ``count`` bytes."""
        try:
            return await self._reader.readexactly(count)
        except asyncio.IncompleteReadError as err:
            raise ConnectionLost(f"{self.url}: end of stream") from err
        except OSError as err:
            raise ConnectionLost(f"{self.url}: {err}") from err

    async def readline(self) -> bytes:
        """One line including its terminator."""
        try:
            line = await self._reader.readline()
        except (OSError, ValueError) as err:
            raise ConnectionLost(f"{self.url}: {err}") from err
        if not line:
            raise ConnectionLost(f"{self.url}: end of stream")
        return line

    async def write(self, data: bytes) -> None:
        """Send bytes and wait until the OS took them."""
        if self._writer is None:
            raise ConnectionLost(f"{self.url} is read-only")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as err:
            raise ConnectionLost(f"{self.url}: {err}") from err

    def discard_input(self) -> None:
        """Drop bytes already received (stale echo or a late answer)."""
        buffered: Any = getattr(self._reader, "_buffer", None)
        if buffered is not None:
            buffered.clear()

    def set_baudrate(self, baudrate: int) -> None:
        """Switch a tty's speed (IEC 62056-21 mode C); no-op on TCP."""
        if self._serial is not None:
            self._serial.baudrate = baudrate

    async def close(self) -> None:
        """Close and wait until the port is released; idempotent."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        serial = self._serial
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()
        if serial is not None:
            await asyncio.sleep(SERIAL_RELEASE_S)

    @property
    def _serial(self) -> Any:
        if self._writer is None:
            return None
        return getattr(self._writer.transport, "serial", None)


async def write_slowly(link: Link, data: bytes, byte_delay_s: float = 0.0) -> None:
    """Write at once, or one byte at a time with a pause (a slow UART, a trickling peer)."""
    if byte_delay_s <= 0:
        await link.write(data)
        return
    for byte in data:
        await link.write(bytes((byte,)))
        await asyncio.sleep(byte_delay_s)


@contextlib.asynccontextmanager
async def open_link(url: str, serial: SerialSettings | None = None) -> AsyncIterator[Link]:
    """Open a link, yield it, and always close it."""
    link = await _connect(url, serial or SerialSettings())
    try:
        yield link
    finally:
        await link.close()


async def _connect(url: str, serial: SerialSettings) -> Link:
    if url.startswith("exec:"):
        return await _spawn(url)
    parts = urlsplit(url)
    if parts.scheme in ("socket", "tcp"):
        if not parts.hostname or not parts.port:
            raise CannotConnect(f"{url}: expected socket://host:port")
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        except (OSError, TimeoutError) as err:
            raise CannotConnect(f"{url}: {str(err) or 'connect timed out'}") from err
        return Link(url, reader, writer)
    if url == "stdin":
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return Link(url, reader, None)
    return await _open_serial(url, serial)


class _ProcessLink(Link):
    """The standard output of a command in its own process group; closing stops the group."""

    def __init__(self, url: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        super().__init__(url, process.stdout, None)
        self._process: asyncio.subprocess.Process | None = process

    async def close(self) -> None:
        """Stop the whole pipeline (SIGTERM, then SIGKILL) and reap it; idempotent."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(PROCESS_STOP_S):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _spawn(url: str) -> Link:
    command = url.removeprefix("exec:").strip()
    if not command:
        raise CannotConnect(f"{url}: expected exec:COMMAND")
    try:
        process = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: close() stops every stage
        )
    except OSError as err:
        raise CannotConnect(f"{url}: {err}") from err
    _LOGGER.debug("started %s (pid %d)", command, process.pid)
    return _ProcessLink(url, process)


async def _open_serial(url: str, settings: SerialSettings) -> Link:
    import serial  # noqa: PLC0415 - only serial users pay for the import
    import serial_asyncio_fast  # noqa: PLC0415

    options: dict[str, Any] = {
        "url": url,
        "baudrate": settings.baudrate,
        "bytesize": settings.bytesize,
        "parity": settings.parity,
        "stopbits": settings.stopbits,
        # Exclusive locking: a second reader on the same port is a classic P1/M-Bus failure.
        "exclusive": True,
    }
    if _is_pty(url):
        # Linux pseudo-terminals refuse parity bits and 7-bit bytes (EINVAL); an emulator on
        # the other end has no line to frame anyway.
        options["parity"], options["bytesize"] = "N", 8
    try:
        reader, writer = await serial_asyncio_fast.open_serial_connection(**options)
    except (OSError, serial.SerialException, ValueError, termios.error) as err:
        raise CannotConnect(f"{url}: {err}") from err
    if settings.rs485:
        import serial.rs485  # noqa: PLC0415

        port = writer.transport.serial  # type: ignore[attr-defined]
        try:
            port.rs485_mode = serial.rs485.RS485Settings()
        except (OSError, ValueError):
            # The driver has no kernel RS485 support (most USB adapters switch direction in
            # hardware); pyserial would keep the setting and refuse every later speed change.
            port._rs485_mode = None
            _LOGGER.debug("%s: no kernel RS485 mode; relying on the adapter", url)
    _LOGGER.debug("opened %s at %d baud", url, settings.baudrate)
    return Link(url, reader, writer)


@contextlib.asynccontextmanager
async def open_pty(link_path: str | None = None) -> AsyncIterator[tuple[Link, str]]:
    """A pseudo-terminal for emulators: yields (the device side as a Link, the tty path a
    gateway module opens). With ``link_path``, a symlink there points at the tty, so a test or
    user can "replug" by opening a new pty behind the same name."""
    import tty  # noqa: PLC0415 - POSIX only, and only emulators need it

    controller, device = os.openpty()
    tty.setraw(device)  # no echo, no line discipline: bytes pass as they are
    path = os.ttyname(device)
    if link_path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link_path)
        os.symlink(path, link_path)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader),
        os.fdopen(controller, "rb", buffering=0, closefd=False),
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(controller, "wb", buffering=0, closefd=False)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
    link = Link(path, reader, writer)
    try:
        yield link, link_path or path
    finally:
        read_transport.close()
        write_transport.close()
        for fd in (controller, device):
            with contextlib.suppress(OSError):
                os.close(fd)


async def serve_tcp(
    port: int, handler: Callable[[Link], Awaitable[None]], host: str = "127.0.0.1"
) -> asyncio.Server:
    """A TCP server whose connections are handed to ``handler`` as Links (emulators)."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link(f"tcp://{host}:{port}", reader, writer)
        try:
            await handler(link)
        except ConnectionLost:
            pass  # the gateway went away; it will come back
        finally:
            await link.close()

    return await asyncio.start_server(accept, host, port)


def _is_pty(path: str) -> bool:
    """True for a pseudo-terminal (an emulator's end), however it is linked."""
    return os.path.realpath(path).startswith("/dev/pts/")
