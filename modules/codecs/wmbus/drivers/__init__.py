"""Drivers for the wM-Bus meters whose values sit in manufacturer-specific data.

Most water meters, heat cost allocators and heat meters in European homes put their readings
behind DIF 0x0F (manufacturer data follows) instead of standard data records. A driver says,
per meter type (manufacturer, version, device type, as the telegram header gives them), where
in those bytes each value sits and what it means. Drivers are data: a ``RegisterWalk`` (tagged
registers of known sizes, as Apator's), ``FixedFields`` (values at fixed offsets) or
``FlaggedSections`` (a content byte says which blocks follow, as B METERS'). A function is
written only where a payload needs arithmetic, and a ``TelegramLayout`` only where the payload
is scrambled with the header (Diehl PRIOS).

``apply`` runs after the standard records are decoded: the manufacturer data of a telegram from
a known meter type becomes records with names, units and scaling; unknown types keep the raw
``manufacturer_specific`` record as before.
"""

from __future__ import annotations

from modules.codecs.wmbus.drivers.apator import APATOR_08, APATOR_16_2, E_ITN_APA, E_ITN_APT
from modules.codecs.wmbus.drivers.bmeters import HYDRODIGIT
from modules.codecs.wmbus.drivers.diehl import IZAR_DME, IZAR_HYD, IZAR_SAP
from modules.codecs.wmbus.drivers.model import (
    Driver,
    FieldSpec,
    FixedFields,
    FlaggedSections,
    RegisterWalk,
    Section,
    TelegramLayout,
    apply,
    find,
)
from modules.codecs.wmbus.drivers.qundis import Q_WATER_5_5
from modules.codecs.wmbus.drivers.techem import (
    COMPACT_V,
    FHKV_DATA_III,
    FHKV_DATA_III_94,
    MK_RADIO_3,
    MK_RADIO_4,
    VARIO_451,
)
from modules.codecs.wmbus.drivers.zenner import EDC_B_ONE

DRIVERS: tuple[Driver, ...] = (
    APATOR_16_2,
    MK_RADIO_3,
    MK_RADIO_4,
    COMPACT_V,
    VARIO_451,
    FHKV_DATA_III,
    FHKV_DATA_III_94,
    EDC_B_ONE,
    HYDRODIGIT,
    Q_WATER_5_5,
    IZAR_SAP,
    IZAR_DME,
    IZAR_HYD,
    E_ITN_APA,
    E_ITN_APT,
    APATOR_08,
)
# Telegrams from other makers skip the driver lookup.
MANUFACTURERS = frozenset(driver.manufacturer for driver in DRIVERS)

__all__ = [
    "DRIVERS",
    "MANUFACTURERS",
    "Driver",
    "FieldSpec",
    "FixedFields",
    "FlaggedSections",
    "RegisterWalk",
    "Section",
    "TelegramLayout",
    "apply",
    "find",
]
