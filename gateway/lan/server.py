"""The LAN output: the HTTP server for the API, the page and /metrics, plus the mDNS announcement.

The address is bound at start; the aiohttp half (``gateway/lan/webapp.py``) is loaded when the
first client connects (``gateway/lan/listener.py`` says why). Everything that must work before
a request (the announcement, the live hub the outputs' hooks feed, the lag probe) lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from gateway import __version__
from gateway.backoff import Backoff
from gateway.config import HttpSection, read_secret
from gateway.contracts import http
from gateway.engine import Register, Update
from gateway.engine.records import BillingRecord, ProfileRow
from gateway.errors import ConfigError
from gateway.lan.listener import Listener, listen
from gateway.lan.live import LiveHub
from gateway.lan.shapes import (
    described_register,
    display_state,
    event_json,
    profile_row_json,
    register_json,
)
from gateway.model import Event, RawFrame, utc_now

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.lan.announce import ZeroconfAnnouncer
    from gateway.view import GatewayView, Output

__all__ = ["LanServer"]

_LOGGER = logging.getLogger(__name__)

# The lag probe: a timer this long, and how late it fired is the loop lag.
LAG_PROBE_S = 1.0
# Module health goes to open pages this often (it changes slowly; events come at once).
HEALTH_PUSH_S = 5.0
# A reload (SIGHUP) that changes the address, zeroconf or the meters is noticed this fast.
SETTINGS_POLL_S = 1.0
# The modelled display is looked at this often; a change (scroll, push, new value) is sent.
DISPLAY_POLL_S = 1.0


class LanServer:
    """HTTP API + web page + /metrics + zeroconf, as one gateway output."""

    name = "http"

    def __init__(self, gateway: GatewayView) -> None:
        self.gateway = gateway
        self.hub = LiveHub()
        self.port: int | None = None
        self.loop_lag_s = 0.0
        self.started = asyncio.Event()
        self._announcer: ZeroconfAnnouncer | None = None
        self._zeroconf_error: str | None = None
        self._token_for: HttpSection | None = None
        self._token: str | None = None

    # Output ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled, again after a reload that changes the LAN settings, with
        backoff while the address cannot be bound or the web server cannot be loaded; withdraw
        and close on the way out."""
        backoff = Backoff()
        while True:
            started = time.monotonic()
            try:
                problem = await self._serve()
            except OSError as err:
                http = self.gateway.settings.http
                problem = f"cannot listen on {http.bind}:{http.port} ({err.strerror or err})"
            if problem is None:
                continue  # the settings changed: serve the new ones at once
            delay = backoff.next_delay(time.monotonic() - started)
            _LOGGER.error("http: %s; retrying in %.0f s", problem, delay)
            await asyncio.sleep(delay)

    def on_state(self, meter: str, registers: Mapping[str, Register]) -> None:
        """The registers every output shows (``Meters.published``), totals included."""
        if not self.hub.wants(meter):
            return  # nobody watches: no per-register shapes for nothing, once a second a meter
        self.hub.publish(
            "state",
            http.StateRegisters(
                meter=meter,
                registers={c: described_register(r) for c, r in registers.items()},
            ),
            meter=meter,
        )

    def on_profile(self, meter: str, row: ProfileRow) -> None:
        """A closed load-profile interval: the page adds it to today's curve."""
        self.hub.publish(
            "profile",
            http.MeterProfileRow(meter=meter, **msgspec.structs.asdict(profile_row_json(row))),
            meter=meter,
        )

    def on_billing(self, meter: str, record: BillingRecord) -> None:
        """A debiting stop."""
        self.hub.publish(
            "billing",
            http.MeterBillingPeriod(
                meter=meter,
                number=record.number,
                at=record.at,
                estimated=record.estimated,
                values=record.values,
            ),
            meter=meter,
        )

    def on_live(self, update: Update) -> None:
        """What a sample changed, at once (``Meters.live`` left out what only the gateway
        counts: that waits for its checkpoint)."""
        if not self.hub.wants(update.meter):
            return
        fresh = {code: register_json(reg) for code, reg in update.registers.items()}
        if fresh:
            self.hub.publish(
                "live", http.LiveRegisters(meter=update.meter, registers=fresh), meter=update.meter
            )

    def on_event(self, event_id: int, event: Event) -> None:
        """An event, already in the log."""
        self.hub.publish("event", event_json(event_id, event), meter=event.meter)

    def on_raw(self, frame: RawFrame) -> None:
        """Raw frames are not shown on the LAN."""

    def on_checkpoint(self) -> None:
        """Nothing of the LAN server lives on disk."""

    # for the API and metrics -------------------------------------------------------------------

    def token(self) -> str | None:
        """The bearer token for state changes, or None (commands refused)."""
        http = self.gateway.settings.http
        if http is not self._token_for:
            self._token_for = http
            self._token = http.token
            if http.token_file:
                try:
                    self._token = read_secret(http.token_file, what="http.token_file")
                except ConfigError as err:
                    _LOGGER.error("http: %s; commands are refused", err)
                    self._token = None
            if self._token is not None and not self._token:
                self._token = None
        return self._token

    def status(self) -> http.OutputStatus:
        """This output's state for /api/v1/health."""
        return http.OutputStatus(
            connected=self.port is not None,
            port=self.port,
            live_clients=len(self.hub),
            zeroconf=self.zeroconf_status(),
        )

    def zeroconf_status(self) -> http.ZeroconfStatus:
        """Whether and as what the service is announced."""
        return http.ZeroconfStatus(
            enabled=self.gateway.settings.zeroconf.enabled,
            service=self._announcer.name if self._announcer else None,
            error=self._zeroconf_error,
        )

    def build_app(self) -> web.Application:
        """The aiohttp application (also used directly by tests); imports aiohttp."""
        from gateway.lan.webapp import build_app  # noqa: PLC0415 - see the module's docstring

        return build_app(self)

    # internals ---------------------------------------------------------------------------------

    async def _serve(self) -> str | None:
        """Serve until the LAN settings change (None) or the web server cannot be loaded (what
        went wrong); OSError when the address cannot be bound."""
        http = self.gateway.settings.http
        listener = await listen(http.bind, http.port)
        try:
            self.port = listener.port
            _LOGGER.info("http: serving http://%s:%d/", http.bind, self.port)
            await self._announce()
            self.started.set()
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._probe_lag(), name="http-lag-probe"),
                    group.create_task(self._push_health(), name="http-health"),
                    group.create_task(self._push_display(), name="http-display"),
                ]
                serving = group.create_task(self._serve_web(listener), name="http-web")
                if await self._until_settings_change(serving):
                    _LOGGER.info("http: the LAN settings changed on reload; serving them anew")
                for task in (*tasks, serving):
                    task.cancel()
            return None if serving.cancelled() else serving.result()
        finally:
            self.started.clear()
            if self._announcer is not None:
                announcer, self._announcer = self._announcer, None
                await announcer.close()
            self.hub.close()
            listener.close()
            self.port = None

    async def _serve_web(self, listener: Listener) -> str:
        """Load the aiohttp half when the first client connects and serve until cancelled; if
        it cannot be loaded, refuse the clients (never leave them queued on a port nobody
        serves) and return what went wrong."""
        await listener.connection_waiting()
        loading = time.monotonic()
        try:
            from gateway.lan import webapp  # noqa: PLC0415 - the point: loaded for a client

            runner = await webapp.start(self, listener)
        except Exception as err:  # a broken install or a bug: logged in full, with its traceback
            _LOGGER.exception("http: the web server could not be loaded for the first client")
            listener.close()
            return f"the web server could not be loaded ({type(err).__name__}: {err})"
        _LOGGER.info(
            "http: web server loaded for the first client in %.0f ms",
            (time.monotonic() - loading) * 1000,
        )
        try:
            while True:  # serves until cancelled
                await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    def _settings_key(self) -> tuple[object, ...]:
        """What the listening socket and the announcement depend on."""
        settings = self.gateway.settings
        return (
            settings.http.bind,
            settings.http.port,
            settings.zeroconf,
            settings.gateway.name,
            tuple(meter.id for meter in settings.meters),
        )

    async def _until_settings_change(self, serving: asyncio.Task[str]) -> bool:
        """True once the LAN settings change; False as soon as ``serving`` has given up."""
        # Outputs get no reload callback; a cheap comparison each second stands in for one.
        key = self._settings_key()
        while not serving.done():
            await asyncio.wait({serving}, timeout=SETTINGS_POLL_S)
            if self._settings_key() != key:
                return True
        return False

    async def _announce(self) -> None:
        settings = self.gateway.settings
        if not settings.zeroconf.enabled or self.port is None:
            return
        # Imported here: python-zeroconf is ~30 modules and ~3 MB a gateway without mDNS
        # (the default config) need not load.
        from gateway.lan.announce import ZeroconfAnnouncer, txt_properties  # noqa: PLC0415
        from gateway.lan.openapi import API_PATH  # noqa: PLC0415 - light, but only wanted here

        announcer = ZeroconfAnnouncer(
            instance=f"meter-gateway-{settings.gateway.name}",
            port=self.port,
            bind=settings.http.bind,
            interfaces=settings.zeroconf.interfaces,
            properties=txt_properties(
                __version__, API_PATH, [m.id for m in settings.meters], settings.gateway.name
            ),
        )
        try:
            await announcer.start()
        except (OSError, TimeoutError, ValueError, RuntimeError) as err:
            # The LAN page still works by address; mDNS is a convenience.
            self._zeroconf_error = str(err) or type(err).__name__
            _LOGGER.warning("zeroconf: not announced: %s", self._zeroconf_error)
            return
        self._zeroconf_error = None
        self._announcer = announcer

    async def _probe_lag(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_PROBE_S)
            self.loop_lag_s = max(time.monotonic() - before - LAG_PROBE_S, 0.0)

    async def _push_health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_PUSH_S)
            self.hub.publish(
                "health",
                {
                    name: http.LiveHealth(
                        state=h.state,
                        communicating=h.communicating,
                        frames_ok=h.frames_ok,
                        frames_failed=h.frames_failed,
                        last_error=h.last_error,
                    )
                    for name, h in self.gateway.health.items()
                },
            )

    async def _push_display(self) -> None:
        sent: dict[str, dict[str, Any]] = {}
        while True:
            await asyncio.sleep(DISPLAY_POLL_S)
            if not len(self.hub):
                sent.clear()
                continue
            now = utc_now()
            for meter_id, engine in list(self.gateway.engines.items()):
                state = engine.display_state(now)
                if sent.get(meter_id) != state:
                    sent[meter_id] = state
                    shown = display_state(state)
                    self.hub.publish(
                        "display",
                        http.MeterDisplayState(meter=meter_id, **msgspec.structs.asdict(shown)),
                        meter=meter_id,
                    )


if TYPE_CHECKING:

    def _is_an_output(gateway: GatewayView) -> Output:
        """mypy checks here that LanServer keeps up with the Output protocol."""
        return LanServer(gateway)
