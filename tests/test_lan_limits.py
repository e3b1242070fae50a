"""What a LAN client may cost: connections are capped, idle and half-sent ones time out,
bodies are bounded, malformed requests are one rate-limited line; MQTT rides out EMFILE."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.mqtt.client import transient
from tests.support.gateway import until
from tests.test_lan import TOKEN, running_gateway, settings_text

CAP = 20
IDLE_S = 5.0
SOCKETS = 60  # three times the cap: bounded, a test and not a flood


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[tuple[Any, Any, str]]:
    text = settings_text(tmp_path, sim=False).replace(
        "port = 0\n", f"port = 0\nmax_connections = {CAP}\nidle_timeout_s = {IDLE_S}\n"
    )
    async with running_gateway(text) as running:
        yield running


async def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset)."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.sock_recv(sock, 1) == b""
    except ConnectionError:
        return True


async def test_idle_connections_are_capped_and_time_out(capped: Any) -> None:
    _, server, base = capped
    loop = asyncio.get_running_loop()
    socks = []
    try:
        for _ in range(SOCKETS):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            socks.append(sock)
        opened = loop.time()
        closed = [asyncio.create_task(_closed_by_server(sock)) for sock in socks]
        # Over the cap: the oldest idle ones closed at once (long before the idle timeout).
        await until(lambda: sum(t.done() for t in closed) >= SOCKETS - CAP, 10, "evictions")
        if loop.time() - opened < IDLE_S / 2:  # (a very busy machine may be past it already)
            assert not any(t.done() for t in closed[-CAP:]), "the newest stay until timed out"
        # A real client still gets in: it takes the place of the oldest idle connection.
        async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/health") as answer:
            assert answer.status == 200
        # The rest: closed by the idle timeout, without a byte sent.
        done, _ = await asyncio.wait(closed, timeout=IDLE_S + 15)
        assert len(done) == SOCKETS and all(t.result() for t in done)
    finally:
        for sock in socks:
            sock.close()
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/health") as response:
        assert response.status == 200


async def test_a_client_that_never_finishes_its_headers_is_cut_off(capped: Any) -> None:
    _, server, _ = capped
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        await loop.sock_sendall(sock, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        started = loop.time()
        async with asyncio.timeout(IDLE_S + 15):
            while True:  # slowloris: one more header line every so often, never the end
                try:
                    await loop.sock_sendall(sock, b"X-Slow: 1\r\n")
                except ConnectionError:
                    break
                try:
                    async with asyncio.timeout(0.2):
                        if await _closed_by_server(sock):
                            break
                except TimeoutError:
                    pass
        assert loop.time() - started < IDLE_S + 15
    finally:
        sock.close()


async def test_bodies_are_bounded(capped: Any) -> None:
    _, _, base = capped
    url = f"{base}/api/v1/meters/second/commands/display_push"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=b"{" + b" " * 200_000 + b"}", headers=headers) as response,
    ):
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "request_entity_too_large"


async def test_malformed_requests_are_one_line_without_traceback_or_secret(
    capped: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, server, _ = capped
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.DEBUG)
    requests = [
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t-t0ken\x01\r\n\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 20_000 + b"\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ] * 8
    for raw in requests:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            await loop.sock_sendall(sock, raw)
            async with asyncio.timeout(10):
                answer = await loop.sock_recv(sock, 4096)
            assert answer.startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")), answer[:80]
            assert b"s3cr3t" not in answer and b"aaaa" not in answer and b"bbbb" not in answer
        finally:
            sock.close()
    lines = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(lines) <= 2  # the first, then folded into a count for a minute
    assert not [r for r in caplog.records if r.exc_info], "no traceback"
    assert not [r for r in caplog.records if "s3cr3t" in r.getMessage()]


def test_mqtt_treats_running_out_of_file_handles_as_passing() -> None:
    assert transient(OSError(errno.EMFILE, "Too many open files"))
    assert transient(OSError(errno.ENFILE, "Too many open files in system"))
    assert transient(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert not transient(FileNotFoundError(errno.ENOENT, "no such secret file"))
    assert not transient(ssl.SSLError(1, "certificate verify failed"))
