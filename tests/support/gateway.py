"""A Gateway serving in the test's own event loop, the config text it starts from, polling,
and emulators running beside it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from gateway import config
from gateway.app import Gateway
from gateway.engine import Register
from gateway.errors import ConnectionLost

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.01
# Tables that turn off every network output, so a test's gateway talks only to its modules.
OFFLINE = "[mqtt]\nenabled = false\n[http]\nenabled = false\n[zeroconf]\nenabled = false\n"

G = TypeVar("G", bound=Gateway)


def offline_text(
    data_dir: Path | str, body: str, *, persist_interval_s: float = 0.2, gateway: str = ""
) -> str:
    """Config text: ``[gateway]`` on ``data_dir`` (plus ``gateway`` keys), no outputs, ``body``."""
    return (
        f'[gateway]\ndata_dir = "{data_dir}"\n{gateway}persist_interval_s = {persist_interval_s}\n'
        + OFFLINE
        + body
    )


@asynccontextmanager
async def serving(gateway: G) -> AsyncIterator[G]:
    """``gateway`` serving until the block ends, then stopped and awaited."""
    task = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), READY_TIMEOUT_S)
        yield gateway
    finally:
        gateway.request_stop()
        await asyncio.wait_for(task, STOP_TIMEOUT_S)


@asynccontextmanager
async def running(
    settings: config.Settings | str, *, config_path: Path | None = None
) -> AsyncIterator[Gateway]:
    """A Gateway without outputs for ``settings`` (or config text), serving until the block ends."""
    if isinstance(settings, str):
        settings = config.loads(settings)
    gateway = Gateway(settings, config_path=config_path, outputs=lambda _g: ())
    async with serving(gateway):
        yield gateway


@asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """``coroutine`` (an emulator, say) running as a task until the block ends, then cancelled."""
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
            await task


async def until(
    predicate: Callable[[], object], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` without blocking the event loop (the gateway runs in it)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(POLL_INTERVAL_S)
    except TimeoutError:
        raise TimeoutError(f"{what} not met within {timeout_s} s") from None


def fill_to_the_brim(gateway: Gateway) -> None:
    """Cap the database at its size, then use the room left in the event log's pages (where a
    command's event goes): SQLite's own SQLITE_FULL, as on a full SD card."""
    db = gateway.store._db  # the writer connection: the cap is a property of the connection
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")
    for size in (3000, 300, 30, 3, 1):
        while True:
            try:
                with gateway.store.transaction() as tx:
                    tx.execute(
                        "INSERT INTO events (meter, at, kind, detail, data)"
                        " VALUES ('filler', '', 'filler', ?, '{}')",
                        ("x" * size,),
                    )
            except sqlite3.OperationalError as err:
                assert "full" in str(err)
                break


def number(register: Register) -> Decimal:
    """A register's value as a number; the test fails where it holds text."""
    assert isinstance(register.value, Decimal | int | float), register
    return Decimal(register.value)
