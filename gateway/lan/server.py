"""The LAN output: aiohttp server for the API, the page and /metrics, plus the mDNS announcement."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from gateway import __version__
from gateway.backoff import Backoff
from gateway.config import HttpSection, read_secret
from gateway.contracts import http
from gateway.engine import Register, Update
from gateway.engine.records import BillingRecord, ProfileRow
from gateway.errors import ConfigError
from gateway.lan import metrics
from gateway.lan.api import API_PATH, Api
from gateway.lan.limits import CLIENT_MAX_BODY_B, CappedSite, bound_port, server_limits
from gateway.lan.live import LiveHub, encode
from gateway.lan.params import ApiError
from gateway.lan.shapes import (
    described_register,
    display_state,
    event_json,
    profile_row_json,
    register_json,
)
from gateway.model import Event, RawFrame, utc_now

if TYPE_CHECKING:
    from gateway.lan.announce import ZeroconfAnnouncer
    from gateway.view import GatewayView, Output

__all__ = ["LanServer"]

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# Open event streams get up to this long to notice shutdown before their sockets are closed.
SHUTDOWN_TIMEOUT_S = 2.0
# The lag probe: a timer this long, and how late it fired is the loop lag.
LAG_PROBE_S = 1.0
# Module health goes to open pages this often (it changes slowly; events come at once).
HEALTH_PUSH_S = 5.0
# A reload (SIGHUP) that changes the address, zeroconf or the meters is noticed this fast.
SETTINGS_POLL_S = 1.0
# The modelled display is looked at this often; a change (scroll, push, new value) is sent.
DISPLAY_POLL_S = 1.0

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
        backoff while the address cannot be bound; withdraw and close on the way out."""
        backoff = Backoff()
        while True:
            started = time.monotonic()
            try:
                await self._serve()
            except OSError as err:
                delay = backoff.next_delay(time.monotonic() - started)
                http = self.gateway.settings.http
                _LOGGER.error(
                    "http: cannot listen on %s:%d (%s); retrying in %.0f s",
                    http.bind,
                    http.port,
                    err.strerror or err,
                    delay,
                )
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
        """The aiohttp application (also used directly by tests)."""
        app = web.Application(middlewares=[_errors_as_json], client_max_size=CLIENT_MAX_BODY_B)
        app.add_routes(Api(self).routes())
        app.add_routes(
            [
                web.get("/", self._page),
                web.get("/metrics", self._metrics),
                web.static("/static", STATIC_DIR, append_version=False),
            ]
        )
        return app

    # internals ---------------------------------------------------------------------------------

    async def _serve(self) -> None:
        http = self.gateway.settings.http
        runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            **server_limits(http.idle_timeout_s),
        )
        await runner.setup()
        try:
            site = CappedSite(runner, http.bind, http.port, cap=http.max_connections)
            await site.start()
            self.port = bound_port(runner, http.port)
            _LOGGER.info("http: serving http://%s:%d/", http.bind, self.port)
            await self._announce()
            self.started.set()
            async with asyncio.TaskGroup() as group:
                helpers = [
                    group.create_task(self._probe_lag(), name="http-lag-probe"),
                    group.create_task(self._push_health(), name="http-health"),
                    group.create_task(self._push_display(), name="http-display"),
                ]
                await self._until_settings_change()
                _LOGGER.info("http: the LAN settings changed on reload; serving them anew")
                for helper in helpers:
                    helper.cancel()
        finally:
            self.started.clear()
            if self._announcer is not None:
                announcer, self._announcer = self._announcer, None
                await announcer.close()
            self.hub.close()
            await runner.cleanup()
            self.port = None

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

    async def _until_settings_change(self) -> None:
        # Outputs get no reload callback; a cheap comparison each second stands in for one.
        key = self._settings_key()
        while True:
            await asyncio.sleep(SETTINGS_POLL_S)
            if self._settings_key() != key:
                return

    async def _announce(self) -> None:
        settings = self.gateway.settings
        if not settings.zeroconf.enabled or self.port is None:
            return
        # Imported here: python-zeroconf is ~30 modules and ~3 MB a gateway without mDNS
        # (the default config) need not load.
        from gateway.lan.announce import ZeroconfAnnouncer, txt_properties  # noqa: PLC0415

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

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def _metrics(self, request: web.Request) -> web.Response:
        text = metrics.render(self.gateway, loop_lag_s=self.loop_lag_s, sse_clients=len(self.hub))
        return web.Response(text=text, headers={"Content-Type": metrics.CONTENT_TYPE})


@web.middleware
async def _errors_as_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """ApiError and HTTP errors under /api become ``{"error": {...}}`` bodies."""
    try:
        return await handler(request)
    except ApiError as err:
        headers = (
            {"WWW-Authenticate": 'Bearer realm="meter-gateway"'}
            if err.status == HTTPStatus.UNAUTHORIZED
            else {}
        )
        return web.Response(
            body=encode(err.body()),
            status=err.status,
            content_type="application/json",
            headers=headers,
        )
    except web.HTTPException as err:
        if not request.path.startswith("/api/") or err.status < HTTPStatus.BAD_REQUEST:
            raise
        code = err.reason.lower().replace(" ", "_")
        return web.Response(
            body=encode(
                http.ErrorResponse(
                    error=http.ErrorDetail(
                        code=code, message=f"{request.method} {request.path}: {err.reason}"
                    )
                )
            ),
            status=err.status,
            content_type="application/json",
            headers={k: v for k, v in err.headers.items() if k.lower() == "allow"},
        )


if TYPE_CHECKING:

    def _is_an_output(gateway: GatewayView) -> Output:
        """mypy checks here that LanServer keeps up with the Output protocol."""
        return LanServer(gateway)
