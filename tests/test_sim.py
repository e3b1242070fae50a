"""The simulated household: realistic shape, PV export in all four quadrants, determinism."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from modules.sim.household import Household

CPH = ZoneInfo("Europe/Copenhagen")


def day(house: Household, date: datetime, step_min: int = 1) -> list[tuple[datetime, float, float]]:
    out = []
    t = date
    while t < date + timedelta(days=1):
        snap = house.at(t)
        out.append((t, snap.power_w, snap.reactive_var))
        t += timedelta(minutes=step_min)
    return out


def test_evening_peak_is_well_above_night_base_load() -> None:
    points = day(Household(seed=1), datetime(2026, 2, 10, tzinfo=CPH))
    night = [p for t, p, _ in points if 2 <= t.hour < 4]
    evening = [p for t, p, _ in points if 17 <= t.hour < 20]
    assert 100 < sum(night) / len(night) < 400
    assert max(evening) > 2000


def test_pv_exports_around_noon_and_visits_all_four_quadrants() -> None:
    house = Household(seed=5, pv_kwp=6.0)
    points = day(house, datetime(2026, 6, 21, tzinfo=CPH))
    quadrants = {
        (1 if p >= 0 and q >= 0 else 2 if p < 0 <= q else 3 if p < 0 and q < 0 else 4)
        for _, p, q in points
    }
    assert quadrants == {1, 2, 3, 4}
    noon = [p for t, p, _ in points if 11 <= t.hour < 15]
    assert min(noon) < -1000, "a sunny June noon with 6 kWp must export"
    midnight = [p for t, p, _ in points if t.hour == 0]
    assert min(midnight) > 0, "no export at night"


def test_same_seed_same_day_and_sane_electrical_values() -> None:
    t = datetime(2026, 3, 3, 18, 30, tzinfo=CPH)
    a, b = Household(seed=9).at(t), Household(seed=9).at(t)
    assert a == b
    for phase in a.phases:
        assert 215 < phase.voltage_v < 245
        assert 0 <= phase.current_a < 63
    assert 49.9 < a.frequency_hz < 50.1
