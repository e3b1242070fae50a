"""Whether the system clock can be believed, and when it was set.

A Raspberry Pi has no real-time clock: until NTP answers, the time at boot is the kernel's build
date, 1970, or whatever fake-hwclock saved at the last shutdown. Every record the meter keeps
(profile intervals, billing, debiting stops, events) carries a time, so the gateway holds them
back until the clock is believable:

- the kernel says it is synchronised (adjtimex(2) state is not TIME_ERROR), or systemd-timesyncd
  says so (``/run/systemd/timesync/synchronized``, systemd 239+), or
- the clock has passed the plausibility floor: the newest time already in the store, and never
  earlier than this release (a clock before it is certainly unset).

Once believed, the clock stays believed; a later step of the wall clock against the monotonic
clock (NTP stepping, a person setting it) is reported so the meters can log a ``clock_adjusted``
event and flag the interval in progress, as the 382L does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["RELEASE_FLOOR", "ClockGuard", "system_clock_synced"]

# A clock reading earlier than this release is certainly unset.
RELEASE_FLOOR = datetime(2026, 1, 1, tzinfo=UTC)
# Wall time moving this much more (or less) than monotonic time between two looks is a clock
# set, not drift or a late tick (NTP slews anything under 128 ms; a busy loop is late by < 2 s).
CLOCK_STEP_S = 5.0
# While the clock is not believed, it is looked at no more often than this (samples arrive faster).
RECHECK_S = 1.0
# adjtimex(2): the return value TIME_ERROR means "clock not synchronised".
_TIME_ERROR = 5
# struct timex is 208 bytes on 64-bit Linux, less on 32-bit; zeroed, modes = 0 only reads.
_TIMEX_BYTES = 512
_TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def system_clock_synced() -> bool | None:
    """True when NTP has set the clock, False when the kernel says it has not, None when
    nothing can tell (adjtimex refused, e.g. under systemd's ProtectClock, and no timesyncd)."""
    if _TIMESYNCD_FLAG.exists():
        return True
    libc = _libc()
    if libc is None:
        return None
    try:
        state = int(libc.adjtimex(ctypes.create_string_buffer(_TIMEX_BYTES)))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (find_library may run a subprocess)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


class ClockGuard:
    """Decides when the wall clock may stamp records, and notices when it is stepped."""

    def __init__(
        self,
        floor: datetime | None = None,
        *,
        synced: Callable[[], bool | None] = system_clock_synced,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.floor = max(floor, RELEASE_FLOOR) if floor is not None else RELEASE_FLOOR
        self._synced = synced
        self._wall = wall
        self._monotonic = monotonic
        self.trusted = False
        self.why_not = ""
        self._last: tuple[datetime, float] | None = None
        self._checked_at: float | None = None

    def now(self) -> datetime:
        """The wall clock this guard judges."""
        return self._wall()

    def check(self) -> bool:
        """Look at the clock: True once it can be believed (and from then on)."""
        if self.trusted:
            return True
        mono = self._monotonic()
        if self._checked_at is not None and mono - self._checked_at < RECHECK_S:
            return False
        self._checked_at = mono
        now = self._wall()
        synced = self._synced()
        if synced or now >= self.floor:
            self.trusted = True
            self.why_not = ""
            self._last = (now, mono)
            return True
        self.why_not = (
            f"waiting for the system clock to be set (NTP): it reads {now:%Y-%m-%d %H:%M:%S}Z,"
            f" before {self.floor:%Y-%m-%d %H:%M:%S}Z"
            + (" (the newest time in the store)" if self.floor > RELEASE_FLOOR else "")
        )
        return False

    def step(self) -> tuple[datetime, datetime] | None:
        """(expected, actual) wall time when the clock was set since the last call, else None."""
        if not self.trusted:
            return None
        now, mono = self._wall(), self._monotonic()
        last, self._last = self._last, (now, mono)
        if last is None:
            return None
        expected = last[0] + timedelta(seconds=mono - last[1])
        if abs((now - expected).total_seconds()) > CLOCK_STEP_S:
            return expected, now
        return None
