"""Kill -9 soak: the gateway killed at random moments, with and without a broker outage.

Run: ``.venv/bin/python -m bench.soak_kill [--cycles 50] [--seed 20] [--json OUT]``

Each cycle starts ``meter-gateway run`` (a sim meter accelerated x60, MQTT to a persistent
mosquitto on loopback, ``outbox_spill_after_s = 1``), waits until a state message of this run
arrived, then either kills it with SIGKILL a random moment later, or (one cycle in three) stops
the broker first, lets messages spill for a few seconds, and kills it during the outage. After
each kill it checks the store (``PRAGMA integrity_check``; no register lower than after the kill
before) and notes the outbox rows on disk; the next run, with the broker back, must deliver every
one of them to a persistent subscriber. Live samples lost per kill: the sim's samples between
the newest state delivered before the kill and the checkpoint the meter resumes from.

The gateway checkpoints every second in its first 30 s (its warm-up) and every
``checkpoint_interval_s`` after it, two different paths; so one cycle in ``steady_every``
(default four) waits past the warm-up before its random moment, with the checkpoint interval at
2 s (what a UPS HAT would set) so that a kill can fall anywhere around a steady checkpoint too.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from gateway.mqtt.outbox import _unpack
from gateway.store import registers_in
from tests.support.configs import sim_gateway_toml
from tests.support.mqtt import Collector, persistent_broker
from tests.support.processes import gateway

STEP_S = 0.2 * 60  # meter seconds per sim sample: interval_s x speed
STEADY_CHECKPOINT_S = 2.0
# Past gateway.app's warm-up (30 s of checkpoints every second), with a margin for a busy host.
STEADY_AFTER_S = 32.0
GATEWAY_NAME = "soak"
STATE = f"meter-gateway/{GATEWAY_NAME}/main/state"  # <base>/<gateway>/<meter>/state
TOTAL = "1-0:1.8.0"


def _after_kill(db_path: Path) -> tuple[bool, Decimal, datetime | None, set[int]]:
    """(integrity ok, A+ on disk, its time, state seq numbers spilled to the outbox)."""
    db = sqlite3.connect(db_path)
    try:
        ok = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        register = registers_in(db, "main").get(TOTAL)
        spilled = {
            int(json.loads(_unpack(payload, encoding))["seq"])
            for payload, encoding in db.execute(
                "SELECT payload, encoding FROM outbox WHERE topic = ?", (STATE,)
            )
        }
    finally:
        db.close()
    total = Decimal(register.value) if register else Decimal(0)
    return ok, total, register.at if register else None, spilled


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run(cycles: int, seed: int, *, steady_every: int = 0) -> dict[str, Any]:
    """Kill the gateway ``cycles`` times; returns counts and the distributions.

    ``steady_every``: every so many cycles (0: none) the kill falls past the warm-up.
    """
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-soak-", dir=SCRATCH) as folder:
        work = Path(folder)
        broker = persistent_broker(work)
        broker.start()
        subscriber = Collector(broker.port, (STATE,), client_id="soak", persistent=True)
        config = work / "gateway.toml"
        config.write_text(
            sim_gateway_toml(
                work / "data",
                name=GATEWAY_NAME,
                persist_interval_s=STEADY_CHECKPOINT_S,
                mqtt_port=broker.port,
                mqtt="outbox_spill_after_s = 1.0\ndiscovery = false",
                speed=60.0,
                interval_s=0.2,
            )
        )
        db_path = work / "data" / "gateway.db"
        log = work / "gateway.log"
        floor = Decimal(0)
        regressions = integrity_failures = outage_kills = steady_kills = 0
        spilled_total = spilled_arrived = 0
        lost_samples: list[int] = []
        waiting_for: set[int] = set()
        try:
            for _ in range(cycles + 1):
                seen = len(subscriber.on(STATE))
                with gateway(config, log=log) as process:
                    started = time.monotonic()
                    if not _wait(lambda seen=seen: len(subscriber.on(STATE)) > seen, 60):
                        raise TimeoutError("no state message from a fresh run within 60 s")
                    if waiting_for:
                        expected = waiting_for
                        _wait(lambda expected=expected: expected <= _seqs(subscriber), 60)
                        spilled_arrived += len(waiting_for & _seqs(subscriber))
                        waiting_for = set()
                    if len(lost_samples) == cycles:
                        break  # the last run only delivered the previous kill's backlog
                    steady = (
                        steady_every > 0 and len(lost_samples) % steady_every == steady_every - 1
                    )
                    if steady:
                        steady_kills += 1
                        time.sleep(max(0.0, STEADY_AFTER_S - (time.monotonic() - started)))
                    outage = rng.random() < 1 / 3
                    if outage:
                        broker.stop()
                        time.sleep(rng.uniform(1.5, 4.0))
                    else:
                        time.sleep(rng.uniform(0.0, 2.0))
                    delivered = subscriber.on(STATE)
                    process.send_signal(signal.SIGKILL)
                    process.wait(10)
                ok, total, at, spilled = _after_kill(db_path)
                integrity_failures += not ok
                regressions += total < floor
                floor = max(floor, total)
                if outage:
                    outage_kills += 1
                    broker.start()
                spilled_total += len(spilled)
                waiting_for = spilled
                last = max(datetime.fromisoformat(m.json()["at"]) for m in delivered)
                behind = (last - at).total_seconds() if at else 0.0
                lost_samples.append(max(0, round(behind / STEP_S)))
        finally:
            subscriber.close()
            broker.stop()
    published = _published_regressions(subscriber)
    return {
        "cycles": len(lost_samples),
        "outage_kills": outage_kills,
        "steady_kills": steady_kills,
        "register_regressions": regressions,
        "published_regressions": published,
        "integrity_failures": integrity_failures,
        "spilled_messages": spilled_total,
        "spilled_arrived": spilled_arrived,
        "live_samples_lost": sorted(lost_samples),
    }


def _seqs(subscriber: Collector) -> set[int]:
    return {int(m.json()["seq"]) for m in subscriber.on(STATE)}


def _published_regressions(subscriber: Collector) -> int:
    """State messages (in sequence order) whose A+ is below one published before them."""
    by_seq: dict[int, Decimal] = {}
    for message in subscriber.on(STATE):
        document = message.json()
        reading = document["readings"].get("energy_import")
        if reading is not None:
            by_seq.setdefault(int(document["seq"]), Decimal(str(reading["value"])))
    highest, regressions = Decimal(0), 0
    for seq in sorted(by_seq):
        regressions += by_seq[seq] < highest
        highest = max(highest, by_seq[seq])
    return regressions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--steady-every", type=int, default=4, help="every N-th kill past the warm-up (0: none)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = run(args.cycles, args.seed, steady_every=args.steady_every)
    lost = figures["live_samples_lost"]
    print(
        f"{figures['cycles']} kill -9 cycles ({figures['outage_kills']} during a broker outage,"
        f" {figures['steady_kills']} past the warm-up):"
        f" {figures['register_regressions']} register regressions on disk,"
        f" {figures['published_regressions']} in published state,"
        f" {figures['integrity_failures']} integrity failures;"
        f" spilled messages {figures['spilled_arrived']}/{figures['spilled_messages']} arrived;"
        f" live samples lost per kill min/median/max {lost[0]}/{lost[len(lost) // 2]}/{lost[-1]}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
