"""The meter model behind the P1, HAN and DLMS emulators, and the frames it sends.

One deterministic three-phase household load integrated into energy registers; builders turn
its state into a DSMR 5 telegram, a Kamstrup HAN push (optionally AES-GCM ciphered), or the
COSEM objects a DLMS server answers GET and ACTION with.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from modules.codecs.dlms.apdu import encode_data_notification, obis_bytes
from modules.codecs.dlms.axdr import (
    BOOLEAN,
    DOUBLE_LONG_UNSIGNED,
    ENUM,
    INTEGER,
    LONG_UNSIGNED,
    OCTET_STRING,
    STRUCTURE,
    VISIBLE_STRING,
    CosemDateTime,
    Data,
)
from modules.codecs.dlms.hdlc import LLC_RESPONSE, encode_frame
from modules.codecs.dlms.security import (
    SC_AUTHENTICATED,
    SC_ENCRYPTED,
    cipher,
    encode_general_ciphering,
)
from modules.codecs.dsmr.telegram import encode_telegram
from modules.dlms.server import CosemObject

__all__ = [
    "KAMSTRUP_TYPE",
    "EmulatedMeter",
    "HanPush",
    "cosem_objects",
    "dsmr5_telegram",
]

# Kamstrup Omnipower type number with a Danish market code: energy counted in 10 Wh.
KAMSTRUP_TYPE = "6841131BN243101040"
_DUTCH_TIME = ZoneInfo("Europe/Amsterdam")  # DSMR timestamps are Dutch local time + S/W
_NOMINAL_V = 230.0
# Kamstrup HDLC addresses of the NO/SE pushes (reference notes 2.3): 0x2B and 0x21 on the wire.
_KAMSTRUP_DEST, _KAMSTRUP_SRC = 0x15, 0x10
_UI_FINAL = 0x13


@dataclass(slots=True)
class EmulatedMeter:
    """A 3-phase meter measuring a plausible household; time advances only when told."""

    serial: str = "5706567277656672"
    seed: int = 382
    import_t1_wh: float = 1_234_567.0
    import_t2_wh: float = 2_345_678.0
    export_t1_wh: float = 1_000.0
    export_t2_wh: float = 2_000.0
    reactive_import_varh: float = 12_345.0
    reactive_export_varh: float = 54_321.0
    gas_m3: float = 1234.567
    connected: bool = True  # the disconnector (breaker) state
    elapsed_s: float = 0.0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def phase_power_w(self) -> tuple[float, float, float]:
        """Per-phase active power now (0 while disconnected)."""
        if not self.connected:
            return (0.0, 0.0, 0.0)
        wave = 1.0 + 0.5 * math.sin(self.elapsed_s / 60.0)
        return (round(420.0 * wave), round(310.0 * wave), round(650.0 * wave))

    def voltages_v(self) -> tuple[float, float, float]:
        """Per-phase voltage, a little noisy."""
        noise = self._rng.uniform
        return (
            round(_NOMINAL_V + noise(-3, 3), 1),
            round(_NOMINAL_V + noise(-3, 3), 1),
            round(_NOMINAL_V + noise(-3, 3), 1),
        )

    @property
    def power_w(self) -> float:
        """Total import power."""
        return sum(self.phase_power_w())

    @property
    def import_wh(self) -> float:
        """A+ total."""
        return self.import_t1_wh + self.import_t2_wh

    @property
    def export_wh(self) -> float:
        """A- total."""
        return self.export_t1_wh + self.export_t2_wh

    def advance(self, seconds: float, *, tariff: int = 1) -> None:
        """Integrate the load over ``seconds``."""
        energy = self.power_w * seconds / 3600.0
        if tariff == 1:
            self.import_t1_wh += energy
        else:
            self.import_t2_wh += energy
        self.reactive_export_varh += 0.1 * energy
        self.gas_m3 += 0.0001 * seconds
        self.elapsed_s += seconds


def dsmr5_telegram(meter: EmulatedMeter, now: datetime) -> bytes:
    """A DSMR 5.0 telegram (Iskra AM550 style) with a gas meter on M-Bus channel 1."""
    local = now.astimezone(_DUTCH_TIME)
    stamp = local.strftime("%y%m%d%H%M%S") + ("S" if local.dst() else "W")
    phases = meter.phase_power_w()
    volts = meter.voltages_v()
    lines = [
        "1-3:0.2.8(50)",
        f"0-0:1.0.0({stamp})",
        f"0-0:96.1.1({meter.serial.encode().hex().upper()})",
        f"1-0:1.8.1({meter.import_t1_wh / 1000:010.3f}*kWh)",
        f"1-0:1.8.2({meter.import_t2_wh / 1000:010.3f}*kWh)",
        f"1-0:2.8.1({meter.export_t1_wh / 1000:010.3f}*kWh)",
        f"1-0:2.8.2({meter.export_t2_wh / 1000:010.3f}*kWh)",
        f"0-0:96.14.0({_dsmr_tariff(local):04d})",
        f"1-0:1.7.0({meter.power_w / 1000:06.3f}*kW)",
        "1-0:2.7.0(00.000*kW)",
        "0-0:96.7.21(00004)",
        "0-0:96.7.9(00002)",
        "1-0:99.97.0(0)(0-0:96.7.19)",
        "1-0:32.32.0(00002)",
        "0-0:96.13.0()",
        *(f"1-0:{c}.7.0({v:05.1f}*V)" for c, v in zip((32, 52, 72), volts, strict=True)),
        *(
            f"1-0:{c}.7.0({round(p / u):03d}*A)"
            for c, p, u in zip((31, 51, 71), phases, volts, strict=True)
        ),
        *(f"1-0:{c}.7.0({p / 1000:06.3f}*kW)" for c, p in zip((21, 41, 61), phases, strict=True)),
        "1-0:22.7.0(00.000*kW)",
        "1-0:42.7.0(00.000*kW)",
        "1-0:62.7.0(00.000*kW)",
        "0-1:24.1.0(003)",
        "0-1:96.1.0(4730303339303031363532303530323136)",
        f"0-1:24.2.1({stamp})({meter.gas_m3:09.3f}*m3)",
    ]
    return encode_telegram("/ISK5\\2M550T-1012", lines)


_DSMR_DAY_TARIFF_HOURS = range(7, 23)  # 07:00 to 23:00 on weekdays


def _dsmr_tariff(local: datetime) -> int:
    """Dutch meters count the night and weekend tariff as 1, the day tariff as 2."""
    weekend = local.weekday() >= calendar.SATURDAY
    return 1 if weekend or local.hour not in _DSMR_DAY_TARIFF_HOURS else 2


@dataclass(slots=True)
class HanPush:
    """Kamstrup list-3 style pushes for one meter, clear or AES-GCM ciphered (SC 0x30/0x20)."""

    meter: EmulatedMeter
    zone: tzinfo = UTC
    key: bytes | None = None
    auth_key: bytes | None = None
    system_title: bytes = b"KAM\x00\x00\xbc\x61\x4e"
    frame_counter: int = 1
    text_as_octets: bool = False  # ids as octet-strings, as some lists send them

    def _text(self, text: str) -> Data:
        if self.text_as_octets:
            return Data(OCTET_STRING, text.encode("ascii"))
        return Data(VISIBLE_STRING, text)

    def notification(self, now: datetime) -> bytes:
        """The Data-Notification APDU with the meter's local time (deviation unspecified)."""
        meter = self.meter
        local = now.astimezone(self.zone).replace(tzinfo=None)
        phases = meter.phase_power_w()
        volts = meter.voltages_v()
        items: list[Data] = [self._text("Kamstrup_V0001")]

        def pair(code: str, value: Data) -> None:
            items.extend((Data(OCTET_STRING, obis_bytes(code)), value))

        pair("1-1:0.0.5", self._text(meter.serial))
        pair("1-1:96.1.1", self._text(KAMSTRUP_TYPE))
        pair("1-1:1.7.0", Data(DOUBLE_LONG_UNSIGNED, round(meter.power_w)))
        pair("1-1:2.7.0", Data(DOUBLE_LONG_UNSIGNED, 0))
        pair("1-1:3.7.0", Data(DOUBLE_LONG_UNSIGNED, 0))
        pair("1-1:4.7.0", Data(DOUBLE_LONG_UNSIGNED, round(meter.power_w * 0.1)))
        for code, power, volt in zip((31, 51, 71), phases, volts, strict=True):
            pair(f"1-1:{code}.7.0", Data(DOUBLE_LONG_UNSIGNED, round(power / volt * 100)))
        for code, volt in zip((32, 52, 72), volts, strict=True):
            pair(f"1-1:{code}.7.0", Data(LONG_UNSIGNED, round(volt)))
        # Kamstrup counts energy in 10 Wh (10 varh) except in Swedish lists.
        pair("1-1:1.8.0", Data(DOUBLE_LONG_UNSIGNED, int(meter.import_wh // 10)))
        pair("1-1:2.8.0", Data(DOUBLE_LONG_UNSIGNED, int(meter.export_wh // 10)))
        pair("1-1:3.8.0", Data(DOUBLE_LONG_UNSIGNED, int(meter.reactive_import_varh // 10)))
        pair("1-1:4.8.0", Data(DOUBLE_LONG_UNSIGNED, int(meter.reactive_export_varh // 10)))
        stamp = CosemDateTime.from_datetime(local)
        return encode_data_notification(Data(STRUCTURE, tuple(items)), date_time=stamp)

    def apdu(self, now: datetime) -> bytes:
        """The notification, ciphered when a key is set (the counter then moves on)."""
        plain = self.notification(now)
        if self.key is None:
            return plain
        control = SC_ENCRYPTED | (SC_AUTHENTICATED if self.auth_key is not None else 0)
        content = cipher(
            plain,
            system_title=self.system_title,
            invocation_counter=self.frame_counter,
            security_control=control,
            key=self.key,
            auth_key=self.auth_key,
        )
        self.frame_counter += 1
        return encode_general_ciphering(content, system_title=self.system_title)

    def frame(self, now: datetime) -> bytes:
        """One HDLC UI frame as the meter's HAN port sends it."""
        return encode_frame(
            LLC_RESPONSE + self.apdu(now),
            dest=_KAMSTRUP_DEST,
            src=_KAMSTRUP_SRC,
            control=_UI_FINAL,
        )


def cosem_objects(meter: EmulatedMeter) -> list[CosemObject]:
    """The meter as COSEM objects: clock, registers with scaler-unit, disconnect control."""

    def register(code: str, getter: Callable[[], float], scaler: int, unit: int) -> CosemObject:
        return CosemObject(
            3,
            code,
            {
                2: lambda: Data(DOUBLE_LONG_UNSIGNED, int(getter())),
                3: lambda: Data(STRUCTURE, (Data(INTEGER, scaler), Data(ENUM, unit))),
            },
        )

    def now_octets() -> Data:
        stamp = CosemDateTime.from_datetime(datetime.now(UTC).replace(microsecond=0))
        return Data(OCTET_STRING, stamp.to_bytes())

    def disconnect(_parameter: Data | None) -> int:
        meter.connected = False
        return 0

    def reconnect(_parameter: Data | None) -> int:
        meter.connected = True
        return 0

    def phase(index: int, what: str) -> Callable[[], float]:
        def value() -> float:
            volts = meter.voltages_v()
            if what == "V":
                return volts[index] * 10
            return meter.phase_power_w()[index] / volts[index] * 100

        return value

    objects = [
        CosemObject(8, "0-0:1.0.0", {2: now_octets}),
        CosemObject(1, "0-0:96.1.0", {2: lambda: Data(VISIBLE_STRING, meter.serial)}),
        register("1-0:1.8.0", lambda: meter.import_wh, 0, 30),
        register("1-0:2.8.0", lambda: meter.export_wh, 0, 30),
        register("1-0:3.8.0", lambda: meter.reactive_import_varh, 0, 32),
        register("1-0:4.8.0", lambda: meter.reactive_export_varh, 0, 32),
        register("1-0:1.7.0", lambda: meter.power_w, 0, 27),
        register("1-0:2.7.0", lambda: 0, 0, 27),
        CosemObject(
            70,
            "0-0:96.3.10",
            {
                2: lambda: Data(BOOLEAN, meter.connected),
                3: lambda: Data(ENUM, 1 if meter.connected else 0),
                4: lambda: Data(ENUM, 1),
            },
            {1: disconnect, 2: reconnect},
        ),
    ]
    for index, (volt_code, current_code) in enumerate(((32, 31), (52, 51), (72, 71))):
        objects.append(register(f"1-0:{volt_code}.7.0", phase(index, "V"), -1, 35))
        objects.append(register(f"1-0:{current_code}.7.0", phase(index, "A"), -2, 33))
    return objects
