"""Raspberry Pi terms: instructions per unit of work, counted, and what they take on a Pi's core.

Run: ``.venv/bin/python -m bench.pi [--quick]``

``perf stat -e instructions`` has no hardware counters in most VMs and containers, so the
instructions are counted with ``valgrind --tool=callgrind`` (it counts every instruction the
process executes, Ir): the same workload at two sizes, the difference divided by the extra units,
which cancels interpreter start-up and imports. Workloads: one engine ingest of a 1 Hz
three-phase sample with every feature on (bench/engine_load's meter), and one wired M-Bus
decode (the vectors' frames, in turn). Dividing by this host's CPU time for the same work gives
the host's instructions per second on CPython code; every CPU figure of the bench can then be
carried over by that rate.

The Pi side is a model, not a measurement: instructions per second = clock x instructions per
cycle on CPython's interpreter loop. Clocks are the boards' specifications (Pi 4: Cortex-A72
at 1.5 GHz, 1.8 GHz on boards from 2022; Zero 2 W: Cortex-A53 at 1 GHz). IPC is assumed: 1.0
for the out-of-order A72, 0.6 for the in-order, dual-issue A53 (an interpreter's branchy,
load-heavy loop keeps both well below their peaks of 3 and 2). aarch64 needs about as many
instructions as x86-64 for the same C code; the model takes them as equal. A cross-check with a
published figure: the n-body benchmark, five million steps in CPython, took 158 s on a Pi 4 at
1.5 GHz ("Performance Analysis of Languages on Raspberry Pi", chaitanyamehta.github.io, 2020,
performance governor); the same algorithm is timed here and the ratio printed beside the model.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PIS = {
    # name: (clock Hz, assumed instructions per cycle on CPython code)
    "Raspberry Pi 4 (A72 1.5 GHz)": (1.5e9, 1.0),
    "Raspberry Pi Zero 2 W (A53 1.0 GHz)": (1.0e9, 0.6),
}
NBODY_PI4_S = 158.263  # 5,000,000 steps, performance governor (source in the docstring)
NBODY_STEPS = 5_000_000

ENGINE = """
import sys
from bench.pi import engine_work
engine_work(int(sys.argv[1]))
"""
# The same run without the ingests: what making the samples costs (the household model, the
# readings), taken off so that the count is the engine's alone.
ENGINE_INPUTS = """
import sys
from bench.pi import engine_work
engine_work(int(sys.argv[1]), ingest=False)
"""
MBUS = """
import sys
from bench.pi import mbus_work
mbus_work(int(sys.argv[1]))
"""


def engine_work(samples: int, *, ingest: bool = True) -> float:
    """Ingest ``samples`` seconds of the bench meter; returns the CPU seconds of the ingests.
    With ``ingest`` False only the samples are made (and the first one ingested)."""
    import tempfile  # noqa: PLC0415 - keeps the valgrind child's imports to what it needs
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from bench.engine_load import CONFIG  # noqa: PLC0415
    from gateway import config  # noqa: PLC0415
    from gateway.meters import Meters  # noqa: PLC0415
    from gateway.model import Sample  # noqa: PLC0415
    from gateway.store import Store  # noqa: PLC0415
    from modules.sim.adapter import _readings  # noqa: PLC0415
    from modules.sim.household import Household  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as folder:
        settings = config.loads(CONFIG.format(data=folder))
        store = Store(Path(folder) / "gateway.db")
        engine = Meters(settings, store).engines["main"]
        house = Household(pv_kwp=5.0)
        start = datetime(2026, 1, 14, tzinfo=UTC)
        totals = [0.0, 0.0, 0.0, 0.0]
        batch = []
        for second in range(samples + 1):
            at = start + timedelta(seconds=second)
            snap = house.at(at.astimezone(settings.zone))
            totals[0] += max(snap.power_w, 0) / 3600
            batch.append(Sample("main", "bench", at, _readings(snap, totals)))
        engine.ingest(batch[0])
        begin = time.process_time()
        for sample in batch[1:] if ingest else ():
            engine.ingest(sample)
        spent = time.process_time() - begin
        store.close()
    return spent


def mbus_work(frames: int) -> float:
    """Decode ``frames`` wired M-Bus frames (the vectors', in turn); returns the CPU seconds."""
    from bench.vectors import inputs  # noqa: PLC0415
    from gateway import registry  # noqa: PLC0415
    from modules.codecs.errors import FrameError  # noqa: PLC0415

    decoder = registry.decoder("mbus")
    good = []
    for item in inputs("mbus"):
        try:
            decoder.decode(item.data, key=None, auth_key=None)
        except FrameError:
            continue
        good.append(item.data)
    begin = time.process_time()
    for n in range(frames):
        decoder.decode(good[n % len(good)], key=None, auth_key=None)
    return time.process_time() - begin


def _instructions(code: str, size: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
            str(size),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind said: {done.stderr[-500:]}")
    return int(found.group(1))


def _per_unit(code: str, small: int, large: int) -> float:
    return (_instructions(code, large) - _instructions(code, small)) / (large - small)


def nbody(steps: int) -> float:
    """The n-body benchmark's algorithm (the sun and four planets, dt 0.01); the energy after."""
    pi, days = 3.141592653589793, 365.24
    mass = 4 * pi * pi
    # A body: position and velocity (mutated in place), mass.
    bodies: list[tuple[list[float], list[float], float]] = [
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], mass),
        (
            [4.84143144246472090e00, -1.16032004402742839e00, -1.03622044471123109e-01],
            [1.66007664274403694e-03 * days, 7.69901118419740425e-03 * days,
             -6.90460016972063023e-05 * days],
            9.54791938424326609e-04 * mass,
        ),
        (
            [8.34336671824457987e00, 4.12479856412430479e00, -4.03523417114321381e-01],
            [-2.76742510726862411e-03 * days, 4.99852801234917238e-03 * days,
             2.30417297573763929e-05 * days],
            2.85885980666130812e-04 * mass,
        ),
        (
            [1.28943695621391310e01, -1.51111514016986312e01, -2.23307578892655734e-01],
            [2.96460137564761618e-03 * days, 2.37847173959480950e-03 * days,
             -2.96589568540237556e-05 * days],
            4.36624404335156298e-05 * mass,
        ),
        (
            [1.53796971148509165e01, -2.59193146099879641e01, 1.79258772950371181e-01],
            [2.68067772490389322e-03 * days, 1.62824170038242295e-03 * days,
             -9.51592254519715870e-05 * days],
            5.15138902046611451e-05 * mass,
        ),
    ]  # fmt: skip
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    # The benchmark first gives the sun the momentum that makes the system's total zero.
    sun = bodies[0][1]
    for axis in range(3):
        sun[axis] = -sum(v[axis] * m for _r, v, m in bodies) / mass
    dt = 0.01
    for _ in range(steps):
        for ([x1, y1, z1], v1, m1), ([x2, y2, z2], v2, m2) in pairs:
            dx, dy, dz = x1 - x2, y1 - y2, z1 - z2
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** -1.5)
            b1m, b2m = m1 * mag, m2 * mag
            v1[0] -= dx * b2m
            v1[1] -= dy * b2m
            v1[2] -= dz * b2m
            v2[0] += dx * b1m
            v2[1] += dy * b1m
            v2[2] += dz * b1m
        for r, [vx, vy, vz], _m in bodies:
            r[0] += dt * vx
            r[1] += dt * vy
            r[2] += dt * vz
    energy = sum(m * (v[0] ** 2 + v[1] ** 2 + v[2] ** 2) / 2 for _r, v, m in bodies)
    for (r1, _v1, m1), (r2, _v2, m2) in pairs:
        energy -= m1 * m2 / sum((a - b) ** 2 for a, b in zip(r1, r2, strict=True)) ** 0.5
    return energy


def measure(quick: bool = False) -> dict[str, Any]:
    """Instructions per engine sample and per M-Bus frame, host IPS, and the Pi model."""
    scale = 1 if quick else 2
    result: dict[str, Any] = {"pis": {}}
    engine_n, mbus_n = 150 * scale, 200 * scale
    # The best of several runs: this host is shared, and a busy neighbour only ever adds time.
    native_engine = min(engine_work(1000) for _ in range(5)) / 1000
    native_mbus = min(mbus_work(2000) for _ in range(5)) / 2000
    steps = 100_000 * scale
    start = time.process_time()
    nbody(steps)
    nbody_s = (time.process_time() - start) * NBODY_STEPS / steps
    result["nbody_5m_host_s"] = nbody_s
    result["nbody_pi4_factor"] = NBODY_PI4_S / nbody_s
    if shutil.which("valgrind") is None:
        result["error"] = "valgrind is not installed (apt install valgrind)"
        return result
    engine_ir = _per_unit(ENGINE, 50, 50 + engine_n) - _per_unit(ENGINE_INPUTS, 50, 50 + engine_n)
    mbus_ir = _per_unit(MBUS, 50, 50 + mbus_n)
    host_ips = (engine_ir + mbus_ir) / (native_engine + native_mbus)
    result.update(
        engine_instructions_per_sample=engine_ir,
        engine_host_us_per_sample=native_engine * 1e6,
        mbus_instructions_per_frame=mbus_ir,
        mbus_host_us_per_frame=native_mbus * 1e6,
        host_instructions_per_s=host_ips,
    )
    for name, (clock, ipc) in PIS.items():
        pi_ips = clock * ipc
        result["pis"][name] = {
            "clock_hz": clock,
            "assumed_ipc": ipc,
            "slower_than_host": host_ips / pi_ips,
            "engine_us_per_sample": engine_ir / pi_ips * 1e6,
            "mbus_us_per_frame": mbus_ir / pi_ips * 1e6,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    r = measure(args.quick)
    if "error" not in r:
        print(
            f"engine: {r['engine_instructions_per_sample']:,.0f} instructions/sample "
            f"({r['engine_host_us_per_sample']:.0f} µs here); M-Bus decode: "
            f"{r['mbus_instructions_per_frame']:,.0f} instructions/frame "
            f"({r['mbus_host_us_per_frame']:.0f} µs here); this host runs CPython at "
            f"{r['host_instructions_per_s'] / 1e9:.2f} G instructions/s"
        )
        for name, pi in r["pis"].items():
            print(
                f"{name}: {pi['slower_than_host']:.1f}x slower than here; engine "
                f"{pi['engine_us_per_sample']:.0f} µs/sample, M-Bus {pi['mbus_us_per_frame']:.0f} "
                "µs/frame"
            )
    print(
        f"n-body cross-check: 5M steps {r['nbody_5m_host_s']:.1f} s here vs {NBODY_PI4_S:.0f} s "
        f"on a Pi 4: {r['nbody_pi4_factor']:.1f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
