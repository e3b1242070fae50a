"""The HAN push receiver: DLMS Data-Notifications pushed by the meter, read from a Link.

The meter talks and never listens (IEC 62056-7-5 push over the HAN interface): frames are cut
from the byte stream by their HDLC length (or wired M-Bus length), deciphered with the
GUEK/GAK keys when ciphered, checked for replays, and turned into Samples.
"""

from __future__ import annotations

import logging
from datetime import tzinfo
from typing import Protocol

from gateway.adapter import ModuleContext
from gateway.transport import Link
from modules.codecs.dlms.decode import DlmsDecoder
from modules.codecs.dlms.stream import HanSplitter
from modules.codecs.errors import FrameError
from modules.dlms.secure import SecureFrames

__all__ = ["PUSH_SILENCE_S", "Splitter", "pump", "receive_pushes"]

_LOGGER = logging.getLogger(__name__)

# NVE list 1 comes every 2.5 s and list 2 every 10 s; list 3 hourly lists come with list 2.
# A minute without a single frame means the cable or the meter's HAN port is gone.
PUSH_SILENCE_S = 60.0


class Splitter(Protocol):
    """Cuts a byte stream into frames (sans-IO)."""

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Whole frames, or the errors of frames that failed their checks."""
        ...


async def pump(link: Link, splitter: Splitter, frames: SecureFrames, *, silence_s: float) -> None:
    """Read until the link fails or stays silent for ``silence_s``; never returns normally."""
    try:
        while True:
            for frame in splitter.feed(await link.read_within(silence_s)):
                frames.handle(frame)
    finally:
        frames.save()


async def receive_pushes(  # noqa: PLR0913 - keyword-only options
    link: Link,
    ctx: ModuleContext,
    *,
    meter: str,
    zone: tzinfo,
    key: bytes | None = None,
    auth_key: bytes | None = None,
    replay_protection: bool = True,
    kamstrup_energy_wh: bool | None = None,
    silence_s: float = PUSH_SILENCE_S,
) -> None:
    """Receive HAN pushes from ``link`` into ``meter`` until the link fails."""
    frames = SecureFrames(
        ctx,
        DlmsDecoder(kamstrup_energy_wh=kamstrup_energy_wh),
        meter=meter,
        zone=zone,
        key=key,
        auth_key=auth_key,
        replay_protection=replay_protection,
    )
    _LOGGER.info("%s: listening for DLMS pushes on %s", ctx.name, link.url)
    await pump(link, HanSplitter(), frames, silence_s=silence_s)
