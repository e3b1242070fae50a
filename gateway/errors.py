"""The one error tree of the gateway.

GatewayError
├── ConfigError            bad config: names the file and the key path; raised before any I/O
├── StoreError             the non-volatile store cannot be opened or written
├── CommandError           a command was refused; ``code`` says why, nothing changed
└── AdapterError           a module failed; the supervisor restarts it with backoff
    ├── TransportError     the link to the device
    │   ├── CannotConnect
    │   └── ConnectionLost
    ├── FrameError         bytes that are not a valid frame; ``code`` + ``offset``
    │   ├── ChecksumError      code "bad_crc"
    │   ├── IncompleteFrame    code "truncated" (wait for more bytes)
    │   ├── DecryptionError    code "wrong_key" / "bad_tag" / "no_key" ...
    │   └── UnknownFormat      code "unknown_compact_format" / "unsupported" ...
    └── FatalAdapterError  wrong device, bad credentials, unsupported firmware: not retried
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "CannotConnect",
    "ChecksumError",
    "CommandError",
    "ConfigError",
    "ConnectionLost",
    "DecryptionError",
    "FatalAdapterError",
    "FrameError",
    "GatewayError",
    "IncompleteFrame",
    "StoreError",
    "TransportError",
    "UnknownFormat",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid; the message names the file and the key path."""

    def __init__(self, message: str, *, path: str | None = None, file: str | None = None) -> None:
        self.path = path
        self.file = file
        where = ", ".join(part for part in (file, f"at {path}" if path else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class StoreError(GatewayError):
    """The non-volatile store cannot be opened, migrated or written."""


class CommandError(GatewayError):
    """A command was refused; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class AdapterError(GatewayError):
    """A module failed in a way the supervisor handles by restarting it."""


class TransportError(AdapterError):
    """The link to the device failed."""


class CannotConnect(TransportError):
    """The device or peer could not be opened."""


class ConnectionLost(TransportError):
    """An open link went away."""


class FrameError(AdapterError):
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


class FatalAdapterError(AdapterError):
    """Retrying will not help: wrong device, bad credentials, unsupported firmware."""
