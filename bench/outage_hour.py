"""A one-hour broker outage, compressed: nothing lost, order kept.

Run: ``.venv/bin/python -m bench.outage_hour [--meter-hours 1] [--json OUT]``

``meter-gateway run`` with a sim meter at x60 (one hour of meter time per real minute) publishes
to a persistent mosquitto on loopback with a persistent subscriber. The broker is stopped for
the outage, the gateway spills what it cannot deliver, then the broker comes back, the gateway
stops in order, and every state message from the first one seen to the last one queued must
have arrived exactly once in sequence order (``tests/test_mqtt_e2e.py``'s check).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peers import SCRATCH
from tests.support.mqtt import Collector, persistent_broker
from tests.support.processes import gateway
from tests.test_mqtt_e2e import SPEED, STATE, check_states, final_seq, write_config


def run(meter_hours: float) -> dict[str, Any]:
    """One outage of ``meter_hours`` of meter time; returns what arrived."""
    with tempfile.TemporaryDirectory(prefix="bench-outage-", dir=SCRATCH) as folder:
        work = Path(folder)
        broker = persistent_broker(work)
        broker.start()
        subscriber = Collector(broker.port, (STATE,), client_id="outage", persistent=True)
        config = write_config(work, broker.port)
        outage_s = meter_hours * 3600 / SPEED
        try:
            with gateway(config, log=work / "gateway.log"):
                subscriber.wait_for(STATE, 3, 60)
                broker.stop()
                time.sleep(outage_s)
                broker.start()
                before = len(subscriber.on(STATE))
                subscriber.wait(lambda ms: len(ms) > before + outage_s * 0.9, 120)
            received = check_states(subscriber.on(STATE), final_seq(work))
            spilled = _spilled(work / "gateway.log")
        finally:
            subscriber.close()
            broker.stop()
    return {
        "meter_hours": meter_hours,
        "outage_wall_s": outage_s,
        "states_in_order": received,
        "spill_lines": spilled,
    }


def _spilled(log: Path) -> int:
    return sum("messages to disk" in line for line in log.read_text().splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meter-hours", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = run(args.meter_hours)
    print(
        f"{figures['meter_hours']:g} h broker outage ({figures['outage_wall_s']:.0f} s at x60):"
        f" {figures['states_in_order']} state messages, every one from the first to the last"
        f" queued arrived, in order ({figures['spill_lines']} spills)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
