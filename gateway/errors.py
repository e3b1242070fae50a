"""The one error tree of the gateway.

GatewayError
├── ConfigError            bad config: names the file and the key path; raised before any I/O
├── StoreError             the non-volatile store cannot be opened or written
├── CommandError           a command was refused; ``code`` says why, nothing changed
└── AdapterError           a module failed; the supervisor restarts it with backoff
    ├── TransportError     the link to the device
    │   ├── CannotConnect
    │   └── ConnectionLost
    └── FatalAdapterError  wrong device, bad credentials, unsupported firmware: not retried

Bytes that do not decode raise the codecs' own tree (``modules.codecs.errors``: CodecError,
FrameError and its kinds); the supervisor counts one escaping a module as that module's failure.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "CannotConnect",
    "CommandError",
    "ConfigError",
    "ConnectionLost",
    "FatalAdapterError",
    "GatewayError",
    "StoreError",
    "TransportError",
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


class FatalAdapterError(AdapterError):
    """Retrying will not help: wrong device, bad credentials, unsupported firmware."""
