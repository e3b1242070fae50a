"""The peers every codec bench compares against, in one throwaway virtualenv: bench/.venv.

It is made on first use with the stdlib ``venv`` and filled from PyPI with pip, never in the
project's .venv (the peers pull in pycryptodome, lark, attrs... that the gateway must not
depend on). Versions are pinned so that figures stay comparable from run to run; a pin that
cannot be had falls back to the newest release, and the version used is reported.
``BENCH_NO_INSTALL=1`` (or ``install=False``) uses only what is already there.

Peers run in their own process (bench/peer_side.py, one JSON job in, one JSON answer out), and
each side times only its own decode loop.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "bench" / ".venv"
PYTHON = VENV / "bin" / "python"
SIDE = ROOT / "bench" / "peer_side.py"
NO_INSTALL_ENV = "BENCH_NO_INSTALL"
# Stores and brokers of the benches live here, on the disk the repository is on: /tmp may be a
# tmpfs, where fsync costs nothing and no byte reaches a disk.
SCRATCH = ROOT

# peer name (as bench/peer_side.py knows it) -> (import name, pip requirement)
PACKAGES: dict[str, tuple[str, str]] = {
    "pyMeterBus": ("meterbus", "pyMeterBus==0.8.5"),
    "pymbusparser": ("pymbusparser", "pymbusparser==0.5.3"),
    "dlms-cosem": ("dlms_cosem", "dlms-cosem==21.3.2"),
    "dsmr_parser": ("dsmr_parser", "dsmr-parser==1.11.2"),
    "iec62056": ("iec62056", "iec62056==0.5.1"),
    "iec62056-21": ("iec62056_21", "iec62056-21==0.0.2"),
    "PyKMP": ("pykmp", "pykmp==0.0.2"),
}
# Peers that take text (DSMR, IEC 62056-21 readouts); the others get hex in the job.
TEXT_PEERS = frozenset({"dsmr_parser", "iec62056", "iec62056-21"})
PEER_TIMEOUT_S = 600.0


def _importable(module: str) -> bool:
    if not PYTHON.exists():
        return False
    probe = [str(PYTHON), "-c", f"import {module}"]
    return subprocess.run(probe, check=False, capture_output=True).returncode == 0


def ensure(peers: Sequence[str], *, install: bool | None = None) -> dict[str, bool]:
    """Which of ``peers`` can run; installs the missing ones unless told not to."""
    if install is None:
        install = os.environ.get(NO_INSTALL_ENV, "") in ("", "0")
    missing = [peer for peer in peers if not _importable(PACKAGES[peer][0])]
    if missing and install:
        print(f"bench/.venv: installing {', '.join(missing)} (pip) ...", file=sys.stderr)
        try:
            if not PYTHON.exists():
                venv.create(VENV, with_pip=True, clear=True)
            for peer in missing:
                _pip_install(PACKAGES[peer][1])
        except (OSError, subprocess.CalledProcessError) as err:
            print(f"bench/.venv could not be made: {err}", file=sys.stderr)
    return {peer: _importable(PACKAGES[peer][0]) for peer in peers}


class PeerMissing(RuntimeError):
    """A peer the bench compares against could not be installed: no figure stands in for it."""


def require(peers: Sequence[str], *, install: bool | None = None) -> None:
    """``ensure``, and PeerMissing naming each peer that is still missing: a comparison with a
    peer left out would read as met."""
    ready = ensure(peers, install=install)
    missing = [f"{peer} ({PACKAGES[peer][1]})" for peer in peers if not ready[peer]]
    if missing:
        raise PeerMissing(
            f"bench/.venv lacks {', '.join(missing)}: it installs from PyPI with pip on first "
            f"use (not with {NO_INSTALL_ENV}=1); run `make bench` where PyPI can be reached"
        )


def _pip_install(requirement: str) -> None:
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, requirement], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        name = requirement.split("==", maxsplit=1)[0]
        print(f"{requirement} not available, trying the newest {name}", file=sys.stderr)
        done = subprocess.run([*pip, name], check=False, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name} could not be installed: {done.stderr[-300:]}", file=sys.stderr)


def run(
    peer: str,
    inputs: Sequence[dict[str, Any]],
    *,
    subset: Sequence[int] | None = None,
    rounds: int | None = None,
    seconds: float | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One job for bench/peer_side.py: which inputs ``peer`` accepts and, for ``subset``, how
    long it took (``elapsed``) for how many decodes (``decodes``)."""
    job = {
        "peer": peer,
        "inputs": list(inputs),
        "subset": list(subset) if subset is not None else None,
        "rounds": rounds,
        "seconds": seconds,
        "options": options or {},
    }
    done = subprocess.run(
        [str(PYTHON), str(SIDE)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
        timeout=PEER_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{peer} failed: {done.stderr.strip()[-500:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")


def instructions(command: Sequence[str], *, stdin: str | None = None) -> int:
    """The instructions ``command`` executes, counted by callgrind: unlike seconds, the same
    however busy the host is."""
    done = subprocess.run(
        [*CALLGRIND, *command],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=PEER_TIMEOUT_S,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind: {done.stderr.strip()[-500:]}")
    return int(found.group(1))


def peer_instructions(
    peer: str,
    inputs: Sequence[dict[str, Any]],
    subset: Sequence[int],
    rounds: tuple[int, int],
    options: dict[str, Any] | None = None,
) -> float:
    """Instructions per decode of ``peer`` over ``subset``: the difference of two runs of
    ``rounds`` passes each, so its start-up and the acceptance pass cancel out."""
    counts = []
    for passes in rounds:
        job = {
            "peer": peer,
            "inputs": list(inputs),
            "subset": list(subset),
            "rounds": passes,
            "seconds": None,
            "options": options or {},
        }
        counts.append(instructions([str(PYTHON), str(SIDE)], stdin=json.dumps(job)))
    return (counts[1] - counts[0]) / ((rounds[1] - rounds[0]) * len(subset))


def timed(
    calls: Sequence[Callable[[], object]],
    *,
    rounds: int | None = None,
    seconds: float | None = None,
) -> tuple[int, float]:
    """Our side, the same loop as bench/peer_side.py's: (decodes, elapsed seconds) over whole
    passes, for ``rounds`` passes or until ``seconds`` have gone; one warm-up pass first."""
    for call in calls:
        call()
    decodes = 0
    start = time.perf_counter()
    while True:
        for call in calls:
            call()
        decodes += len(calls)
        elapsed = time.perf_counter() - start
        if rounds is not None and decodes >= rounds * len(calls):
            return decodes, elapsed
        if seconds is not None and elapsed >= seconds:
            return decodes, elapsed
        if rounds is None and seconds is None:
            return decodes, elapsed
