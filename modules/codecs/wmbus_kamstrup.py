"""Kamstrup's manufacturer-specific records in wM-Bus telegrams (VIF 0xFF + VIFE).

The generic record code keeps these as manufacturer-specific numbers; here they get the
name and unit Kamstrup documents for its Multical heat and water meters.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.decoding import Record

__all__ = ["KAMSTRUP", "annotate"]

KAMSTRUP = "KAM"

# Manufacturer VIFE (after VIF 0xFF) -> (name, unit).
_VIFES: dict[str, tuple[str, str | None]] = {
    # Multical 302/403/603: the energy integrals E8 = m³·t_forward, E9 = m³·t_return.
    "07": ("forward_energy", "m³·°C"),
    "08": ("return_energy", "m³·°C"),
    "20": ("info_codes", None),  # Multical 21 / flowIQ: 16-bit alarm flags
    "22": ("info_codes", None),  # Multical heat meters: 32-bit alarm flags
    "23": ("info_codes", None),  # flowIQ 2200: 32-bit status
}

# Multical 21 / flowIQ info code bits 0-3: the alarms that are active now.
_WATER_ALARMS = ((0x01, "DRY"), (0x02, "REVERSE"), (0x04, "LEAK"), (0x08, "BURST"))
# Multical 302/403/603 info code bits (Kamstrup technical description, "info codes").
_HEAT_ALARMS = (
    (0x00000001, "VOLTAGE_INTERRUPTED"),
    (0x00000002, "LOW_BATTERY_LEVEL"),
    (0x00000004, "SENSOR_ERROR"),
    (0x00000008, "SENSOR_T1_ABOVE_MEASURING_RANGE"),
    (0x00000010, "SENSOR_T2_ABOVE_MEASURING_RANGE"),
    (0x00000020, "SENSOR_T1_BELOW_MEASURING_RANGE"),
    (0x00000040, "SENSOR_T2_BELOW_MEASURING_RANGE"),
    (0x00000080, "TEMP_DIFF_WRONG_POLARITY"),
    (0x00000100, "FLOW_SENSOR_WEAK_OR_AIR"),
    (0x00000200, "WRONG_FLOW_DIRECTION"),
    (0x00000800, "FLOW_INCREASED"),
    (0x00010000, "V1_COMMUNICATION_ERROR"),
    (0x00020000, "V1_WRONG_PULSE_FIGURE"),
    (0x00400000, "V2_COMMUNICATION_ERROR"),
    (0x00800000, "V2_WRONG_PULSE_FIGURE"),
)


def annotate(records: Sequence[Record], *, manufacturer: str) -> list[Record]:
    """Name Kamstrup's manufacturer-specific records; other makers' records pass unchanged."""
    if manufacturer != KAMSTRUP:
        return list(records)
    return [_kamstrup(record) for record in records]


def _kamstrup(record: Record) -> Record:
    raw = record.raw
    if raw.get("vif") != "ff" or "manufacturer_vife" not in raw:
        return record
    known = _VIFES.get(str(raw["manufacturer_vife"])[:2])
    if known is None or not isinstance(record.value, int):
        return record
    name, unit = known
    extra = dict(raw)
    if name == "info_codes":
        table = _WATER_ALARMS if raw["manufacturer_vife"] == "20" else _HEAT_ALARMS
        flags = [text for bit, text in table if record.value & bit]
        extra["alarms"] = " ".join(flags) or "OK"
    return Record(
        name=name,
        value=record.value,
        unit=unit,
        obis=record.obis,
        storage=record.storage,
        tariff=record.tariff,
        subunit=record.subunit,
        function=record.function,
        raw=extra,
    )
