"""Streamed JSON and CSV responses: rows are written in batches as they are read from the store.

A year of 5-minute load profile is 105 120 rows; only one batch of them is ever in memory, and
``write`` waits for the client whenever the socket buffer is full. Rows come from a store snapshot
(``Store.snapshot``), so what the gateway commits meanwhile never shows up half-way. A download
that fails after its 200 went out is cut off without the final chunk, so the client sees a broken
transfer, never a short file that looks complete.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from gateway.lan.live import encode
from gateway.lan.params import ApiError
from gateway.lan.shapes import flag_names
from gateway.model import Event

__all__ = ["BATCH_ROWS", "cell", "paged_events", "series_csv", "stream_csv", "stream_json"]

_LOGGER = logging.getLogger(__name__)

# What reading and encoding stored rows can raise: the disk or the database failing, or a row
# that no longer decodes.
READ_FAILURES = (sqlite3.Error, ValueError, ArithmeticError, LookupError, TypeError)
# Rows per write: large enough to amortise the write call, small enough to stay a few 100 kB.
BATCH_ROWS = 500


async def stream_json(
    request: web.Request,
    head: msgspec.Struct,
    key: str,
    rows: Iterator[Any],
    row_json: Callable[[Any], Any],
) -> web.StreamResponse:
    """``{...head, key: [rows...]}`` written batch by batch."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        # One row per line: still one JSON document, and `curl | head` or a line reader works.
        await response.write(encode(head)[:-1] + b',"' + key.encode() + b'":[\n')
        first = True
        while batch := list(itertools.islice(rows, BATCH_ROWS)):
            chunk = b",\n".join(encode(row_json(row)) for row in batch)
            await response.write(chunk if first else b",\n" + chunk)
            first = False
            await asyncio.sleep(0)  # a fast client never blocks write(); let meters in between
        await response.write(b"\n]}")
    except ConnectionError:
        return response  # the client went away
    except READ_FAILURES as err:
        _abort(request, err)
        return response
    await response.write_eof()
    return response


async def stream_csv(
    request: web.Request,
    filename: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> web.StreamResponse:
    """A CSV download with ``header``, written batch by batch."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    iterator = iter(rows)
    try:
        while True:
            batch = list(itertools.islice(iterator, BATCH_ROWS))
            writer.writerows([cell(value) for value in row] for row in batch)
            if buffer.tell():
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
                await asyncio.sleep(0)  # a fast client never blocks write(); let meters in
            if not batch:
                break
    except ConnectionError:
        return response  # the client went away
    except READ_FAILURES as err:
        _abort(request, err)
        return response
    await response.write_eof()
    return response


def _abort(request: web.Request, err: Exception) -> None:
    """End a download that cannot be completed so the client sees it broken: the 200 is out,
    so the only honest signal left is a connection closed before the last chunk."""
    _LOGGER.warning(
        "download %s aborted after the response began: %s: %s",
        request.path,
        type(err).__name__,
        err,
    )
    if request.transport is not None:
        request.transport.abort()


def cell(value: Any) -> str:
    """A CSV cell: exact decimals, ISO times, empty for missing."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal | int | str):
        return str(value)
    return encode(value).decode()


def paged_events(  # noqa: PLR0913 - keyword-only filters
    store: Any,
    *,
    meter: str | None,
    kind: str | None,
    since: datetime | None,
    until: datetime | None,
    after_id: int,
) -> Iterator[tuple[int, Event]]:
    while True:
        page: list[tuple[int, Event]] = store.events(
            meter, kind=kind, since=since, until=until, limit=BATCH_ROWS, after_id=after_id
        )
        yield from page
        if len(page) < BATCH_ROWS:
            return
        after_id = page[-1][0]


async def series_csv(
    request: web.Request,
    filename: str,
    rows: Iterator[Any],
    zone: Any,
    *,
    flags: bool,
) -> web.StreamResponse:
    """Intervals as CSV: start and end in UTC, local start, one column per value of the first
    row (a meter's channels do not change within a range), and the status flags."""
    try:
        first = next(rows, None)
    except READ_FAILURES as err:
        raise ApiError(
            503, "store_unavailable", f"cannot read the store: {type(err).__name__}: {err}"
        ) from None
    columns: list[str] = list(first.values) if first is not None else []
    header = ["start", "end", "local_start", *columns, *(["flags"] if flags else [])]
    everything = itertools.chain([first] if first is not None else [], rows)

    def line(row: Any) -> list[Any]:
        cells = [row.start, row.end, row.start.astimezone(zone), *map(row.values.get, columns)]
        return [*cells, "|".join(flag_names(row.flags))] if flags else cells

    return await stream_csv(request, filename, header, map(line, everything))
