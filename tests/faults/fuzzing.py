"""`make fuzz`: the codecs' public decoders under a fuzzer for a set time, with a report.

Each protocol runs in a process of its own (atheris/libFuzzer can start only once per process),
seeded from the vectors in tests/fixtures/vectors. With atheris installed the search is
coverage-guided (libFuzzer mutations steered by the Python lines each input reaches); without it
a plain mutation loop over the same seeds runs instead and the report says so.

An input is fine when the decoder returns or raises the codecs' own error (``CodecError`` and its
subclasses); anything else is a *foreign* exception, a defect. The report gives, per codec, how
many inputs were tried, the foreign exceptions (type, message, the input as hex) and the slowest
input with its time.

    python -m tests.faults.fuzzing --seconds 360            # every codec, two at a time
    python -m tests.faults.fuzzing --seconds 5 --engine mutation kmp
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway import registry
from modules.codecs.errors import CodecError
from modules.codecs.records import Decoder

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "vectors"
# Which vector files seed which decoder (the registry's protocol names).
SEED_FILES: dict[str, tuple[str, ...]] = {
    "mbus": ("mbus.json",),
    "wmbus": ("wmbus.json", "wmbus_kamstrup_reencrypted.json"),
    "kmp": ("kmp.json",),
    "dlms": ("dlms.json",),
    "dsmr": ("dsmr.json",),
    "iec62056-21": ("iec62056_21.json",),
    "zwave": ("zwave.json",),
}
# The goal per codec in one `make fuzz` run; the report says whether it was reached.
GOAL_INPUTS = 1_000_000
# Inputs longer than this add nothing a shorter one cannot reach and only slow the search.
MAX_INPUT_BYTES = 4096
KEPT_FOREIGN = 5
# A codec that reached the goal stops after this long; the others go on to --seconds.
MIN_SECONDS = 60.0


def done(inputs: int, elapsed_s: float, seconds: float) -> bool:
    """Time is up: the whole budget, or the goal reached and the minimum time spent."""
    return elapsed_s >= seconds or (
        inputs >= GOAL_INPUTS and elapsed_s >= min(seconds, MIN_SECONDS)
    )


@dataclass
class Report:
    """What one codec's run found."""

    protocol: str
    engine: str
    seconds: float = 0.0
    inputs: int = 0
    foreign: int = 0
    foreign_examples: list[dict[str, str]] = field(default_factory=list)
    slowest_s: float = 0.0
    slowest_hex: str = ""


def seeds(protocol: str) -> list[bytes]:
    """Real frames for ``protocol`` from the vector files (hex fields, or raw text)."""
    found: list[bytes] = []
    text_protocol = registry.decoder(protocol).input_kind == "text"
    for name in SEED_FILES[protocol]:
        for item in json.loads((VECTORS / name).read_text()):
            found.extend(_frames_in(item, text_protocol))
    return sorted(set(found)) or [b""]


def _frames_in(node: object, text_protocol: bool, key: str = "") -> Iterator[bytes]:
    if isinstance(node, dict):
        for child_key, child in node.items():
            if child_key not in ("expected", "frame", "source", "note", "comment"):
                yield from _frames_in(child, text_protocol, str(child_key))
    elif isinstance(node, list):
        for child in node:
            yield from _frames_in(child, text_protocol, key)
    elif isinstance(node, str):
        if text_protocol and key in ("input", "text"):
            yield node.encode("latin-1", "replace")
        elif not text_protocol and (key in ("hex", "input") or key.endswith("_hex")):
            try:
                yield bytes.fromhex(node)
            except ValueError:
                return


def wmbus_key() -> bytes | None:
    """One AES key from the wM-Bus vectors, so encrypted telegrams reach the decryption paths."""
    for item in json.loads((VECTORS / "wmbus_kamstrup_reencrypted.json").read_text()):
        if item.get("key"):
            return bytes.fromhex(item["key"])
    return None


class Target:
    """One decoder and the bookkeeping of every input it is given."""

    def __init__(self, protocol: str, engine: str) -> None:
        self.protocol = protocol
        self.decoder: Decoder = registry.decoder(protocol)
        self.key = wmbus_key() if protocol == "wmbus" else None
        self.report = Report(protocol, engine)

    def __call__(self, data: bytes) -> None:
        data = data[:MAX_INPUT_BYTES]
        started = time.perf_counter()
        try:
            self.decoder.decode(data, key=self.key, auth_key=None)
        except CodecError:
            pass
        except Exception as err:
            self._foreign(data, err)
        finally:
            spent = time.perf_counter() - started
            self.report.inputs += 1
            # A fresh decoder now and then: learned state (wM-Bus compact formats) must not grow
            # without bound across a million inputs, and a fresh one is the common case.
            if self.report.inputs % 10_000 == 0:
                self.decoder = registry.decoder(self.protocol)
            if spent > self.report.slowest_s:
                self.report.slowest_s = spent
                self.report.slowest_hex = data.hex()

    def _foreign(self, data: bytes, err: Exception) -> None:
        self.report.foreign += 1
        if len(self.report.foreign_examples) < KEPT_FOREIGN:
            where = traceback.extract_tb(err.__traceback__)[-1]
            self.report.foreign_examples.append(
                {
                    "error": f"{type(err).__name__}: {err}"[:300],
                    "at": f"{where.filename}:{where.lineno}",
                    "input_hex": data.hex(),
                }
            )


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """1 to 8 random edits: bit flips, byte sets, cuts, insertions, splices with another seed."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:
            out[at % len(out)] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif kind == 2:
            del out[at:]
        elif kind == 3:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == 4 and out:
            del out[at : at + rng.randint(1, 8)]
        else:
            other = rng.choice(pool)
            out[at:] = other[rng.randrange(len(other) + 1) :]
    return bytes(out)


def run_mutation(protocol: str, seconds: float, seed: int = 0) -> Report:
    """The fallback: random mutations of the seeds (not coverage-guided) for ``seconds``."""
    target = Target(protocol, "mutation")
    pool = seeds(protocol)
    rng = random.Random(seed)
    started = time.monotonic()
    for frame in pool:
        target(frame)
    while not done(target.report.inputs, time.monotonic() - started, seconds):
        for _ in range(200):
            target(mutate(rng, rng.choice(pool), pool))
    target.report.seconds = round(time.monotonic() - started, 1)
    return target.report


def run_atheris(protocol: str, seconds: float, out: Path) -> None:  # pragma: no cover - child
    """libFuzzer through atheris in this process; writes the report to ``out`` when time is up."""
    import atheris  # noqa: PLC0415 - optional, installed by `make fuzz`

    with atheris.instrument_imports():
        # Instrument the codecs (and their helpers) so libFuzzer sees which lines an input reached.
        target = Target(protocol, "atheris")
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{protocol}-"))
    for number, frame in enumerate(seeds(protocol)):
        (corpus / f"seed-{number}").write_bytes(frame)
    started = time.monotonic()

    def one_input(data: bytes) -> None:
        target(data)
        elapsed = time.monotonic() - started
        if target.report.inputs % 1000 == 0 and done(target.report.inputs, elapsed, seconds):
            target.report.seconds = round(time.monotonic() - started, 1)
            out.write_text(json.dumps(asdict(target.report)))
            os._exit(0)  # libFuzzer has no clean stop from inside an input; the report is out

    atheris.Setup(
        [sys.argv[0], str(corpus), f"-max_len={MAX_INPUT_BYTES}", "-print_final_stats=0"],
        one_input,
    )
    atheris.Fuzz()


def atheris_available() -> bool:
    """True when atheris imports in this interpreter."""
    try:
        import atheris  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _child(protocol: str, seconds: float, engine: str) -> Report:
    """Run one codec in a fresh interpreter and read back its report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "tests.faults.fuzzing", "--child", str(out)]
        command += ["--seconds", str(seconds), "--engine", engine, protocol]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        if not out.exists():
            report = Report(protocol, engine)
            report.foreign = 1
            tail = (done.stderr or done.stdout)[-600:]
            report.foreign_examples.append(
                {"error": f"fuzzer died: {tail}", "at": "", "input_hex": ""}
            )
            return report
        return Report(**json.loads(out.read_text()))


def print_table(reports: list[Report], write: Callable[[str], Any] = print) -> None:
    """The figures: inputs per codec, foreign exceptions, slowest input."""
    write(
        f"{'codec':<12} {'engine':<9} {'seconds':>8} {'inputs':>11} {'goal 1M':>8} "
        f"{'foreign':>8} {'slowest ms':>11}"
    )
    for r in reports:
        goal = "yes" if r.inputs >= GOAL_INPUTS else "no"
        write(
            f"{r.protocol:<12} {r.engine:<9} {r.seconds:>8.1f} {r.inputs:>11,} {goal:>8} "
            f"{r.foreign:>8} {r.slowest_s * 1000:>11.2f}"
        )
    for r in reports:
        for example in r.foreign_examples:
            write(f"FOREIGN {r.protocol}: {example['error']} at {example['at']}")
            write(f"        input {example['input_hex'][:200]}")
        if r.slowest_hex:
            write(
                f"slowest {r.protocol} input ({len(r.slowest_hex) // 2} bytes): "
                f"{r.slowest_hex[:160]}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.fuzzing")
    parser.add_argument("protocols", nargs="*", default=sorted(SEED_FILES))
    parser.add_argument(
        "--seconds",
        type=float,
        default=360.0,
        help=f"per codec at most; one past the goal of {GOAL_INPUTS:,} inputs stops after"
        f" {MIN_SECONDS:.0f} s",
    )
    parser.add_argument("--jobs", type=int, default=2, help="codecs fuzzed at once")
    parser.add_argument("--engine", choices=("auto", "atheris", "mutation"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if atheris_available() else "mutation"
        if engine == "mutation":
            print(
                "atheris is not installed here: falling back to the built-in mutation fuzzer "
                "(random edits of the seed frames, NOT coverage-guided)"
            )
    if args.child is not None:
        (protocol,) = args.protocols
        if engine == "atheris":
            run_atheris(protocol, args.seconds, args.child)
        report = run_mutation(protocol, args.seconds)
        args.child.write_text(json.dumps(asdict(report)))
        return 0
    unknown = sorted(set(args.protocols) - set(SEED_FILES))
    if unknown:
        parser.error(f"unknown codec(s): {', '.join(unknown)}")
    print(
        f"fuzzing {', '.join(args.protocols)} with {engine}, {args.jobs} at a time, each until"
        f" {GOAL_INPUTS:,} inputs (at least {MIN_SECONDS:.0f} s) or {args.seconds:.0f} s"
    )
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        reports = list(pool.map(lambda p: _child(p, args.seconds, engine), args.protocols))
    print_table(reports)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=1))
    return 1 if any(r.foreign for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
