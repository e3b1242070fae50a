"""The codecs' own error tree: what was wrong with the bytes, as a stable code and an offset.

CodecError
└── FrameError             bytes that are not a valid frame; ``code`` + ``offset``
    ├── ChecksumError      code "bad_crc"
    ├── IncompleteFrame    code "truncated" (wait for more bytes)
    ├── DecryptionError    code "wrong_key" / "bad_tag" / "no_key" ...
    └── UnknownFormat      code "unknown_compact_format" / "unsupported" ...

The codecs know nothing of the gateway: an adapter that lets one of these out of its ``run()``
is restarted by the supervisor like any module failure, and ``meter-gateway decode`` prints
``code``, the message and ``offset``.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "CodecError",
    "DecryptionError",
    "FrameError",
    "IncompleteFrame",
    "UnknownFormat",
]


class CodecError(Exception):
    """Root of every error a codec raises on purpose."""


class FrameError(CodecError):
    """Bytes that do not form a valid frame; ``code`` is the stable machine-readable reason."""

    code = "bad_frame"

    def __init__(self, message: str, *, offset: int | None = None, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        self.offset = offset
        super().__init__(f"{message} (at byte {offset})" if offset is not None else message)


class ChecksumError(FrameError):
    """A checksum or CRC does not match."""

    code = "bad_crc"


class IncompleteFrame(FrameError):
    """The frame is shorter than its header says; more bytes may complete it."""

    code = "truncated"


class DecryptionError(FrameError):
    """The payload could not be decrypted or authenticated."""

    code = "wrong_key"


class UnknownFormat(FrameError):
    """The frame is well formed but its layout is not known (yet)."""

    code = "unsupported"
