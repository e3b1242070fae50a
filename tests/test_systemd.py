"""sd_notify over a real unix datagram socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from gateway.systemd import Notifier


def test_messages_reach_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000"})
        assert notifier.enabled
        assert notifier.watchdog_s == 20.0
        notifier.ready("1/1 modules running")
        notifier.watchdog()
        notifier.stopping()
        received = [server.recv(4096).decode() for _ in range(3)]
    assert received == ["READY=1\nSTATUS=1/1 modules running", "WATCHDOG=1", "STOPPING=1"]


def test_without_systemd_every_call_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_s is None
    notifier.ready("x")  # must not raise


def test_watchdog_for_another_pid_is_ignored() -> None:
    notifier = Notifier(
        {
            "NOTIFY_SOCKET": "/nonexistent",
            "WATCHDOG_USEC": "1000",
            "WATCHDOG_PID": str(os.getpid() + 1),
        }
    )
    assert notifier.watchdog_s is None
    notifier.watchdog()  # an unreachable socket is ignored, as sd_notify does
