"""Wired M-Bus decoding: frames per second, ours vs pyMeterBus, on the same frames, one run.

Run: ``.venv/bin/python -m bench.mbus_decode [--rounds N]``

The frames are the RSP_UD frames of tests/fixtures/vectors/mbus.json (libmbus's test frames)
that both decoders accept; the ones either refuses are listed and left out. "Decoded" means
the same work on both sides: the frame checked and parsed, and every record's value and unit
computed (pyMeterBus computes values lazily, so the bench reads them all).

pyMeterBus lives in a throwaway virtualenv, bench/.venv (created on first use with pip; never
in the project's .venv), and runs in its own process; each side times only its decode loop.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

from gateway.errors import FrameError
from modules.codecs.mbus import MbusDecoder

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "fixtures" / "vectors" / "mbus.json"
PEER_VENV = ROOT / "bench" / ".venv"
PEER_PACKAGE = "pyMeterBus"

# Runs inside bench/.venv: which frames pyMeterBus decodes, and how fast.
PEER_SCRIPT = """
import json, sys, time
import meterbus
frames = [bytes.fromhex(h) for h in json.load(sys.stdin)["frames"]]
rounds = int(sys.argv[1])
def decode(data):
    telegram = meterbus.load(data)
    return [(record.value, record.unit) for record in telegram.records]
accepted = []
for index, data in enumerate(frames):
    try:
        decode(data)
        accepted.append(index)
    except Exception as err:
        pass
if len(sys.argv) > 2:
    frames = [frames[i] for i in json.loads(sys.argv[2])]
    start = time.perf_counter()
    for _ in range(rounds):
        for data in frames:
            decode(data)
    elapsed = time.perf_counter() - start
else:
    elapsed = 0.0
print(json.dumps({"accepted": accepted, "elapsed": elapsed,
                  "version": getattr(meterbus, "__version__", "?")}))
"""


def main(argv: list[str] | None = None) -> int:
    """Print frames per second of both decoders and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="passes over the frames")
    args = parser.parse_args(argv)
    items = [item for item in json.loads(VECTORS.read_text()) if item["kind"] == "rsp_ud"]
    frames = [bytes.fromhex(item["hex"]) for item in items]
    ours_ok = [index for index, data in enumerate(frames) if _ours_accepts(data)]
    peer = _peer_python()
    if peer is None:
        _report_ours_only(frames, ours_ok, args.rounds)
        return 1
    probe = _run_peer(peer, frames, args.rounds, None)
    common = [index for index in ours_ok if index in set(probe["accepted"])]
    left_out = [items[i]["name"] for i in range(len(items)) if i not in common]
    print(f"frames: {len(common)} of {len(items)} RSP_UD vectors decoded by both")
    if left_out:
        print(f"left out (refused by one side): {', '.join(left_out)}")
    subset = [frames[i] for i in common]
    ours_s = _time_ours(subset, args.rounds)
    peer_s = _run_peer(peer, frames, args.rounds, common)["elapsed"]
    total = len(subset) * args.rounds
    ours_fps, peer_fps = total / ours_s, total / peer_s
    print(f"meter-gateway  {ours_fps:10.0f} frames/s  ({total} decodes in {ours_s:.2f} s)")
    print(f"pyMeterBus     {peer_fps:10.0f} frames/s  ({total} decodes in {peer_s:.2f} s)")
    print(f"ratio          {ours_fps / peer_fps:10.2f}x  (ours / pyMeterBus)")
    return 0


def _ours_accepts(data: bytes) -> bool:
    try:
        MbusDecoder().decode(data)
    except FrameError:
        return False
    return True


def _time_ours(frames: list[bytes], rounds: int) -> float:
    decoder = MbusDecoder()
    for data in frames:  # warm-up: imports, caches
        decoder.decode(data)
    start = time.perf_counter()
    for _ in range(rounds):
        for data in frames:
            decoder.decode(data)
    return time.perf_counter() - start


def _peer_python() -> Path | None:
    """bench/.venv's python with pyMeterBus, created on first use; None if it cannot be."""
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import meterbus"]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return python
    print(f"setting up {PEER_VENV} with {PEER_PACKAGE} (pip) ...", file=sys.stderr)
    try:
        venv.create(PEER_VENV, with_pip=True, clear=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", PEER_PACKAGE],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        print(f"{PEER_PACKAGE} could not be installed: {err} {detail.decode()[-300:]}")
        return None
    return python


def _run_peer(
    python: Path, frames: list[bytes], rounds: int, subset: list[int] | None
) -> dict[str, Any]:
    command = [str(python), "-c", PEER_SCRIPT, str(rounds)]
    if subset is not None:
        command.append(json.dumps(subset))
    result = subprocess.run(
        command,
        input=json.dumps({"frames": [data.hex() for data in frames]}).encode(),
        capture_output=True,
        check=True,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def _report_ours_only(frames: list[bytes], ours_ok: list[int], rounds: int) -> None:
    subset = [frames[i] for i in ours_ok]
    seconds = _time_ours(subset, rounds)
    print(f"meter-gateway  {len(subset) * rounds / seconds:10.0f} frames/s (no peer to compare)")


if __name__ == "__main__":
    sys.exit(main())
