"""What the gateway notes about itself in the store, beside the meters: whether the last run
stopped in order, and the wall clock it last believed."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from datetime import datetime

from gateway.errors import StoreError
from gateway.store import Store

__all__ = [
    "CLOCK_SAVE_EVERY_S",
    "mark_running",
    "mark_stopped",
    "save_wall_clock",
    "saved_wall_clock",
]

_LOGGER = logging.getLogger(__name__)

# The wall clock is saved this often, with the next checkpoint (and at shutdown): the floor a
# clock must pass at the next start before records are stamped with it, where nothing else says
# NTP has set it.
CLOCK_SAVE_EVERY_S = 3600.0
# Saved as a note of a row among the meters' checkpoints, under a key no meter id can take (ids
# are [A-Za-z0-9_-]): the hourly save then rewrites a page the checkpoint writes anyway, not a
# page of its own (4 KB more on the card 24 times a day).
_CLOCK_NOTE = ("@gateway", "wall_clock")
# Where gateways before it kept it (module_state): still read, until the first save.
_CLOCK_STATE = ("@gateway", "wall_clock")
# "0" while running, "1" after an orderly stop: a start that finds "0" follows a kill -9 or a
# power cut, and withholds the meters' own totals until each meter is heard again.
_CLEAN_STOP = ("@gateway", "clean_stop")


def mark_running(store: Store) -> bool:
    """Note in the store that the gateway runs; True if the last run stopped in order."""
    try:
        before = store.get_state(*_CLEAN_STOP)
        store.put_state(*_CLEAN_STOP, b"0")
    except (sqlite3.Error, StoreError) as err:
        _LOGGER.warning("cannot note the start in %s: %s", store.path, err)
        return False
    return before != b"0"


def mark_stopped(store: Store) -> None:
    """Note an orderly stop; a store that cannot take it leaves the run counted as unclean,
    which only withholds the meters' own totals until each meter is heard again."""
    with contextlib.suppress(sqlite3.Error, StoreError):
        store.put_state(*_CLEAN_STOP, b"1")


def saved_wall_clock(store: Store) -> datetime | None:
    """The wall clock last saved, or None."""
    raw = store.meter_note(*_CLOCK_NOTE)
    if raw is None:
        old = store.get_state(*_CLOCK_STATE)
        raw = old.decode(errors="replace") if old else None
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def save_wall_clock(store: Store, now: datetime) -> None:
    """Save the wall clock now believed (the store's errors are the caller's)."""
    store.put_meter_note(*_CLOCK_NOTE, now.isoformat())
