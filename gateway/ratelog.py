"""Logs wear SD cards too: a fault that repeats is one line per interval with a count.

journald keeps the gateway's lines on the same card as its database. A healthy gateway writes a
summary an hour; a fault that repeats (a module failing every backoff step, a neighbour's bad
requests) writes its first line at once, then at most one line per interval saying how many
more were folded into it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["REPEAT_LOG_EVERY_S", "RateLimitedLog"]

# A repeating fault is logged at most this often (its first occurrence at once).
REPEAT_LOG_EVERY_S = 60.0


class RateLimitedLog:
    """One line per interval for a repeating fault, with how many were folded in."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = REPEAT_LOG_EVERY_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every_s = every_s
        self._clock = clock
        self._last = float("-inf")
        self._folded = 0

    def warning(self, message: str, *args: object) -> bool:
        """Log ``message`` now, or count it for the next line; True when it was logged."""
        return self.log(logging.WARNING, message, *args)

    def log(self, level: int, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``message`` (with the traceback being handled, if asked) now, or count it."""
        now = self._clock()
        if now - self._last < self._every_s:
            self._folded += 1
            return False
        more = f" (and {self._folded} more like it since the last line)" if self._folded else ""
        self._logger.log(level, "%s%s", message % args, more, exc_info=exc_info)
        self._last, self._folded = now, 0
        return True
