"""The versioned JSON API under ``/api/v1``: reads are open, state changes need the bearer token."""

from __future__ import annotations

import contextlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec
from aiohttp import web

from gateway import __version__, obis
from gateway.contracts import http
from gateway.errors import CommandError, StoreError
from gateway.lan import openapi
from gateway.lan.breaker import breaker_json
from gateway.lan.live import encode, sse_frame
from gateway.lan.openapi import API_PATH
from gateway.lan.params import ApiError, bad, choice, integer, time_range, timestamp
from gateway.lan.shapes import (
    described_register,
    display_json,
    display_state,
    event_json,
    profile_row_json,
)
from gateway.lan.streaming import paged_events, series_csv, stream_csv, stream_json
from gateway.model import Command, utc_now
from gateway.store import Snapshot

if TYPE_CHECKING:
    from gateway.lan.live import LiveHub
    from gateway.view import GatewayView, MeterReadout

__all__ = ["API_PATH", "Api", "Serving"]

PROFILE_INTERVALS_S = (300, 900, 1800, 3600)
EVENTS_PAGE_MAX = 1000
BILLING_PAGE_MAX = 1000
# A stream with nothing to say sends a comment this often so proxies keep it open.
KEEPALIVE_S = 15.0
_COMMAND_STATUS = {
    "unknown_meter": 404,
    "unknown_command": 404,
    "bad_argument": 400,
    "not_permitted": 403,
    "not_stored": 503,  # the store cannot be written: nothing changed, retry later
}


class Serving(Protocol):
    """What the API reads of the LAN server that mounts it."""

    @property
    def gateway(self) -> GatewayView: ...

    @property
    def hub(self) -> LiveHub: ...

    @property
    def port(self) -> int | None: ...

    @property
    def loop_lag_s(self) -> float: ...

    def token(self) -> str | None:
        """The bearer token for state changes, or None (commands refused)."""
        ...

    def zeroconf_status(self) -> http.ZeroconfStatus:
        """Whether and as what the service is announced."""
        ...


class Api:
    """Request handlers bound to one running gateway."""

    def __init__(self, server: Serving) -> None:
        self._server = server

    @property
    def gateway(self) -> GatewayView:
        """The gateway served."""
        return self._server.gateway

    def routes(self) -> list[web.RouteDef]:
        """Every API route (``openapi.paths()`` documents the same set; a test checks)."""
        p = API_PATH
        return [
            web.get(p, self.index),
            web.get(f"{p}/openapi.json", self.openapi),
            web.get(f"{p}/info", self.info),
            web.get(f"{p}/health", self.health),
            web.get(f"{p}/stream", self.stream),
            web.get(f"{p}/events", self.events),
            web.get(f"{p}/meters", self.meters),
            web.get(f"{p}/meters/{{meter}}", self.meter),
            web.get(f"{p}/meters/{{meter}}/registers", self.registers),
            web.get(f"{p}/meters/{{meter}}/registers/{{obis}}", self.register),
            web.get(f"{p}/meters/{{meter}}/display", self.display),
            web.post(f"{p}/meters/{{meter}}/display/push", self.display_push),
            web.get(f"{p}/meters/{{meter}}/breaker", self.breaker),
            web.get(f"{p}/meters/{{meter}}/profile", self.profile),
            web.get(f"{p}/meters/{{meter}}/analysis", self.analysis),
            web.get(f"{p}/meters/{{meter}}/billing", self.billing),
            web.get(f"{p}/meters/{{meter}}/commands", self.commands),
            web.post(f"{p}/meters/{{meter}}/commands/{{command}}", self.command),
        ]

    # gateway -----------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        """Where everything is."""
        p = API_PATH
        return _json(
            http.ApiIndex(
                version=__version__,
                openapi=f"{p}/openapi.json",
                info=f"{p}/info",
                health=f"{p}/health",
                meters=f"{p}/meters",
                events=f"{p}/events",
                stream=f"{p}/stream",
                metrics="/metrics",
            )
        )

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 description of this API."""
        return _json(openapi.document(__version__))

    async def info(self, request: web.Request) -> web.Response:
        """Gateway identity and what it serves."""
        gateway = self.gateway
        settings = gateway.settings
        return _json(
            http.InfoResponse(
                name=settings.gateway.name,
                version=__version__,
                api=API_PATH,
                started_at=gateway.started_at,
                uptime_s=(utc_now() - gateway.started_at).total_seconds(),
                timezone=settings.gateway.timezone,
                meters=[meter.id for meter in settings.meters],
                commands=list(gateway.commands),
                commands_enabled=self._server.token() is not None,
                http=http.HttpStatus(bind=settings.http.bind, port=self._server.port),
                zeroconf=self._server.zeroconf_status(),
            )
        )

    async def health(self, request: web.Request) -> web.Response:
        """The store, modules with their state, last frame and errors; outputs with their status.

        ``status`` is ``error`` while the store cannot be written, ``degraded`` while a module is
        not communicating, else ``ok``."""
        gateway = self.gateway
        modules = [
            http.ModuleStatus(
                name=h.name,
                type=h.type,
                state=h.state,
                since=h.since,
                communicating=h.communicating,
                frames_ok=h.frames_ok,
                frames_failed=h.frames_failed,
                last_frame_at=h.last_frame_at,
                last_error=h.last_error,
                restarts=h.restarts,
                detail=h.detail,
            )
            for h in sorted(gateway.health.values(), key=lambda h: h.name)
        ]
        healthy = all(m.state == "running" and m.communicating for m in modules)
        # A store that cannot be written loses what the meters say next: worse than a module.
        problem = gateway.store_problem
        status: Literal["ok", "degraded", "error"] = (
            "error" if problem is not None else "ok" if healthy else "degraded"
        )
        return _json(
            http.HealthResponse(
                status=status,
                store=http.StoreStatus(
                    path=str(gateway.store.path), writable=problem is None, problem=problem
                ),
                now=utc_now(),
                uptime_s=(utc_now() - gateway.started_at).total_seconds(),
                loop_lag_s=self._server.loop_lag_s,
                modules=modules,
                outputs={output.name: output.status() for output in gateway.outputs},
            )
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: a snapshot, then ``live``, ``state``, ``event`` and ``health``."""
        meter = request.query.get("meter") or None
        if meter is not None:
            self._engine(meter)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events through unbuffered
            }
        )
        await response.prepare(request)
        subscriber = self._server.hub.subscribe(meter)
        try:
            await response.write(b"retry: 3000\n\n" + sse_frame("snapshot", self._snapshot(meter)))
            while True:
                frame = await subscriber.next(KEEPALIVE_S)
                if frame is None:
                    break
                await response.write(frame or b": keepalive\n\n")
        except (ConnectionError, RuntimeError):
            pass  # the browser went away; RuntimeError is aiohttp's "closing transport"
        finally:
            self._server.hub.unsubscribe(subscriber)
        return response

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The event log, filtered by meter, kind and time; paged by ``after_id``."""
        query = request.query
        meter = query.get("meter") or None
        kind = query.get("kind") or None
        fmt = choice(query, "format", ("json", "csv"))
        after_id = integer(query, "after_id", 0, minimum=0, maximum=2**63 - 1)
        zone = self.gateway.settings.zone
        since = timestamp(query["since"], "since", zone) if query.get("since") else None
        until = timestamp(query["until"], "until", zone) if query.get("until") else None
        if since and until and until <= since:
            raise bad("until", "must be after since")
        store = self.gateway.store
        if fmt == "csv":
            with self._snapshot_view() as view:
                rows = paged_events(
                    view, meter=meter, kind=kind, since=since, until=until, after_id=after_id
                )
                return await stream_csv(
                    request,
                    "events.csv",
                    ("id", "meter", "at", "local_time", "kind", "detail", "data"),
                    (
                        (i, e.meter, e.at, e.at.astimezone(zone), e.kind, e.detail, dict(e.data))
                        for i, e in rows
                    ),
                )
        limit = integer(query, "limit", 100, minimum=1, maximum=EVENTS_PAGE_MAX)
        page = store.events(
            meter, kind=kind, since=since, until=until, limit=limit, after_id=after_id
        )
        return _json(
            http.EventsPage(
                events=[event_json(i, e) for i, e in page],
                next_after_id=page[-1][0] if len(page) == limit else None,
            )
        )

    # meters ------------------------------------------------------------------------------------

    async def meters(self, request: web.Request) -> web.Response:
        """Every configured meter."""
        return _json(
            http.MeterList(meters=[self._meter_json(m.id) for m in self.gateway.settings.meters])
        )

    async def meter(self, request: web.Request) -> web.Response:
        """One meter with its registers."""
        meter_id = request.match_info["meter"]
        engine = self._engine(meter_id)
        summary = self._meter_json(meter_id)
        return _json(
            http.MeterDetail(
                id=summary.id,
                name=summary.name,
                manufacturer=summary.manufacturer,
                model=summary.model,
                registers=self._registers(engine.meter_id),
                updated_at=summary.updated_at,
                modules=summary.modules,
                profile_interval_s=summary.profile_interval_s,
            )
        )

    async def registers(self, request: web.Request) -> web.Response:
        """A meter's current registers by OBIS code."""
        engine = self._engine(request.match_info["meter"])
        return _json(
            http.RegistersResponse(
                meter=engine.meter_id, registers=self._registers(engine.meter_id)
            )
        )

    async def register(self, request: web.Request) -> web.Response:
        """One register."""
        engine = self._engine(request.match_info["meter"])
        code = obis.normalize(request.match_info["obis"])
        register = self.gateway.published(engine.meter_id).get(code)
        if register is None:
            raise ApiError(
                404, "unknown_register", f"meter {engine.meter_id!r} has no register {code}"
            )
        described = described_register(register)
        return _json(
            http.RegisterResponse(
                meter=engine.meter_id,
                obis=code,
                value=described.value,
                unit=described.unit,
                at=described.at,
                changed_at=described.changed_at,
                name=described.name,
                label=described.label,
            )
        )

    async def display(self, request: web.Request) -> web.Response:
        """The display lists and timing and, when the engine models the display, its state."""
        engine = self._engine(request.match_info["meter"])
        return _json(display_json(engine, utc_now()))

    async def display_push(self, request: web.Request) -> web.Response:
        """Press the modelled meter's push button (the ``display_push`` command; token needed)."""
        meter_id = request.match_info["meter"]
        self._authorize(request)
        result = await self._execute(
            Command(meter=meter_id, name="display_push", id=str(uuid.uuid4()), source="http")
        )
        return _json(http.DisplayPushResponse(meter=meter_id, state=display_state(result)))

    async def breaker(self, request: web.Request) -> web.Response:
        """Breaker state, causes, actuator, control modes, credit; never a safety function."""
        engine = self._engine(request.match_info["meter"])
        return _json(breaker_json(engine, self.gateway.store, utc_now()))

    async def profile(self, request: web.Request) -> web.StreamResponse:
        """Load profile intervals starting in a range (default: today) at the meter's configured
        interval (or ``interval_s``), as JSON or CSV."""
        engine = self._engine(request.match_info["meter"])
        query = request.query
        interval = integer(
            query, "interval_s", self._profile_interval(engine.meter_id), minimum=1, maximum=86400
        )
        if interval not in PROFILE_INTERVALS_S:
            raise bad("interval_s", f"must be one of {', '.join(map(str, PROFILE_INTERVALS_S))}")
        fmt = choice(query, "format", ("json", "csv"))
        zone = self.gateway.settings.zone
        span = time_range(query, zone, now=utc_now(), default_span=None)
        head = http.ProfileHead(
            meter=engine.meter_id, interval_s=interval, since=span.since, until=span.until
        )
        with self._snapshot_view() as view:
            rows = view.profile(engine.meter_id, interval, span.since, span.until)
            if fmt == "csv":
                return await series_csv(
                    request, f"{engine.meter_id}-profile-{interval}s.csv", rows, zone, flags=True
                )
            return await stream_json(request, head, "rows", rows, profile_row_json)

    async def analysis(self, request: web.Request) -> web.StreamResponse:
        """Analysis logger rows starting in a range (default: the last 24 h), as JSON or CSV."""
        engine = self._engine(request.match_info["meter"])
        query = request.query
        fmt = choice(query, "format", ("json", "csv"))
        zone = self.gateway.settings.zone
        span = time_range(query, zone, now=utc_now(), default_span=timedelta(days=1))
        head = http.AnalysisHead(meter=engine.meter_id, since=span.since, until=span.until)
        with self._snapshot_view() as view:
            rows = view.analysis(engine.meter_id, span.since, span.until)
            if fmt == "csv":
                return await series_csv(
                    request, f"{engine.meter_id}-analysis.csv", rows, zone, flags=False
                )
            return await stream_json(
                request,
                head,
                "rows",
                rows,
                lambda row: http.AnalysisRow(start=row.start, end=row.end, values=row.values),
            )

    async def billing(self, request: web.Request) -> web.StreamResponse:
        """Debiting periods frozen at each debiting stop, newest first; page with ``before``."""
        engine = self._engine(request.match_info["meter"])
        query = request.query
        limit = integer(query, "limit", 24, minimum=1, maximum=BILLING_PAGE_MAX)
        before = integer(query, "before", 2**62, minimum=1, maximum=2**62)
        fmt = choice(query, "format", ("json", "csv"))
        zone = self.gateway.settings.zone
        with self._snapshot_view() as view:
            records = view.billing(engine.meter_id, limit=limit, before=before)
        if fmt == "csv":
            columns = list(dict.fromkeys(key for record in records for key in record.values))
            return await stream_csv(
                request,
                f"{engine.meter_id}-billing.csv",
                ["number", "at", "local_time", "estimated", *columns],
                (
                    [r.number, r.at, r.at.astimezone(zone), r.estimated]
                    + [r.values.get(c) for c in columns]
                    for r in records
                ),
            )
        return _json(
            http.BillingResponse(
                meter=engine.meter_id,
                periods=[
                    http.BillingPeriod(
                        number=r.number, at=r.at, estimated=r.estimated, values=r.values
                    )
                    for r in records
                ],
                next_before=records[-1].number if len(records) == limit else None,
            )
        )

    async def commands(self, request: web.Request) -> web.Response:
        """The commands the gateway can execute now."""
        engine = self._engine(request.match_info["meter"])
        return _json(
            http.CommandListResponse(
                meter=engine.meter_id,
                commands=list(self.gateway.commands),
                enabled=self._server.token() is not None,
            )
        )

    async def command(self, request: web.Request) -> web.Response:
        """Execute a command; ``{"args": {...}, "id": "..."}`` in the body, both optional."""
        meter_id = request.match_info["meter"]
        self._authorize(request)
        body = await _json_body(request)
        unknown = set(body) - {"args", "id"}
        if unknown:
            raise bad(sorted(unknown)[0], "unknown key in the body; use {'args': {...}, 'id': ...}")
        args = body.get("args", {})
        if not isinstance(args, dict):
            raise bad("args", "must be a JSON object")
        command_id = body.get("id") or str(uuid.uuid4())
        if not isinstance(command_id, str) or len(command_id) > 128:  # noqa: PLR2004 - an id's length limit
            raise bad("id", "must be a string of at most 128 characters")
        command = Command(
            meter=meter_id,
            name=request.match_info["command"],
            id=command_id,
            args=args,
            source="http",
        )
        result = await self._execute(command)
        return _json(
            http.CommandResponse(
                ok=True, id=command_id, meter=meter_id, command=command.name, result=result
            )
        )

    # helpers -----------------------------------------------------------------------------------

    async def _execute(self, command: Command) -> dict[str, Any]:
        try:
            result = await self.gateway.execute(command)
        except CommandError as err:
            status = _COMMAND_STATUS.get(err.code, 409)
            raise ApiError(status, err.code, str(err)) from None
        return dict(result)

    @contextlib.contextmanager
    def _snapshot_view(self) -> Iterator[Snapshot]:
        """A consistent view of the store for one long read, or a 503 saying why not."""
        try:
            view = Snapshot(self.gateway.store)
        except StoreError as err:
            raise ApiError(503, "store_unavailable", str(err)) from None
        try:
            yield view
        finally:
            view.close()

    def _engine(self, meter_id: str) -> MeterReadout:
        engine = self.gateway.engines.get(meter_id)
        if engine is None:
            known = ", ".join(sorted(self.gateway.engines)) or "none"
            raise ApiError(
                404, "unknown_meter", f"no meter {meter_id!r} (known: {known})", parameter="meter"
            )
        return engine

    def _profile_interval(self, meter_id: str) -> int:
        """The interval the meter's load profile is configured to record."""
        return self.gateway.settings.meter(meter_id).profile.interval_min * 60

    def _meter_json(self, meter_id: str) -> http.MeterSummary:
        settings = self.gateway.settings
        config = settings.meter(meter_id)
        registers = self.gateway.published(meter_id)
        return http.MeterSummary(
            id=config.id,
            name=config.name,
            manufacturer=config.manufacturer,
            model=config.model,
            registers=len(registers),
            updated_at=max((r.at for r in registers.values()), default=None),
            modules=[m.name for m in settings.modules if m.meter == meter_id],
            profile_interval_s=self._profile_interval(meter_id),
        )

    def _registers(self, meter_id: str) -> dict[str, http.DescribedRegister]:
        """A meter's published registers by OBIS code, described."""
        published = self.gateway.published(meter_id)
        return {code: described_register(reg) for code, reg in sorted(published.items())}

    def _snapshot(self, meter: str | None) -> http.Snapshot:
        engines = self.gateway.engines
        chosen = [meter] if meter else sorted(engines)
        now = utc_now()
        return http.Snapshot(
            gateway=self.gateway.settings.gateway.name,
            meters={meter_id: self._registers(meter_id) for meter_id in chosen},
            display={
                meter_id: display_state(engines[meter_id].display_state(now)) for meter_id in chosen
            },
        )

    def _authorize(self, request: web.Request) -> None:
        token = self._server.token()
        if token is None:
            raise ApiError(
                403,
                "commands_disabled",
                "commands are disabled because no API token is configured: put a long random"
                " string in a file, set http.token_file to it and send"
                " 'Authorization: Bearer <token>'",
            )
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # compare_digest on bytes: constant time whatever the content, and no TypeError on
        # non-ASCII input from a client.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise ApiError(
                401, "unauthorized", "send the API token as 'Authorization: Bearer <token>'"
            )


def _json(data: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        # The stdlib reads NaN and 1e999 as numbers, so the argument's own check names the
        # field (args.power_w) rather than refusing the whole body.
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "bad_body", f"the body is not JSON: {err}") from None
    except RecursionError:
        raise ApiError(400, "bad_body", "the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_body", "the body must be a JSON object")
    return body
