"""Move a meter between gateways: ``meter-gateway export-meter`` and ``import-meter``.

An engine's meter lives in its gateway's store: the checkpoint (registers, tariff, breaker,
credit, the engine's own state) and its history (billing periods, events, load profile,
analysis log). Export writes all of it as one JSON document; import writes it into another
gateway's store, in one transaction, for a meter that gateway's config has and whose store
has no state for it yet (``--replace`` to overwrite). Both gateways must be stopped: a running
one would overwrite the checkpoint from memory (README "Many receivers, many meters").
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from gateway.app import STORE_FILE
from gateway.checkpoint import decode_row, encode_row
from gateway.config import Settings
from gateway.engine import AnalysisRow, BillingRecord, ProfileFlag, ProfileRow
from gateway.errors import GatewayError
from gateway.model import Event
from gateway.store import Store

__all__ = ["FORMAT", "MeterExport", "TransferError", "export_meter", "import_meter"]

FORMAT = 1
# Far enough back and ahead to take every row: profiles are kept for years, never centuries.
_EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
_PAGE = 1000


class TransferError(GatewayError):
    """An export or import that cannot be done; the message says why."""


class MeterExport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One meter's state and history, as ``export-meter`` writes it."""

    format: int
    meter: str
    gateway: str  # where it came from
    exported_at: datetime
    checkpoint: bytes  # the store's own encoding of registers and engine state (base64)
    billing: list[tuple[int, datetime, dict[str, Any], bool]]
    events: list[Event]
    profile: list[tuple[datetime, datetime, dict[str, str], int]]
    analysis: list[tuple[datetime, datetime, dict[str, float]]]


def export_meter(settings: Settings, meter: str, now: datetime) -> bytes:
    """The JSON document of ``meter`` from the store of the gateway ``settings`` describe."""
    store = _open(settings)
    try:
        row = store.load_meter(meter)
        if row is None:
            raise TransferError(f"the store in {settings.data_path} has no state for {meter!r}")
        events: list[Event] = []
        after = 0
        while page := store.events(meter, limit=_PAGE, after_id=after):
            events.extend(event for _, event in page)
            after = page[-1][0]
        document = MeterExport(
            format=FORMAT,
            meter=meter,
            gateway=settings.gateway.name,
            exported_at=now,
            checkpoint=encode_row(row),
            billing=[
                (r.number, r.at, r.values, r.estimated)
                for r in reversed(store.billing(meter, limit=2**31))
            ],
            events=events,
            profile=[
                (r.start, r.end, {k: str(v) for k, v in r.values.items()}, int(r.flags))
                for r in store.profile(meter, None, *_EVER)
            ],
            analysis=[(r.start, r.end, r.values) for r in store.analysis(meter, *_EVER)],
        )
    finally:
        store.close()
    return msgspec.json.encode(document)


def import_meter(settings: Settings, document: bytes, *, replace: bool = False) -> MeterExport:
    """Write an exported meter into this gateway's store; TransferError if it cannot."""
    try:
        export = msgspec.json.decode(document, type=MeterExport)
    except msgspec.DecodeError as err:
        raise TransferError(f"not a meter export: {err}") from None
    if export.format != FORMAT:
        raise TransferError(f"export format {export.format}; this version reads {FORMAT}")
    if export.meter not in {m.id for m in settings.meters}:
        raise TransferError(
            f"meter {export.meter!r} is not in [[meters]] of {settings.source}"
            " (or outside its [cluster] meter_hash_range): add it there first"
        )
    row = decode_row(export.meter, export.checkpoint)
    store = _open(settings)
    try:
        if store.load_meter(export.meter) is not None and not replace:
            raise TransferError(
                f"the store in {settings.data_path} already has state for {export.meter!r};"
                " --replace overwrites it"
            )
        with store.transaction():
            store.save_meters({export.meter: row})
            store.add_billing(
                export.meter, [BillingRecord(n, at, v, est) for n, at, v, est in export.billing]
            )
            store.add_events(export.events)
            store.add_profile(
                export.meter,
                [
                    ProfileRow(
                        start, end, {k: Decimal(v) for k, v in values.items()}, ProfileFlag(f)
                    )
                    for start, end, values, f in export.profile
                ],
            )
            store.add_analysis(
                export.meter,
                [AnalysisRow(start, end, values) for start, end, values in export.analysis],
            )
    finally:
        store.close()
    return export


def _open(settings: Settings) -> Store:
    path = settings.data_path / STORE_FILE
    if not path.is_file():
        raise TransferError(f"no gateway store at {path}")
    return Store(path)
