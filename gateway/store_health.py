"""Whether the store can be written: the problem in words, since when, and the log lines that
say so when it starts, as a reminder meanwhile, and when it ends. The supervisor keeps live
values and waiting events in memory meanwhile; this only keeps count of the trouble."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

__all__ = ["STORE_REMINDER_S", "StoreHealth", "describe_store_error"]

_LOGGER = logging.getLogger(__name__)

# A store fault is logged when it starts, when it ends, and as a reminder this often meanwhile.
STORE_REMINDER_S = 600.0


class StoreHealth:
    """The store's writability as the supervisor last saw it."""

    def __init__(self, path: Path, monotonic: Callable[[], float]) -> None:
        self.path = path
        self._monotonic = monotonic
        self.problem: str | None = None  # why the store cannot be written, for status
        self._since = 0.0
        # -inf, not 0: the monotonic clock counts from boot, and a Pi whose card is full at
        # boot (uptime under STORE_REMINDER_S) must say so at once, not ten minutes later.
        self._logged = float("-inf")

    def failed(self, err: BaseException, *, events_waiting: int, events_given_up: int) -> bool:
        """A write failed; True when the problem is new or different (the status line changes)."""
        problem = describe_store_error(err)
        now = self._monotonic()
        changed = problem != self.problem
        if changed:
            if self.problem is None:
                self._since = now
            self.problem = problem
            self._logged = float("-inf")
        if now - self._logged >= STORE_REMINDER_S:
            self._logged = now
            _LOGGER.error(
                "cannot write to %s: %s; live values go on, %d events and the latest registers"
                " wait in memory and are written when it can be written again%s",
                self.path,
                problem,
                events_waiting,
                f" ({events_given_up} oldest events given up)" if events_given_up else "",
            )
        return changed

    def written(self) -> bool:
        """Everything that waited is written; True when that ends a problem."""
        if self.problem is None:
            return False
        _LOGGER.warning(
            "store %s writable again after %.0f s: everything that waited is written",
            self.path,
            self._monotonic() - self._since,
        )
        self.problem = None
        return True


def describe_store_error(err: BaseException) -> str:
    """What a person should know about a failed write, in words (SQLite's own as detail)."""
    text = str(err)
    lowered = text.lower()
    if "disk is full" in lowered or "no space" in lowered:
        return f"the data disk is full ({text})"
    if "readonly" in lowered or "read-only" in lowered:
        return f"the data directory is read-only ({text})"
    if "deleted" in lowered or "unable to open" in lowered or "no such file" in lowered:
        return f"the data directory or database file is gone ({text})"
    return text or type(err).__name__
