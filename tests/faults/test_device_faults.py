"""Device faults: a serial adapter unplugged and replugged (the tty gone, then back), a TCP peer
that resets, stalls or sends garbage forever.

The module recovers each time without a restart of the gateway (same process id), and while it
waits the process stays near idle: CPU is measured from /proc, not guessed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
import tty
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modules.p1.emulator import P1Emitter
from modules.p1.meter_model import EmulatedMeter
from tests.faults.harness import bounded, cpu_share, cycles, figure, gateway_process
from tests.faults.peers import GarbagePeer, Peer, ResettingPeer, SilentPeer, _pump
from tests.support.processes import GATEWAY, free_port, wait_for_port

pytestmark = [pytest.mark.slow, bounded(400)]

# A module waiting for its device sleeps in backoff or in a read: far below this share of a core.
IDLE_CPU_SHARE = 0.10
# Backoff is capped at a minute (gateway.backoff.MAX_DELAY_S); a replug may wait that long.
RECOVERY_S = 90.0

CONFIG = """
[gateway]
data_dir = "{data}"
persist_interval_s = 0.5
[mqtt]
enabled = false
[http]
port = {http}
[zeroconf]
enabled = false
[[meters]]
id = "main"
{module}
"""


def health(port: int, module: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10) as reply:
        document = json.load(reply)
    found: dict[str, Any] = next(m for m in document["modules"] if m["name"] == module)
    return found


def wait_health(
    port: int, module: str, predicate: Callable[[dict[str, Any]], bool], timeout_s: float, what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        current = health(port, module)
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout_s} s; health: {current}")
        time.sleep(0.2)


def grew(earlier: dict[str, Any], *counters: str, by: int = 1) -> Callable[[dict[str, Any]], bool]:
    """A health predicate: one of ``counters`` is at least ``by`` past its ``earlier`` value."""
    return lambda now: any(now[name] >= earlier[name] + by for name in counters)


class P1Cable:
    """A pty with a symlink at ``path``, fed DSMR telegrams by a thread until unplugged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meter = EmulatedMeter()
        self.emitter = P1Emitter(self.meter)
        self.now = datetime.now(UTC) - timedelta(hours=1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: tuple[int, int] | None = None

    def plug(self) -> None:
        controller, device = os.openpty()
        tty.setraw(device)
        self._fds = (controller, device)
        self.path.unlink(missing_ok=True)
        self.path.symlink_to(os.ttyname(device))
        self._stop.clear()
        self._thread = threading.Thread(target=self._feed, args=(controller,), daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        """The adapter pulled out: the tty closes and its device node disappears."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None
        self.path.unlink(missing_ok=True)

    def _feed(self, controller: int) -> None:
        while not self._stop.is_set():
            self.meter.advance(60.0)
            self.now += timedelta(seconds=60)
            try:
                os.write(controller, self.emitter.frame(self.now))
            except OSError:
                return
            self._stop.wait(0.5)


def test_a_serial_adapter_unplugged_and_replugged_recovers_each_time(tmp_path: Path) -> None:
    link = tmp_path / "ttyP1"
    http = free_port()
    module = f'[[modules]]\ntype = "p1"\nname = "p1"\nmeter = "main"\nport = "{link}"\n'
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.format(data=tmp_path, http=http, module=module))
    cable = P1Cable(link)
    rounds = cycles(quick=2, soak=10)
    shares: list[float] = []
    cable.plug()
    try:
        with gateway_process(config, tmp_path / "gateway.log") as started:
            wait_for_port(http, 30)
            seen = wait_health(http, "p1", lambda h: h["frames_ok"] >= 2, 30, "first telegrams")
            for _ in range(rounds):
                cable.unplug()
                wait_health(http, "p1", grew(seen, "restarts"), 30, "the unplug noticed")
                shares.append(cpu_share(started.process.pid, 3.0))
                down = health(http, "p1")
                assert down["last_error"], "health says why the module is not reading"
                assert not down["communicating"]
                cable.plug()
                seen = wait_health(http, "p1", grew(down, "frames_ok", by=2), RECOVERY_S, "replug")
                assert seen["communicating"]
            assert started.process.poll() is None, "recovered without a restart of the gateway"
    finally:
        cable.unplug()
    assert max(shares) < IDLE_CPU_SHARE, shares
    figure("serial unplug/replug cycles recovered", rounds)
    figure("CPU while the serial adapter is unplugged, max share of a core", f"{max(shares):.3f}")


class SwitchPeer(Peer):
    """A TCP peer whose behaviour the test switches: the real meter, or a fault."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.fault: Peer | None = None
        super().__init__(self._serve_one)

    def _serve_one(self, conn: socket.socket, _number: int) -> None:
        fault = self.fault
        target = fault.port if fault is not None else self.upstream
        with socket.create_connection(("127.0.0.1", target)) as up:
            back = threading.Thread(target=_pump, args=(up, conn, None), daemon=True)
            back.start()
            _pump(conn, up, None)
            back.join(2)

    def drop_all(self) -> None:
        """Cut every open connection (the peer restarts, the line breaks)."""
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("fault", ["resets", "stalls", "garbage"])
def test_a_tcp_peer_that_misbehaves_forever_is_recovered_from_when_it_behaves(
    tmp_path: Path, fault: str
) -> None:
    meter_port = free_port()
    emulator = subprocess.Popen(
        [str(GATEWAY), "simulate", "kmp", "--tcp", str(meter_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bad: Peer = {"resets": ResettingPeer, "stalls": SilentPeer, "garbage": GarbagePeer}[fault]()
    switch: SwitchPeer | None = None
    shares: list[float] = []
    try:
        wait_for_port(meter_port, 30)
        switch = SwitchPeer(meter_port)
        http = free_port()
        module = (
            '[[modules]]\ntype = "tcpip"\nname = "lan"\nmeter = "main"\nhost = "127.0.0.1"\n'
            f'port = {switch.port}\nprotocol = "kmp"\ninterval_s = 0.5\n'
        )
        config = tmp_path / "gateway.toml"
        config.write_text(CONFIG.format(data=tmp_path, http=http, module=module))
        with gateway_process(config, tmp_path / "gateway.log") as started:
            wait_for_port(http, 30)
            seen = wait_health(http, "lan", lambda h: h["frames_ok"] >= 2, 60, "first readouts")
            for _ in range(cycles(quick=1, soak=5)):
                switch.fault = bad
                switch.drop_all()
                seen = wait_health(
                    http,
                    "lan",
                    grew(seen, "restarts", "frames_failed"),
                    RECOVERY_S,
                    f"the peer that {fault} noticed",
                )
                shares.append(cpu_share(started.process.pid, 3.0))
                switch.fault = None
                switch.drop_all()
                seen = wait_health(
                    http, "lan", grew(seen, "frames_ok", by=2), RECOVERY_S, "recovery"
                )
            assert started.process.poll() is None, "recovered without a restart of the gateway"
    finally:
        if switch is not None:
            switch.stop()
        bad.stop()
        emulator.terminate()
        emulator.wait(10)
    assert max(shares) < IDLE_CPU_SHARE, shares
    figure(f"CPU while a TCP peer {fault}, max share of a core", f"{max(shares):.3f}")
