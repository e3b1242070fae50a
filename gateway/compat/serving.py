"""What every compatibility output shares: an HTTP listener of its own with the LAN limits,
retried with backoff while the address cannot be bound, and an mDNS announcement."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence

from aiohttp import web

from gateway.backoff import Backoff
from gateway.contracts.http import OutputStatus, ZeroconfStatus
from gateway.engine import BillingRecord, ProfileRow, Register, Update
from gateway.lan.announce import ZeroconfAnnouncer
from gateway.lan.limits import CappedSite, server_limits
from gateway.lan.listener import Listener, listen
from gateway.model import Event, RawFrame

__all__ = ["CompatServer", "derived_mac"]

_LOGGER = logging.getLogger(__name__)

# Such a device is polled by one to a few clients; a handful of connections is plenty, and the
# gateway's own API keeps its file handles whatever a misbehaving battery does.
MAX_CONNECTIONS = 32
# Batteries poll every second or so over keep-alive connections; a minute idle is abandoned.
IDLE_TIMEOUT_S = 60.0
# Open WebSockets get this long to notice shutdown before their sockets are closed.
SHUTDOWN_TIMEOUT_S = 2.0


def derived_mac(*names: str) -> str:
    """A stable, locally administered MAC-like id (12 upper-case hex digits) from names, so the
    emulated device keeps its identity across restarts without any stored state."""
    digest = hashlib.sha256("/".join(names).encode()).hexdigest()[:10].upper()
    return "02" + digest  # 0x02: locally administered, unicast; never a vendor's address


class CompatServer:
    """An output that serves an aiohttp application on its own address.

    Subclasses give ``name``, ``build_app`` and ``services`` (what to announce), and may run
    more listeners beside HTTP in ``serve_more``. The ``on_*`` hooks of the Output protocol
    are no-ops: these outputs read the view when a client asks, never the engine's stream.
    """

    name = "compat"

    def __init__(self, *, bind: str, port: int, announce_on: Sequence[str] | None) -> None:
        self.bind = bind
        self.configured_port = port
        self.port: int | None = None
        self.started = asyncio.Event()
        self._announce_on = announce_on
        self.zeroconf_error: str | None = None
        self.announced: str | None = None

    # for subclasses ----------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The HTTP application."""
        raise NotImplementedError

    def services(self) -> tuple[str, Mapping[str, dict[str, str]]]:
        """The mDNS instance name and, per service type, its TXT properties."""
        raise NotImplementedError

    async def serve_more(self) -> None:
        """Other listeners (UDP); runs while HTTP serves. Default: none."""
        await asyncio.Event().wait()

    # Output ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled; retry with backoff while the address cannot be bound."""
        backoff = Backoff()
        while True:
            started = time.monotonic()
            try:
                await self._serve()
            except OSError as err:
                delay = backoff.next_delay(time.monotonic() - started)
                _LOGGER.error(
                    "%s: cannot listen on %s:%d (%s); retrying in %.0f s",
                    self.name,
                    self.bind,
                    self.configured_port,
                    err.strerror or err,
                    delay,
                )
                await asyncio.sleep(delay)

    def on_state(self, meter: str, registers: Mapping[str, Register]) -> None:
        """Not used: values are read from the view on each request."""

    def on_profile(self, meter: str, row: ProfileRow) -> None:
        """Not used."""

    def on_billing(self, meter: str, record: BillingRecord) -> None:
        """Not used."""

    def on_live(self, update: Update) -> None:
        """Not used: values are read from the view on each request."""

    def on_event(self, event_id: int, event: Event) -> None:
        """Not used."""

    def on_raw(self, frame: RawFrame) -> None:
        """Not used."""

    def on_checkpoint(self) -> None:
        """Not used: nothing of these outputs lives on disk."""

    def status(self) -> OutputStatus:
        """This output's state."""
        return OutputStatus(
            connected=self.port is not None,
            port=self.port,
            zeroconf=ZeroconfStatus(service=self.announced, error=self.zeroconf_error),
        )

    # internals ---------------------------------------------------------------------------------

    async def _serve(self) -> None:
        listener = await listen(self.bind, self.configured_port)
        try:
            await self._serve_on(listener)
        finally:
            listener.close()

    async def _serve_on(self, listener: Listener) -> None:
        runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            **server_limits(IDLE_TIMEOUT_S),
        )
        await runner.setup()
        announcer: ZeroconfAnnouncer | None = None
        try:
            await CappedSite(runner, listener.sockets, cap=MAX_CONNECTIONS).start()
            self.port = listener.port
            _LOGGER.info("%s: serving http://%s:%d/", self.name, self.bind, self.port)
            announcer = await self._announce()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.serve_more(), name=f"{self.name}-more")
                self.started.set()
        finally:
            self.started.clear()
            if announcer is not None:
                await announcer.close()
                self.announced = None
            await runner.cleanup()
            self.port = None

    async def _announce(self) -> ZeroconfAnnouncer | None:
        if self._announce_on is None or self.port is None:
            return None
        instance, services = self.services()
        announcer = ZeroconfAnnouncer(
            instance=instance,
            port=self.port,
            bind=self.bind,
            interfaces=self._announce_on,
            properties={},
            services=services,
        )
        try:
            await announcer.start()
        except (OSError, TimeoutError, ValueError, RuntimeError) as err:
            # Clients can still be given the address by hand; mDNS is a convenience.
            self.zeroconf_error = str(err) or type(err).__name__
            _LOGGER.warning("%s: zeroconf: not announced: %s", self.name, self.zeroconf_error)
            return None
        self.zeroconf_error = None
        self.announced = announcer.name
        return announcer
