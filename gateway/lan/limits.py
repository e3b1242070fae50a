"""What one LAN client may cost the gateway: a bounded number of connections, small requests,
and a deadline for every idle or half-sent one, so a neighbour's 1,000 idle sockets can never
take the file handles the meters and the MQTT bridge need.

aiohttp's keep-alive timer also runs from the moment a connection opens and closes any
connection whose handler waits for a request, so one number bounds idle clients, slow header
senders (slowloris) and idle keep-alive connections alike.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.lan.listener import BACKLOG
from gateway.ratelog import RateLimitedLog

__all__ = [
    "CLIENT_MAX_BODY_B",
    "MAX_FIELD_B",
    "MAX_HEADERS",
    "MAX_LINE_B",
    "CappedSite",
    "RequestErrorLog",
    "server_limits",
]

_LOGGER = logging.getLogger(__name__)

# A command body is a few hundred bytes; nothing the API takes comes close to this.
CLIENT_MAX_BODY_B = 64 * 1024
# Request line and each header: URLs with a long query still fit; a 1 MB header does not.
MAX_LINE_B = 8190
MAX_FIELD_B = 8190
MAX_HEADERS = 64


def server_limits(idle_timeout_s: float) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` (they reach every connection's handler)."""
    return {
        "logger": RequestErrorLog(),
        "keepalive_timeout": idle_timeout_s,
        "max_line_size": MAX_LINE_B,
        "max_field_size": MAX_FIELD_B,
        "max_headers": MAX_HEADERS,
    }


class RequestErrorLog(logging.Logger):
    """The logger aiohttp's connection handlers report to.

    A malformed request (bad request line, oversized header, garbage on the port) is a client's
    problem: one line, rate-limited, naming the client and the kind of error but never the bytes
    it sent (they may hold a token), and no traceback. A failure inside our own handlers stays a
    full ERROR with its traceback: that one is a bug to fix.
    """

    def __init__(self) -> None:
        super().__init__("gateway.lan.requests")
        self.parent = logging.getLogger("gateway.lan")  # propagate to the gateway's handlers
        self._malformed = RateLimitedLog(_LOGGER)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        """Fold malformed requests into one line; log anything else in full."""
        err = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(err, HttpProcessingError):
            client = args[0] if args else "?"
            status = err.code
            self._malformed.warning(
                "http: refused a malformed request from %s (%s, %s)",
                client,
                status,
                type(err).__name__,
            )
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed at once, so it holds its file handle for no time."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


class _CappedFactory:
    """aiohttp's protocol factory, keeping at most ``cap`` connections open: at the cap, the
    oldest connection that is not serving a request (idle, or still sending its headers) makes
    room for the newcomer, so a pile of idle sockets can neither exhaust file handles nor lock
    out the next real client; when every connection is busy the newcomer is refused."""

    def __init__(self, server: web.Server, cap: int) -> None:
        self._server = server
        self._cap = cap
        self._refused_log = RateLimitedLog(_LOGGER)
        self._evicted_log = RateLimitedLog(_LOGGER)
        self.refused = 0
        self.evicted = 0

    def __call__(self) -> asyncio.BaseProtocol:
        open_now = [h for h in self._server.connections if h.transport is not None]
        if len(open_now) >= self._cap:
            idle = next(
                (h for h in open_now if isinstance(h, _QuietHandler) and h.waiting_for_request),
                None,
            )
            if idle is None:
                self.refused += 1
                self._refused_log.warning(
                    "http: %d connections open and all busy (http.max_connections);"
                    " refusing new ones until some finish",
                    self._cap,
                )
                return _Refused()
            idle.force_close()
            self.evicted += 1
            self._evicted_log.warning(
                "http: %d connections open (http.max_connections); closed the oldest idle one"
                " for a newcomer",
                self._cap,
            )
        # aiohttp's Server keeps the handler arguments it was given (our limits among them);
        # it offers no other way to choose the handler class.
        return _QuietHandler(
            self._server,
            loop=asyncio.get_running_loop(),
            **self._server._kwargs,
        )


class _QuietHandler(RequestHandler):
    """aiohttp's connection handler, except that a 4xx for a malformed request says what kind
    of error it was but does not echo the bytes the client sent (they may hold its token)."""

    @property
    def waiting_for_request(self) -> bool:
        """Open and not serving a request (idle, or its request still arriving)."""
        return self.transport is not None and not self._request_in_progress

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The error response, without the client's bytes in it."""
        if status != HTTPStatus.INTERNAL_SERVER_ERROR:
            kind = type(exc).__name__ if exc is not None else "bad request"
            message = f"{status} {HTTPStatus(status).phrase}: {kind}"
        return super().handle_error(request, status, exc, message)


class CappedSite(web.BaseSite):
    """A site on sockets already listening (``gateway.lan.listener``) that hands at most
    ``cap`` connections at a time to aiohttp, over all of the sockets together."""

    def __init__(
        self, runner: web.AppRunner, sockets: Sequence[socket.socket], *, cap: int
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._sockets = list(sockets)
        self._cap = cap
        self._servers: list[asyncio.AbstractServer] = []
        self.factory: _CappedFactory | None = None

    @property
    def name(self) -> str:
        """The first address, as aiohttp's own sites name themselves."""
        host, port = self._sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/"

    async def start(self) -> None:
        """Serve; like ``SockSite.start`` with the capped factory in front of aiohttp's."""
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self.factory = _CappedFactory(server, self._cap)
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            self._servers.append(
                await loop.create_server(self.factory, sock=sock, backlog=self._backlog)
            )
        self._server = self._servers[0]  # what aiohttp's runner reads its addresses from

    async def stop(self) -> None:
        """Stop accepting on every socket (aiohttp's own stop knows only one server)."""
        for extra in self._servers[1:]:
            extra.close()
        await super().stop()
