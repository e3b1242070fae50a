"""sd_notify without a library: READY, STATUS, WATCHDOG, RELOADING, STOPPING.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op, as sd_notify(3) specifies.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["Notifier"]


class Notifier:
    """Sends datagrams to ``$NOTIFY_SOCKET``; failures are ignored like sd_notify's."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # A leading "@" names a Linux abstract socket (sd_notify(3)).
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        self.watchdog_s: float | None = int(usec) / 1e6 if usec and mine else None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with Type=notify."""
        return bool(self._address)

    def ready(self, status: str) -> None:
        """Start-up is complete."""
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """A one-line human status for ``systemctl status``."""
        self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        """The loop is alive and healthy."""
        self._send("WATCHDOG=1")

    def reloading(self) -> None:
        """A config reload started (Type=notify-reload wants the monotonic time too)."""
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        """Shutdown started."""
        self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop: a receiver that does not read (a stalled
                # manager, a full queue) costs a STATUS line, not the meters.
                sock.setblocking(False)
                sock.sendto(message.encode(), self._address)
        except OSError:
            pass  # sd_notify's contract: the daemon carries on without systemd (EAGAIN included)
