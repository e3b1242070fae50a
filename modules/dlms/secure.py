"""From a checked frame to a Sample, with the security rules of ciphered meters applied.

A frame that fails to decrypt or authenticate, or whose frame counter does not move forward
(a replay), or that arrives in clear although a key is configured (a downgrade) is an event,
never a reading. Each kind of trouble is reported once when it starts, not once per frame:
a wrong key would otherwise fill the event log every 2.5 seconds.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import tzinfo
from typing import Any

from gateway.adapter import ModuleContext
from gateway.model import Sample, utc_now
from modules.codecs.errors import DecryptionError, FrameError
from modules.codecs.records import Decoded, Decoder
from modules.dlms.readings import meter_time, to_readings

__all__ = ["DECRYPTION_FAILED", "REPLAY_SUSPECTED", "FrameCounters", "SecureFrames"]

_LOGGER = logging.getLogger(__name__)

DECRYPTION_FAILED = "decryption_failed"
REPLAY_SUSPECTED = "replay_suspected"
_KEY_CODES = frozenset({"wrong_key", "bad_tag", "no_key", "bad_key", "not_encrypted"})
_STATE_KEY = "frame_counters"
# Counters are written to the SD card at most this often; a crash may forget the last few,
# which lets at most that window of old frames back in, never a whole old recording.
COUNTER_SAVE_S = 300.0


class FrameCounters:
    """The highest frame (invocation) counter seen per system title, persisted as JSON."""

    def __init__(self, saved: bytes | None = None) -> None:
        self._last: dict[str, int] = {}
        if saved:
            try:
                loaded = json.loads(saved)
            except ValueError:
                loaded = {}
            if isinstance(loaded, dict):
                self._last = {str(k): int(v) for k, v in loaded.items() if isinstance(v, int)}

    def last(self, system_title: str) -> int | None:
        """The highest counter accepted from this sender."""
        return self._last.get(system_title)

    def accept(self, system_title: str, counter: int) -> bool:
        """Record a counter; False (and nothing recorded) when it does not move forward."""
        last = self._last.get(system_title)
        if last is not None and counter <= last:
            return False
        self._last[system_title] = counter
        return True

    def to_bytes(self) -> bytes:
        """The persisted form."""
        return json.dumps(self._last, sort_keys=True).encode()


class SecureFrames:
    """Decodes frames for one meter and submits their readings, or reports why not."""

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        ctx: ModuleContext,
        decoder: Decoder,
        *,
        meter: str,
        zone: tzinfo,
        key: bytes | None = None,
        auth_key: bytes | None = None,
        replay_protection: bool = True,
    ) -> None:
        self._ctx = ctx
        self._decoder = decoder
        self._meter = meter
        self._zone = zone
        self._key = key
        self._auth_key = auth_key
        self._replay_protection = replay_protection
        self._counters = FrameCounters(ctx.load_state(_STATE_KEY))
        self._dirty = False
        self._saved_at = time.monotonic()
        self._troubled: set[str] = set()

    def handle(self, frame: bytes | FrameError) -> Sample | None:
        """Decode one frame (or count a framing error); the submitted Sample, if any."""
        if isinstance(frame, FrameError):
            self._ctx.frame_failed(frame)
            _LOGGER.debug("%s: frame dropped: %s", self._ctx.name, frame)
            return None
        try:
            decoded = self._decoder.decode(frame, key=self._key, auth_key=self._auth_key)
        except FrameError as err:
            self._ctx.frame_failed(err, frame)
            if isinstance(err, DecryptionError) or err.code in _KEY_CODES:
                self._trouble(DECRYPTION_FAILED, str(err), code=err.code)
            else:
                _LOGGER.debug("%s: frame dropped: %s", self._ctx.name, err)
            return None
        return self._accept(decoded, frame)

    def save(self) -> None:
        """Persist the frame counters if they changed (call on the way out)."""
        if self._dirty:
            self._ctx.save_state(_STATE_KEY, self._counters.to_bytes())
            self._dirty = False
            self._saved_at = time.monotonic()

    def _accept(self, decoded: Decoded, frame: bytes) -> Sample | None:
        facts = decoded.frame
        title = str(facts.get("system_title", ""))
        counter = facts.get("frame_counter")
        ciphered = "security_control" in facts
        if self._key is not None and not ciphered and decoded.records:
            self._ctx.frame_failed(FrameError("frame is not encrypted", code="not_encrypted"))
            self._trouble(
                DECRYPTION_FAILED,
                "a frame arrived unencrypted although a key is configured; ignored",
                code="not_encrypted",
            )
            return None
        if ciphered:
            self._calm(DECRYPTION_FAILED)
        if isinstance(counter, int) and self._replay_protection:
            last = self._counters.last(title)
            if not self._counters.accept(title, counter):
                self._ctx.frame_failed(FrameError("frame counter did not advance", code="replay"))
                self._trouble(
                    REPLAY_SUSPECTED,
                    f"frame counter {counter} from {title or 'the meter'} is not above {last}: "
                    "an old frame was sent again",
                    system_title=title,
                    frame_counter=counter,
                    last_counter=last,
                )
                return None
            self._dirty = True
            self._calm(REPLAY_SUSPECTED)
            if time.monotonic() - self._saved_at >= COUNTER_SAVE_S:
                self.save()
        readings = to_readings(decoded.records)
        if not readings:
            if facts.get("complete", True):
                self._ctx.frame_ok(frame)
            return None
        sample = Sample(
            meter=self._meter,
            source=self._ctx.name,
            at=meter_time(decoded, self._zone) or utc_now(),
            readings=readings,
            raw=frame,
        )
        self._ctx.submit(sample)
        return sample

    def _trouble(self, kind: str, detail: str, **data: Any) -> None:
        if kind in self._troubled:
            _LOGGER.debug("%s: %s again: %s", self._ctx.name, kind, detail)
            return
        self._troubled.add(kind)
        _LOGGER.warning("%s: %s: %s", self._ctx.name, kind, detail)
        self._ctx.event(kind, detail, meter=self._meter, **data)

    def _calm(self, kind: str) -> None:
        if kind in self._troubled:
            self._troubled.discard(kind)
            _LOGGER.info("%s: %s is over", self._ctx.name, kind)
