"""Fan-out of live data to server-sent event streams.

Each broadcast is encoded once; each subscriber holds a bounded queue of encoded frames. A
subscriber that falls that far behind is dropped: its browser reconnects (EventSource does that by
itself) and starts again from a fresh snapshot instead of a growing backlog.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import TypeAlias

import msgspec

from gateway.contracts import encode

__all__ = ["LiveHub", "Subscriber", "encode", "sse_frame"]

# About a minute of a 1 Hz meter with events; more means the client is not reading.
MAX_PENDING_FRAMES = 256


# A message of the stream: a Struct of gateway.contracts.http (``health``: one per module).
Message: TypeAlias = msgspec.Struct | Mapping[str, msgspec.Struct]


def sse_frame(event: str, data: Message) -> bytes:
    """One ``text/event-stream`` message (JSON never contains a raw newline)."""
    return b"event: " + event.encode() + b"\ndata: " + encode(data) + b"\n\n"


class Subscriber:
    """One open stream: pending frames and a wake-up for its writer."""

    __slots__ = ("closed", "meter", "pending", "wakeup")

    def __init__(self, meter: str | None) -> None:
        self.meter = meter
        self.pending: deque[bytes] = deque()
        self.wakeup = asyncio.Event()
        self.closed = False

    def offer(self, meter: str | None, frame: bytes) -> None:
        """Queue a frame unless it is for another meter; overflow closes the stream."""
        if self.closed or (meter is not None and self.meter not in (None, meter)):
            return
        if len(self.pending) >= MAX_PENDING_FRAMES:
            self.closed = True
            self.pending.clear()
        else:
            self.pending.append(frame)
        self.wakeup.set()

    async def next(self, timeout_s: float) -> bytes | None:
        """The next frame; b"" after ``timeout_s`` of silence; None once closed."""
        if not self.pending and not self.closed:
            self.wakeup.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self.wakeup.wait()
            except TimeoutError:
                return b""
        if self.closed:
            return None
        return self.pending.popleft() if self.pending else b""


class LiveHub:
    """The set of open streams."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, meter: str | None = None) -> Subscriber:
        """A new stream, optionally for one meter only."""
        subscriber = Subscriber(meter)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a stream (idempotent)."""
        self._subscribers.discard(subscriber)

    def wants(self, meter: str) -> bool:
        """Some open stream takes ``meter``'s messages: worth building them."""
        # Asked for every sample: with no stream open, no generator is made to say so.
        subscribers = self._subscribers
        return bool(subscribers) and any(s.meter is None or s.meter == meter for s in subscribers)

    def publish(self, event: str, data: Message, *, meter: str | None = None) -> None:
        """Send one message to every matching stream."""
        if not self._subscribers:
            return
        frame = sse_frame(event, data)
        for subscriber in self._subscribers:
            subscriber.offer(meter, frame)

    def close(self) -> None:
        """End every stream (shutdown)."""
        for subscriber in self._subscribers:
            subscriber.closed = True
            subscriber.wakeup.set()
        self._subscribers.clear()
