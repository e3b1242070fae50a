"""Wired M-Bus decoding: frames per second, ours vs pyMeterBus, on the same frames, one run.

Run: ``.venv/bin/python -m bench.mbus_decode [--rounds N]``

The frames are the RSP_UD frames of tests/fixtures/vectors/mbus.json (libmbus's test frames)
that both decoders accept; the ones either refuses are listed and left out. "Decoded" means
the same work on both sides: the frame checked and parsed, and every record's value and unit
computed (pyMeterBus computes values lazily, so the bench reads them all).

pyMeterBus lives in the bench's throwaway virtualenv (bench/peers.py) and runs in its own
process (bench/peer_side.py); each side times only its decode loop.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from bench import peers
from modules.codecs.errors import FrameError
from modules.codecs.mbus.frames import MbusDecoder

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "vectors" / "mbus.json"
PEER = "pyMeterBus"


def measure(rounds: int, *, install: bool | None = None) -> dict[str, Any]:
    """Frames per second of both decoders on the RSP_UD frames both accept."""
    items = [item for item in json.loads(VECTORS.read_text()) if item["kind"] == "rsp_ud"]
    frames = [bytes.fromhex(item["hex"]) for item in items]
    ours_ok = [index for index, data in enumerate(frames) if _ours_accepts(data)]
    figures: dict[str, Any] = {"frames": len(items), "ours_accepted": len(ours_ok)}
    peers.require([PEER], install=install)
    job = [{"data": data.hex()} for data in frames]
    probe = peers.run(PEER, job)
    common = [index for index in ours_ok if index in set(probe["accepted"])]
    decodes, ours_s = _time_ours([frames[i] for i in common], rounds)
    timed = peers.run(PEER, job, subset=common, rounds=rounds)
    return {
        **figures,
        "common": len(common),
        "left_out": [items[i]["name"] for i in range(len(items)) if i not in common],
        "ours_fps": decodes / ours_s,
        "peer_fps": timed["decodes"] / timed["elapsed"],
        "ratio": decodes / ours_s / (timed["decodes"] / timed["elapsed"]),
        "peer": f"{PEER} {probe['version']}",
    }


def main(argv: list[str] | None = None) -> int:
    """Print frames per second of both decoders and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="passes over the frames")
    args = parser.parse_args(argv)
    figures = measure(args.rounds)
    print(f"frames: {figures['common']} of {figures['frames']} RSP_UD vectors decoded by both")
    if figures["left_out"]:
        print(f"left out (refused by one side): {', '.join(figures['left_out'])}")
    print(f"meter-gateway  {figures['ours_fps']:10.0f} frames/s")
    print(f"pyMeterBus     {figures['peer_fps']:10.0f} frames/s  ({figures['peer']})")
    print(f"ratio          {figures['ratio']:10.2f}x  (ours / pyMeterBus)")
    return 0


def _ours_accepts(data: bytes) -> bool:
    try:
        MbusDecoder().decode(data, key=None, auth_key=None)
    except FrameError:
        return False
    return True


def _time_ours(frames: list[bytes], rounds: int) -> tuple[int, float]:
    decoder = MbusDecoder()
    calls = [partial(decoder.decode, data, key=None, auth_key=None) for data in frames]
    return peers.timed(calls, rounds=rounds)


if __name__ == "__main__":
    sys.exit(main())
