"""A deterministic model of a Danish household on a three-phase Kamstrup 382L.

Pure code: ``Household.at(local_time)`` gives per-phase active and reactive power, voltage and
frequency for that instant; the same seed and time always give the same answer, so a restarted
simulation continues the same day.
"""

from __future__ import annotations

import math
import random
from datetime import datetime

import msgspec

__all__ = ["Household", "PhaseState", "Snapshot"]

NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0
# Grid impedance seen from the meter: what turns load into voltage drop and PV into rise.
LINE_RESISTANCE_OHM = 0.25


class PhaseState(msgspec.Struct, frozen=True):
    """One phase at one instant; positive power is import."""

    power_w: float
    reactive_var: float
    voltage_v: float

    @property
    def current_a(self) -> float:
        """RMS current from apparent power."""
        return math.hypot(self.power_w, self.reactive_var) / self.voltage_v


class Snapshot(msgspec.Struct, frozen=True):
    """All three phases and the grid frequency."""

    phases: tuple[PhaseState, PhaseState, PhaseState]
    frequency_hz: float

    @property
    def power_w(self) -> float:
        """Net active power over all phases (positive: import)."""
        return sum(p.power_w for p in self.phases)

    @property
    def reactive_var(self) -> float:
        """Net reactive power over all phases (positive: inductive, R+)."""
        return sum(p.reactive_var for p in self.phases)


class _Appliance(msgspec.Struct, frozen=True):
    phase: int
    start_h: float
    duration_h: float
    power_w: float
    power_factor: float


class Household:
    """Base load, fridge cycles, morning and evening peaks, random appliances, optional PV."""

    def __init__(self, *, seed: int = 382, base_load_w: float = 180.0, pv_kwp: float = 0.0) -> None:
        self.seed = seed
        self.base_load_w = base_load_w
        self.pv_kwp = pv_kwp
        self._day_cache: dict[int, tuple[_Appliance, ...]] = {}

    def at(self, local: datetime) -> Snapshot:
        """The household and grid at a local wall-clock time."""
        hour = local.hour + local.minute / 60 + local.second / 3600
        appliances = self._appliances(local.toordinal())
        loads = [self.base_load_w / 3] * 3
        # Idle switch-mode power supplies and LED drivers draw capacitive current: at night a
        # modern home sits in quadrant IV until the fridge or a motor starts.
        reactive = [-0.25 * loads[i] for i in range(3)]
        # The fridge compressor: 20 minutes on, 40 off, on L1.
        if (local.minute + 60 * local.hour) % 60 < 20:
            loads[0] += 95.0
            reactive[0] += 95.0 * math.tan(math.acos(0.8))
        for appliance in appliances:
            if appliance.start_h <= hour < appliance.start_h + appliance.duration_h:
                loads[appliance.phase] += appliance.power_w
                reactive[appliance.phase] += appliance.power_w * math.tan(
                    math.acos(appliance.power_factor)
                )
        flicker = self._noise(local, 0)
        loads = [load * (1 + 0.03 * flicker) for load in loads]
        pv_w = self._pv(local, hour)
        grid_voltage = NOMINAL_VOLTAGE_V + 2.5 * math.sin(2 * math.pi * hour / 24 - 1.2)
        phases = []
        for index in range(3):
            net_w = loads[index] - pv_w / 3
            # Volt-var control: the inverter absorbs reactive power when the voltage is high and
            # injects it when low, so export runs through quadrants II and III.
            voltage = grid_voltage - LINE_RESISTANCE_OHM * net_w / NOMINAL_VOLTAGE_V
            voltage += 0.4 * self._noise(local, index + 1)
            inverter_var = -0.25 * (pv_w / 3) * math.tanh((voltage - NOMINAL_VOLTAGE_V) / 1.5)
            phases.append(
                PhaseState(
                    power_w=net_w,
                    reactive_var=reactive[index] + inverter_var,
                    voltage_v=voltage,
                )
            )
        frequency = NOMINAL_FREQUENCY_HZ + 0.02 * math.sin(hour * 7.1) + 0.005 * flicker
        return Snapshot((phases[0], phases[1], phases[2]), frequency)

    def _appliances(self, day: int) -> tuple[_Appliance, ...]:
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        rng = random.Random(self.seed * 100_003 + day)
        weekend = (day - 1) % 7 in (5, 6)  # ordinal 1 (0001-01-01) was a Monday
        wake = 7.5 if weekend else 6.4 + rng.uniform(-0.2, 0.3)
        dinner = 17.4 + rng.uniform(-0.3, 0.6)
        plan = [
            _Appliance(1, wake + 0.1, 0.06, 2000.0, 1.0),  # kettle
            _Appliance(2, wake, 0.5, 600.0, 0.95),  # lights, coffee machine, radio
            _Appliance(0, dinner, 0.75, 2200.0 + rng.uniform(0, 1200), 0.99),  # induction hob
            _Appliance(1, dinner + 0.2, 0.4, 1500.0, 0.99),  # second zone
            _Appliance(2, dinner + 0.9, 3.5, 220.0, 0.9),  # TV and lights
            _Appliance(0, 22.6, 0.9, 80.0, 0.9),  # late lights
        ]
        if rng.random() < 0.6:  # washing machine heats, then spins
            start = rng.choice((9.5, 13.0, 19.5))
            plan.append(_Appliance(2, start, 0.3, 2100.0, 0.99))
            plan.append(_Appliance(2, start + 0.3, 1.0, 250.0, 0.7))
        if rng.random() < 0.4:  # dishwasher
            plan.append(_Appliance(1, 20.5, 0.5, 1900.0, 0.98))
        if rng.random() < 0.3:  # oven
            plan.append(_Appliance(0, dinner - 0.6, 0.8, 2400.0, 1.0))
        appliances = tuple(plan)
        self._day_cache = {day: appliances}
        return appliances

    def _pv(self, local: datetime, hour: float) -> float:
        if self.pv_kwp <= 0 or not 5.0 < hour < 21.0:
            return 0.0
        # Summer days are long and high, winter ones short and low.
        season = 0.5 + 0.5 * math.cos(2 * math.pi * (local.timetuple().tm_yday - 172) / 365)
        half_day = 4.0 + 4.0 * season
        elevation = math.cos(math.pi * (hour - 13.0) / (2 * half_day))
        if elevation <= 0:
            return 0.0
        rng = random.Random(self.seed * 7919 + local.toordinal() * 144 + int(hour * 6))
        clouds = 0.35 + 0.65 * math.sqrt(rng.random())
        return self.pv_kwp * 1000.0 * (0.3 + 0.7 * season) * math.pow(elevation, 1.5) * clouds

    def _noise(self, local: datetime, channel: int) -> float:
        """Pseudo-noise in [-1, 1] that changes every second, as a real load flickers."""
        step = int(local.timestamp())
        rng = random.Random(self.seed * 31 + step * 7 + channel)
        return rng.uniform(-1.0, 1.0)
