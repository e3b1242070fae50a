"""The process: `meter-gateway run` raises the open-file limit, picks the event loop (uvloop
when installed) and serves one Gateway with the outputs the registry lists until SIGTERM or
SIGINT; the exit status says whether it stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Callable
from pathlib import Path

from gateway.app import Gateway
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.outputs import default_outputs

__all__ = ["FILE_HANDLES", "raise_file_limit", "run"]

_LOGGER = logging.getLogger(__name__)

# Open files the gateway asks for (LimitNOFILE in the systemd unit says the same).
FILE_HANDLES = 4096


def raise_file_limit(wanted: int = FILE_HANDLES) -> int:
    """Raise the soft limit on open files towards ``wanted`` (outside systemd it is often 1024
    while the hard limit is far higher); returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


def run(settings: Settings, *, config_path: Path | None = None) -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the exit status."""
    raise_file_limit()
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, measured in bench/

        runner: Callable[..., object] = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def main() -> None:
        gateway = Gateway(settings, config_path=config_path, outputs=default_outputs)
        await gateway.serve()

    try:
        runner(main())
    except GatewayError as err:
        _LOGGER.error("%s", err)
        return 1
    return 0
