"""Misbehaving TCP peers on loopback: brokers and devices that go wrong in the ways real ones do.

Each is a real listening socket served by a thread; every one counts the connections it saw, so
a test can tell a patient reconnect from a spin.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable

ACCEPT_POLL_S = 0.2


class Peer:
    """A listener on 127.0.0.1 with a handler per connection; ``stop()`` ends it all."""

    def __init__(self, handler: Callable[[socket.socket, int], None]) -> None:
        self._handler = handler
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(ACCEPT_POLL_S)
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self.connected_at: list[float] = []
        self._stopping = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    def connections_since(self, since: float) -> int:
        with self._lock:
            return sum(at >= since for at in self.connected_at)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.connected_at.append(time.monotonic())
                number = self.connections
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            self._handler(conn, number)
        except OSError:
            pass
        finally:
            conn.close()


def silent(peer_stopping: Callable[[], bool]) -> Callable[[socket.socket, int], None]:
    """Accept, read whatever comes, never answer (a wedged broker, a stalled device)."""

    def handle(conn: socket.socket, _number: int) -> None:
        conn.settimeout(ACCEPT_POLL_S)
        while not peer_stopping():
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue

    return handle


class SilentPeer(Peer):
    """Accepts the TCP connection and never says a word."""

    def __init__(self) -> None:
        super().__init__(silent(lambda: self.stopping))


class ResettingPeer(Peer):
    """Accepts and at once resets the connection (RST, not FIN)."""

    def __init__(self) -> None:
        super().__init__(self._reset)

    @staticmethod
    def _reset(conn: socket.socket, _number: int) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


class GarbagePeer(Peer):
    """Sends random bytes forever, paced so a loopback test does not flood the machine."""

    def __init__(self, seed: int = 0, bytes_per_s: int = 20_000) -> None:
        self._rng = random.Random(seed)
        self._chunk = max(1, bytes_per_s // 20)
        super().__init__(self._spew)

    def _spew(self, conn: socket.socket, _number: int) -> None:
        while not self.stopping:
            conn.sendall(self._rng.randbytes(self._chunk))
            time.sleep(0.05)


class CuttingProxy(Peer):
    """Forwards to ``upstream``; the first ``cuts`` connections are cut after a few hundred bytes
    from the client (past its CONNECT: in the middle of its publishes), later ones pass through."""

    def __init__(self, upstream: int, cuts: int, seed: int = 0) -> None:
        self._upstream = upstream
        self._cuts = cuts
        self._rng = random.Random(seed)
        super().__init__(self._forward)

    def _forward(self, conn: socket.socket, number: int) -> None:
        budget = self._rng.randint(200, 3000) if number <= self._cuts else None
        with socket.create_connection(("127.0.0.1", self._upstream)) as up:
            back = threading.Thread(target=_pump, args=(up, conn, None), daemon=True)
            back.start()
            _pump(conn, up, budget)
            for side in (conn, up):
                side.shutdown(socket.SHUT_RDWR)
            back.join(5)


def _pump(source: socket.socket, sink: socket.socket, budget: int | None) -> None:
    """Copy bytes until EOF, or until ``budget`` bytes went through (then cut mid-stream)."""
    sent = 0
    try:
        while True:
            data = source.recv(4096)
            if not data:
                return
            if budget is not None and sent + len(data) >= budget:
                sink.sendall(data[: budget - sent])
                return
            sink.sendall(data)
            sent += len(data)
    except OSError:
        return
