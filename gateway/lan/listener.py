"""Listening sockets bound before the HTTP server that serves them is loaded.

The LAN server binds its address when the gateway starts (so a taken port is reported at once
and the port is the gateway's from then on) but imports aiohttp only when the first client
connects: until then the kernel queues the connection in the listening socket's backlog, and
the server started late on the same socket accepts it. A gateway nobody visits never pays
aiohttp's import and the application (~13 MB of memory; ~0.1 s of start-up on a desktop-class
core, several times that on a Pi Zero 2 W).

Nothing here imports aiohttp. The sockets are made as ``loop.create_server(host, port,
reuse_address=True)`` makes them, so the addresses a ``bind`` setting reaches are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence

__all__ = ["BACKLOG", "Listener", "listen"]

# Connections the kernel holds while nobody accepts (aiohttp's own default for its sites); the
# first visitors wait here while the server loads.
BACKLOG = 128


class Listener:
    """One or more listening sockets for one ``bind``/``port`` setting (a name can resolve to
    IPv4 and IPv6 addresses, as ``localhost`` does)."""

    def __init__(self, sockets: Sequence[socket.socket]) -> None:
        self.sockets = list(sockets)
        # Every socket has the same port: the first one's, or the one the kernel chose for 0.
        self.port = int(self.sockets[0].getsockname()[1])

    async def connection_waiting(self) -> None:
        """Return once a client waits to be accepted on any of the sockets (nothing is
        accepted here: the connection stays queued for the server started after this)."""
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not waiting.done():
                waiting.set_result(None)

        descriptors = [sock.fileno() for sock in self.sockets]
        for descriptor in descriptors:
            loop.add_reader(descriptor, readable)
        try:
            await waiting
        finally:
            for descriptor in descriptors:
                loop.remove_reader(descriptor)

    def close(self) -> None:
        """Close the sockets (again harmless: a server started on them may have closed them);
        clients still queued are refused."""
        for sock in self.sockets:
            sock.close()


async def listen(host: str | None, port: int, *, backlog: int = BACKLOG) -> Listener:
    """Bind and listen on every address ``host`` resolves to (all interfaces for "" or None),
    with SO_REUSEADDR so a restart can take the port back at once; OSError names the address
    that could not be bound."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, found in dict.fromkeys(infos):
            address = found
            if sockets and port == 0:
                # One port for every address: the one the kernel chose for the first socket.
                address = (found[0], sockets[0].getsockname()[1], *found[2:])
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # As asyncio does: an IPv6 socket takes only IPv6, the IPv4 one beside it the rest.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as err:
                reason = (err.strerror or str(err)).lower()
                raise OSError(
                    err.errno, f"error while attempting to bind on address {address!r}: {reason}"
                ) from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        raise
    if not sockets:
        raise OSError(f"{host!r} resolves to no address to listen on")
    return Listener(sockets)
