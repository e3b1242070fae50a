"""The LAN server's aiohttp half: the application (the API, the page, /metrics) and the site
that serves it on the sockets ``LanServer`` bound at start.

Imported only when the first client connects (``gateway/lan/listener.py`` says why), so nothing
that runs before a request may live here: the announcement, the live hub, the lag probe and
the outputs' hooks stay in ``gateway/lan/server.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

from gateway.contracts import http
from gateway.lan import metrics
from gateway.lan.api import Api, Serving
from gateway.lan.limits import CLIENT_MAX_BODY_B, CappedSite, server_limits
from gateway.lan.listener import Listener
from gateway.lan.live import encode
from gateway.lan.params import ApiError

__all__ = ["STATIC_DIR", "build_app", "start"]

STATIC_DIR = Path(__file__).parent / "static"
# Open event streams get up to this long to notice shutdown before their sockets are closed.
SHUTDOWN_TIMEOUT_S = 2.0

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(server: Serving) -> web.Application:
    """The aiohttp application of one LAN server (also used directly by tests)."""
    app = web.Application(middlewares=[_errors_as_json], client_max_size=CLIENT_MAX_BODY_B)
    app.add_routes(Api(server).routes())

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def metrics_text(request: web.Request) -> web.Response:
        text = metrics.render(
            server.gateway, loop_lag_s=server.loop_lag_s, sse_clients=len(server.hub)
        )
        return web.Response(text=text, headers={"Content-Type": metrics.CONTENT_TYPE})

    app.add_routes(
        [
            web.get("/", page),
            web.get("/metrics", metrics_text),
            web.static("/static", STATIC_DIR, append_version=False),
        ]
    )
    return app


async def start(server: Serving, listener: Listener) -> web.AppRunner:
    """Serve the application on the listener's sockets (the clients queued there are accepted
    first); the caller stops it with ``runner.cleanup()``."""
    settings = server.gateway.settings.http
    runner = web.AppRunner(
        build_app(server),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        **server_limits(settings.idle_timeout_s),
    )
    await runner.setup()
    try:
        await CappedSite(runner, listener.sockets, cap=settings.max_connections).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


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
