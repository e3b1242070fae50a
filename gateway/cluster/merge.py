"""One telegram, many receivers: copies merged, each telegram counted once. Sans-IO.

Receivers in range of one meter each publish its telegram; decode workers turn every copy into
a ``DecodedSample`` with the same key (meter, radio address, access number, payload hash). The
engine's feed hands the first copy to a ``Merger``, which holds it ``merge_window_s`` for the
other copies, then releases it once, with the best RSSI and every receiver that heard it.
Copies arriving later (a worker's redelivery after a crash, a slow receiver's outbox after an
outage) are recognised for ``duplicate_window_s`` and only counted as coverage.

Coverage per meter (which receivers hear it, how often, how strongly) is kept for the API.
What was released inside the duplicate window is handed over to the next run (``memory`` and
``remember``), so a copy that straddles a restart of the engine's gateway still counts once.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import msgspec

from gateway.cluster.wire import DecodedSample

__all__ = ["Heard", "Merged", "Merger"]

Key = tuple[str, str, int | None, str]


class Heard(msgspec.Struct):
    """One receiver's record of one meter: copies it delivered and its best and last RSSI."""

    telegrams: int = 0
    rssi_dbm: float | None = None  # the last copy's
    best_rssi_dbm: float | None = None


class Merged(msgspec.Struct, frozen=True):
    """A telegram released once, with every receiver that heard it and its RSSI there."""

    sample: DecodedSample
    receivers: dict[str, float | None]

    @property
    def best_rssi(self) -> float | None:
        """The strongest copy's RSSI (None when no receiver measured one)."""
        return max((r for r in self.receivers.values() if r is not None), default=None)


class _Held(msgspec.Struct):
    sample: DecodedSample
    due: float
    receivers: dict[str, float | None]


class Merger(msgspec.Struct):
    """Copies in (``add``), each telegram out once (``due``); times from a monotonic clock."""

    merge_window_s: float = 2.0
    duplicate_window_s: float = 120.0
    coverage: dict[str, dict[str, Heard]] = msgspec.field(default_factory=dict)
    accepted: dict[str, int] = msgspec.field(default_factory=dict)  # telegrams released, per meter
    copies: int = 0  # copies merged into a held telegram
    late_copies: int = 0  # copies of a telegram already released
    _held: OrderedDict[Key, _Held] = msgspec.field(default_factory=OrderedDict)
    _released: OrderedDict[Key, float] = msgspec.field(default_factory=OrderedDict)

    def add(self, sample: DecodedSample, now: float) -> None:
        """One copy of a telegram, as a worker decoded it."""
        self._forget(now)
        self._note(sample)
        key = sample.key
        if key in self._released:
            self.late_copies += 1
            return
        held = self._held.get(key)
        if held is None:
            self._held[key] = _Held(sample, now + self.merge_window_s, {})
            held = self._held[key]
        else:
            self.copies += 1
        known = held.receivers.get(sample.receiver)
        if known is None or (sample.rssi is not None and sample.rssi > known):
            held.receivers[sample.receiver] = sample.rssi

    def due(self, now: float) -> list[Merged]:
        """Telegrams whose merge window has passed, in arrival order, each once."""
        out = []
        while self._held:
            key, held = next(iter(self._held.items()))
            if held.due > now:
                break
            out.append(self._release(key, now))
        return out

    def flush(self, now: float) -> list[Merged]:
        """Every held telegram now (shutting down)."""
        return [self._release(key, now) for key in list(self._held)]

    def next_due(self) -> float | None:
        """When the oldest held telegram is due, or None when nothing is held."""
        return next(iter(self._held.values())).due if self._held else None

    def memory(self, now: float, wall: float) -> bytes:
        """The telegrams released inside the duplicate window, stamped with the wall clock
        (``wall`` is ``now`` in seconds since the epoch), for the next run's ``remember``."""
        self._forget(now)
        return json.dumps(
            [[*key, wall - (now - at)] for key, at in self._released.items()]
        ).encode()

    def remember(self, data: bytes, now: float, wall: float) -> int:
        """Take over a previous run's ``memory`` (what is out of the window, or unreadable,
        is left out); returns how many telegrams it still recognises."""
        try:
            rows = json.loads(data)
            restored = [
                ((str(meter), str(address), access, str(digest)), float(at))
                for meter, address, access, digest, at in rows
                if access is None or isinstance(access, int)
            ]
        except (ValueError, TypeError):
            return 0
        for key, at in sorted(restored, key=lambda row: row[1]):
            age = wall - at
            if 0 <= age < self.duplicate_window_s and key not in self._released:
                self._released[key] = now - age
        return len(self._released)

    def _release(self, key: Key, now: float) -> Merged:
        held = self._held.pop(key)
        self._released[key] = now
        meter = held.sample.meter
        self.accepted[meter] = self.accepted.get(meter, 0) + 1
        return Merged(held.sample, held.receivers)

    def _note(self, sample: DecodedSample) -> None:
        heard = self.coverage.setdefault(sample.meter, {}).setdefault(sample.receiver, Heard())
        heard.telegrams += 1
        heard.rssi_dbm = sample.rssi
        if sample.rssi is not None and (
            heard.best_rssi_dbm is None or sample.rssi > heard.best_rssi_dbm
        ):
            heard.best_rssi_dbm = sample.rssi

    def _forget(self, now: float) -> None:
        released = self._released
        while released:
            key, at = next(iter(released.items()))
            if now - at < self.duplicate_window_s:
                break
            del released[key]
