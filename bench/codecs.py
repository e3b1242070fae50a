"""Codec throughput per protocol on the real vectors: ours vs each Python peer, same inputs.

Run: ``.venv/bin/python -m bench.codecs [--seconds S] [--protocol P ...] [--instructions]
[--json OUT]``

For each protocol, the inputs are every frame of tests/fixtures/vectors/ for it (bench/vectors.py),
decoded with ``gateway.registry.decoder(protocol)`` as ``meter-gateway decode`` does (one decoder
instance, so learned wM-Bus formats carry over). Against each peer, both sides decode exactly the
inputs that both accept, in the same order, in whole passes for about ``--seconds`` each,
REPEATS times in turn, the best pass of each side counting; the peer runs in bench/.venv
(bench/peers.py), and a peer that cannot be installed stops the bench (PeerMissing). "ours
(all)" is our rate over every input we accept, which is often more than any peer accepts.
GOALS are issue 22's ratios; each row says whether it is met. With ``--instructions`` both
sides are also run under callgrind and the ratio of instructions per decode is given: the
host's load changes seconds from pass to pass, never instruction counts.

Peers: wired M-Bus pyMeterBus and pymbusparser (Rust m-bus-parser bindings); wM-Bus the same two
(pyMeterBus decrypts only TPL mode 5, pymbusparser no ELL AES-CTR); KMP PyKMP; DLMS dlms-cosem;
DSMR dsmr_parser and iec62056 (a lark grammar); IEC 62056-21 pwitab's iec62056-21 and iec62056.
Z-Wave has no Python peer that decodes Serial API frames (zwave-js is JavaScript).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench import peers
from bench.vectors import PROTOCOLS, Input, inputs
from gateway import registry
from modules.codecs.errors import FrameError
from modules.codecs.records import Decoder

# Issue 22's goals: our frames/s over the peer's on the inputs both accept.
GOALS: dict[tuple[str, str], float] = {
    ("mbus", "pymbusparser"): 1.0,
    ("mbus", "pyMeterBus"): 10.0,
    ("wmbus", "pymbusparser"): 1.0,
    ("kmp", "PyKMP"): 3.0,
    ("dlms", "dlms-cosem"): 5.0,
    ("dsmr", "dsmr_parser"): 5.0,
    ("iec62056-21", "iec62056-21"): 2.0,
}
# Each side is timed this many times, alternating, and its best pass counts: on a shared host
# other work only ever slows a side down, so the best of several is the least disturbed.
REPEATS = 3
PEERS: dict[str, tuple[str, ...]] = {
    "mbus": ("pyMeterBus", "pymbusparser"),
    "wmbus": ("pymbusparser", "pyMeterBus"),
    "kmp": ("PyKMP",),
    "dlms": ("dlms-cosem",),
    "dsmr": ("dsmr_parser", "iec62056"),
    "iec62056-21": ("iec62056-21", "iec62056"),
    "zwave": (),
}


def _calls(decoder: Decoder, items: Sequence[Input]) -> list[Callable[[], object]]:
    return [partial(decoder.decode, i.data, key=i.key, auth_key=i.auth_key) for i in items]


def _accepted(decoder: Decoder, items: Sequence[Input]) -> list[int]:
    """Indexes we decode, trying them in order on one decoder (learned state carries over)."""
    good = []
    for index, item in enumerate(items):
        try:
            decoder.decode(item.data, key=item.key, auth_key=item.auth_key)
        except FrameError:
            continue
        good.append(index)
    return good


# Passes over the common inputs for the instruction counts (the difference of the two runs).
COUNT_PASSES = (2, 12)
_OURS_WORK = """
import json, sys
from bench.codecs import _accepted, _calls
from bench.vectors import inputs
from gateway import registry
protocol, passes, common = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
items = inputs(protocol)
decoder = registry.decoder(protocol)
_accepted(decoder, items)
calls = _calls(decoder, [items[i] for i in common])
for _ in range(passes):
    for call in calls:
        call()
"""


def ours_instructions(protocol: str, common: Sequence[int]) -> float:
    """Our instructions per decode over ``common`` (as ``peers.peer_instructions``)."""
    counts = [
        peers.instructions(
            [sys.executable, "-c", _OURS_WORK, protocol, str(passes), json.dumps(list(common))]
        )
        for passes in COUNT_PASSES
    ]
    return (counts[1] - counts[0]) / ((COUNT_PASSES[1] - COUNT_PASSES[0]) * len(common))


def measure(
    protocol: str,
    seconds: float,
    *,
    install: bool | None = None,
    with_peers: bool = True,
    count: bool = False,
) -> dict[str, Any]:
    """One protocol's figures: our rate on everything we accept, then one row per peer."""
    items = inputs(protocol)
    decoder = registry.decoder(protocol)
    ours_ok = _accepted(decoder, items)
    decodes, elapsed = peers.timed(_calls(decoder, [items[i] for i in ours_ok]), seconds=seconds)
    result: dict[str, Any] = {
        "protocol": protocol,
        "inputs": len(items),
        "ours_accepted": len(ours_ok),
        "ours_fps": decodes / elapsed if elapsed else 0.0,
        "peers": {},
    }
    if count:
        result["ours_ir"] = ours_instructions(protocol, ours_ok)
    wanted = PEERS[protocol] if with_peers else ()
    if wanted:
        peers.require(wanted, install=install)
    for peer in wanted:
        form = "text" if peer in peers.TEXT_PEERS else "hex"
        job_inputs = [item.peer_form(form) for item in items]
        probe = peers.run(peer, job_inputs)
        common = [i for i in ours_ok if i in set(probe["accepted"])]
        row: dict[str, Any] = {
            "version": probe["version"],
            "accepted": len(probe["accepted"]),
            "common": len(common),
            "refusals": probe["errors"],
        }
        if common:
            # Our decoder again from scratch, taught by one pass over every input first.
            fresh = registry.decoder(protocol)
            _accepted(fresh, items)
            calls = _calls(fresh, [items[i] for i in common])
            peer_fps = ours_fps = 0.0
            for _ in range(REPEATS):
                timed = peers.run(peer, job_inputs, subset=common, seconds=seconds)
                peer_fps = max(peer_fps, timed["decodes"] / timed["elapsed"])
                ours, ours_s = peers.timed(calls, seconds=seconds)
                ours_fps = max(ours_fps, ours / ours_s)
            row.update(ours_fps=ours_fps, peer_fps=peer_fps, ratio=ours_fps / peer_fps)
            if count:
                ours_ir = ours_instructions(protocol, common)
                peer_ir = peers.peer_instructions(peer, job_inputs, common, COUNT_PASSES)
                row.update(ours_ir=ours_ir, peer_ir=peer_ir, ratio_ir=peer_ir / ours_ir)
        goal = GOALS.get((protocol, peer))
        if goal is not None:
            row["goal"] = goal
            row["goal_met"] = bool(row.get("ratio", 0.0) >= goal)
        result["peers"][peer] = row
    return result


def print_table(results: Sequence[dict[str, Any]]) -> None:
    """A plain-text summary."""
    header = f"{'protocol':12} {'inputs':>6} {'ours ok':>7} {'ours/s':>9}"
    print(f"{header}  peers (common inputs: ours/s vs peer/s)")
    for r in results:
        cells = []
        for peer, row in r["peers"].items():
            if "ratio" in row:
                goal = f" (goal {row['goal']:g}x)" if "goal" in row else ""
                counted = f", by instructions {row['ratio_ir']:.2f}x" if "ratio_ir" in row else ""
                cells.append(
                    f"{peer} {row['common']}: {row['ours_fps']:,.0f} vs {row['peer_fps']:,.0f}"
                    f" = {row['ratio']:.2f}x{counted}{goal}"
                )
            else:
                cells.append(f"{peer}: {row.get('error') or 'no common input'}")
        counted = f" ({r['ours_ir']:,.0f} instructions each)" if "ours_ir" in r else ""
        print(
            f"{r['protocol']:12} {r['inputs']:6} {r['ours_accepted']:7} {r['ours_fps']:9,.0f}  "
            + ("; ".join(cells) or "no Python peer")
            + counted
        )


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per side and comparison")
    parser.add_argument("--protocol", action="append", choices=PROTOCOLS)
    parser.add_argument("--no-peers", action="store_true", help="ours only")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind)"
    )
    args = parser.parse_args(argv)
    results = [
        measure(p, args.seconds, with_peers=not args.no_peers, count=args.instructions)
        for p in args.protocol or PROTOCOLS
    ]
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
