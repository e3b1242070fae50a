"""A readout's decoded records -> one Sample for the meter engine (pure).

Records with an OBIS code become Readings under that code (the first one wins when telegrams
repeat a code). Every other record with a value is kept under a stable name, so heat, water
and gas meters on the same bus are published too: ``mbus:<name>`` plus ``_<function>`` when it
is not the instantaneous value and ``[storage/tariff/subunit]`` when any of those is not 0,
e.g. ``mbus:volume``, ``mbus:flow_temperature_maximum``, ``mbus:energy[1/0/0]``.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from gateway.model import Reading, Sample
from modules.codecs.records import Decoded, Record

__all__ = ["meter_time", "record_key", "to_sample"]

PREFIX = "mbus:"
# The VIF 0x6D (type F / I) record at storage 0 is the meter's clock.
_CLOCK_RECORD = "datetime"


def record_key(record: Record) -> str:
    """The stable register name of a record without an OBIS code."""
    name = record.name
    if record.function != "instantaneous":
        name += f"_{record.function}"
    if record.storage or record.tariff or record.subunit:
        name += f"[{record.storage}/{record.tariff}/{record.subunit}]"
    return PREFIX + name


def meter_time(telegrams: list[Decoded], zone: tzinfo) -> datetime | None:
    """The meter's clock from its present date-and-time record (local time -> UTC), if any."""
    for decoded in telegrams:
        for record in decoded.records:
            if (
                record.name == _CLOCK_RECORD
                and isinstance(record.value, str)
                and not (record.storage or record.tariff or record.subunit)
            ):
                try:
                    local = datetime.fromisoformat(record.value)
                except ValueError:
                    continue
                if local.tzinfo is None:
                    local = local.replace(tzinfo=zone)
                return local.astimezone(UTC)
    return None


def to_sample(  # noqa: PLR0913 - keyword-only options
    meter: str,
    source: str,
    telegrams: list[Decoded],
    *,
    received_at: datetime,
    zone: tzinfo,
    raw: bytes | None = None,
) -> Sample:
    """One Sample from the telegrams of one readout, stamped with the meter's clock if sent."""
    readings: list[Reading] = []
    taken: set[str] = set()
    for decoded in telegrams:
        for record in decoded.records:
            if record.value is None or record.raw.get("more_records_follow"):
                continue
            key = record.obis or record_key(record)
            if record.obis is None and key in taken:
                count = 2
                while f"{key}#{count}" in taken:
                    count += 1
                key = f"{key}#{count}"
            if key in taken:
                continue
            taken.add(key)
            readings.append(Reading(key, record.value, record.unit))
    return Sample(
        meter=meter,
        source=source,
        at=meter_time(telegrams, zone) or received_at,
        readings=tuple(readings),
        raw=raw,
    )
