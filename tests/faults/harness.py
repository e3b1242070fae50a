"""What the fault tests share: cycle counts, a real gateway process, sd_notify, CPU, figures.

`make test` runs each fault a few times; `make soak` sets ``FAULT_CYCLES`` (100 by default) and
runs the same tests longer. Figures are printed as ``FIGURE name: value`` lines (``make soak``
shows them) so the README's numbers can be reproduced by one command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.store import registers_in
from tests.support.on_disk import on_disk
from tests.support.processes import GATEWAY, stop

# Generous: a busy 2-core machine can take seconds to start Python and import aiohttp.
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
TOTALS = ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")


def cycles(quick: int, soak: int = 100) -> int:
    """``quick`` under `make test`; ``soak`` (or FAULT_CYCLES) under `make soak`."""
    wanted = os.environ.get("FAULT_CYCLES")
    if not wanted:
        return quick
    return max(quick, int(wanted) * soak // 100)


def bounded(quick_s: float) -> pytest.MarkDecorator:
    """pytest-timeout for a fault test: ``quick_s`` under `make test`, none under `make soak`
    (whose cycle counts bound it instead)."""
    return pytest.mark.timeout(0 if os.environ.get("FAULT_CYCLES") else quick_s)


def figure(name: str, value: object) -> None:
    """One measured figure, printed for `make soak` (pytest -s) and kept in the test's output."""
    print(f"FIGURE {name}: {value}")


class NotifySocket:
    """The sd_notify end systemd would hold: the gateway's READY/STATUS datagrams land here."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self.messages: list[str] = []
        self._arrived = threading.Condition()
        self._closed = threading.Event()
        # Read all the time, as systemd does: a full queue would only cost the gateway lines.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._closed.set()
        self._reader.join(5)
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                message = self._sock.recv(4096).decode()
            except TimeoutError:
                continue
            with self._arrived:
                self.messages.append(message)
                self._arrived.notify_all()

    def wait_for(self, prefix: str, timeout_s: float, *, after: int = 0) -> str:
        """The first message (from index ``after``) with a line that starts with ``prefix``."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                for message in self.messages[after:]:
                    if any(line.startswith(prefix) for line in message.splitlines()):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {prefix!r} from the gateway within {timeout_s} s")
                self._arrived.wait(left)

    def statuses(self) -> list[str]:
        """Every STATUS= line received so far."""
        with self._arrived:
            messages = list(self.messages)
        return [
            line.removeprefix("STATUS=")
            for message in messages
            for line in message.splitlines()
            if line.startswith("STATUS=")
        ]


@dataclass
class Started:
    """A gateway process and how long it took to say READY=1."""

    process: subprocess.Popen[bytes]
    ready_s: float
    notify: NotifySocket


@contextmanager
def gateway_process(
    config: Path, log: Path, *, env: dict[str, str] | None = None, wait_ready: bool = True
) -> Iterator[Started]:
    """`meter-gateway run` with a notify socket; stopped (SIGTERM, then SIGKILL) afterwards."""
    notify = NotifySocket(config.parent / f"notify-{time.monotonic_ns()}.sock")
    environment = {**os.environ, "NOTIFY_SOCKET": str(notify.path), **(env or {})}
    with log.open("ab") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            [str(GATEWAY), "--log-level", "debug", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=environment,
        )
    try:
        ready_s = -1.0
        if wait_ready:
            notify.wait_for("READY=1", READY_TIMEOUT_S)
            ready_s = time.monotonic() - started
        yield Started(process, ready_s, notify)
    finally:
        stop(process, STOP_TIMEOUT_S)
        notify.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc, like `ps`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def cpu_share(pid: int, window_s: float) -> float:
    """The share of one core ``pid`` used over the next ``window_s`` seconds (0.0 .. 1.0+)."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(window_s)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def stored_totals(db_path: Path, meter: str = "main") -> dict[str, Decimal]:
    """The lifetime registers on disk, after SQLite's own integrity check passed."""
    with on_disk(db_path) as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        assert check == "ok", f"integrity_check: {check}"
        registers = registers_in(db, meter)
    return {code: Decimal(registers[code].value) for code in TOTALS if code in registers}


def wait_for_log(log: Path, text: str, timeout_s: float, *, after: int = 0) -> str:
    """Block until ``text`` appears in the log past byte ``after``; returns the new log text."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tail = log.read_bytes()[after:].decode(errors="replace")
        if text in tail:
            return tail
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} not in {log} within {timeout_s} s")
