"""wM-Bus decoding speed: telegrams per second on one core, against the radio channel.

Run: ``.venv/bin/python -m bench.wmbus_decode [--seconds S]``

Inputs (all built here, the same bytes for every decoder):
- omnipower-ell:  1,000 Omnipower-like telegrams, ELL (CI 8D) with AES-128-CTR, 7 compact
                  frames to 1 full frame, as Kamstrup meters send them;
- oms-mode5:      the same four records in OMS TPL security mode 5 (AES-128-CBC);
- plain:          the same records unencrypted;
- kamstrup-real:  the 22 re-encrypted real Kamstrup telegrams of the test vectors.

Each set is decoded for ``--seconds`` with ``decode_telegram`` (codec only) and through the
module's ``Router`` (CRC strip, duplicate check, address lookup, decode, readings), in one
process, one core. The channel: T1 is 100 kchip/s with 3-out-of-6 coding (12 chips a byte)
after a 38-chip preamble, a 10-chip sync word and a 2-chip postamble (EN 13757-4 table 7/8);
C1 is 100 kchip/s NRZ (8 chips a byte) after 32 chips of preamble and 32 of sync. A channel
shared by meters that transmit when they like (pure ALOHA) carries at most 1/(2e) = 18.4 % of
its raw capacity; both figures are printed.

Python peers that decode the same telegrams: ``pymbusparser`` (Python bindings of the Rust
m-bus-parser) decrypts TPL mode 5 but refuses ELL AES-CTR ("not currently supported");
``pywmbus`` parses headers without any decryption; ``pywirelessmbus`` drives an iM871A and
leaves decryption to the stick; pyMeterBus cannot decrypt ELL or CTR at all. pymbusparser is
installed into the bench's own virtualenv (bench/peers.py) and timed on the same sets in its
own process.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import peers
from modules.codecs.wmbus.compact import FormatCache
from modules.codecs.wmbus.layers import parse_link
from modules.codecs.wmbus.telegrams import decode_telegram
from modules.codecs.wmbus.tx import build_telegram, omnipower_records
from modules.wmbus.emulator import DEMO_KEY, OmnipowerTransmitter
from modules.wmbus.pipeline import MeterEntry, Router, readings
from modules.wmbus.receivers import Heard
from modules.wmbus.receivers.cul import format_a_length

ROOT = Path(__file__).resolve().parents[1]
CHIP_RATE = 100_000  # chips per second, T1 and C1 (EN 13757-4)
T1_OVERHEAD_CHIPS = 38 + 10 + 2
C1_OVERHEAD_CHIPS = 32 + 32
ALOHA_MAX = 1 / (2 * math.e)


def telegram_sets() -> dict[str, list[bytes]]:
    """The inputs, built deterministically."""
    transmitter = OmnipowerTransmitter(key=DEMO_KEY)
    ell = [transmitter.telegram(16.0) for _ in range(1000)]
    mode5, plain = [], []
    for n in range(1000):
        records = omnipower_records(7_940_000 + n * 10, 0, 300 + n % 50, 0)
        mode5.append(
            build_telegram(records, security="tpl_mode5", key=DEMO_KEY, access_number=n & 0xFF)
        )
        plain.append(build_telegram(records, security="none", access_number=n & 0xFF))
    vectors = json.loads(
        (ROOT / "tests" / "fixtures" / "vectors" / "wmbus_kamstrup_reencrypted.json").read_text()
    )
    real = [bytes.fromhex(v["hex"]) for v in vectors if v["id"] != "54084283"]
    return {"omnipower-ell": ell, "oms-mode5": mode5, "plain": plain, "kamstrup-real": real}


def rate(work: Callable[[], int], seconds: float) -> float:
    """Items per second of ``work`` (which returns how many it did) over ``seconds``."""
    work()  # warm caches, learn formats
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += work()
    return done / (time.perf_counter() - start)


def codec_rate(telegrams: list[bytes], key: bytes | None, seconds: float) -> float:
    """``decode_telegram`` alone."""
    cache = FormatCache()
    for telegram in telegrams:  # full frames first teach the compact formats
        decode_telegram(telegram, key=key, cache=cache)

    def work() -> int:
        for telegram in telegrams:
            decode_telegram(telegram, key=key, cache=cache)
        return len(telegrams)

    return rate(work, seconds)


def router_rate(telegrams: list[bytes], key: bytes | None, seconds: float) -> float:
    """The module's path: CRCs, duplicate check, address lookup, decode, readings."""
    addresses = {parse_link(t).id for t in telegrams}
    router = Router([MeterEntry(a, "m", key) for a in addresses], duplicate_window_s=0.0)
    heard = [Heard(t, dll_crcs="none") for t in telegrams]
    at = datetime.now(UTC)
    clock = [0.0]

    def work() -> int:
        for item in heard:
            clock[0] += 1.0
            outcome = router.route(item, now=clock[0], at=at)
            if outcome.decoded is not None:
                readings(outcome.decoded)
        return len(heard)

    return rate(work, seconds)


def airtime(telegrams: list[bytes]) -> tuple[float, float, float]:
    """Mean on-air bytes (format A, with DLL CRCs), T1 and C1 seconds per telegram."""
    on_air = sum(format_a_length(t[0]) for t in telegrams) / len(telegrams)
    t1 = (T1_OVERHEAD_CHIPS + 12 * on_air) / CHIP_RATE
    c1 = (C1_OVERHEAD_CHIPS + 8 * on_air) / CHIP_RATE
    return on_air, t1, c1


def peer_rates(
    sets: dict[str, list[bytes]], seconds: float, *, install: bool | None = None
) -> dict[str, dict[str, object]]:
    """pymbusparser on the same sets, in bench/.venv (PeerMissing when it cannot be had)."""
    peers.require(["pymbusparser"], install=install)
    out: dict[str, dict[str, object]] = {}
    for name, telegrams in sets.items():
        job = [{"data": t.hex(), "key": DEMO_KEY.hex().upper()} for t in telegrams]
        probe = peers.run("pymbusparser", job)
        accepted = len(probe["accepted"])
        out[name] = {"ok": accepted, "of": len(telegrams), "error": probe["first_error"]}
        if accepted == len(telegrams):
            timed = peers.run("pymbusparser", job, subset=probe["accepted"], seconds=seconds)
            out[name]["rate"] = timed["decodes"] / timed["elapsed"]
    return out


def measure(seconds: float, *, install: bool | None = None) -> dict[str, dict[str, Any]]:
    """Per set: on-air bytes, codec and module rates, channel capacity, pymbusparser's rate."""
    sets = telegram_sets()
    found = peer_rates(sets, seconds, install=install)
    figures: dict[str, dict[str, Any]] = {}
    for name, telegrams in sets.items():
        key = None if name == "plain" else DEMO_KEY
        on_air, t1, c1 = airtime(telegrams)
        row: dict[str, Any] = {
            "telegrams": len(telegrams),
            "on_air_bytes": on_air,
            "codec_per_s": codec_rate(telegrams, key, seconds),
            "module_per_s": router_rate(telegrams, key, seconds),
            "t1_capacity_per_s": 1 / t1,
            "t1_aloha_per_s": ALOHA_MAX / t1,
            "c1_capacity_per_s": 1 / c1,
        }
        row["pymbusparser"] = found[name]
        figures[name] = row
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args(argv)
    figures = measure(args.seconds)
    print(
        f"{'set':14} {'bytes':>5} {'codec/s':>9} {'module/s':>9} {'µs':>6}  "
        f"{'T1 cap/s':>8} {'T1 ALOHA':>8} {'C1 cap/s':>8}  pymbusparser"
    )
    for name, row in figures.items():
        codec, module = row["codec_per_s"], row["module_per_s"]
        peer = "not installed"
        found = row.get("pymbusparser")
        if found is not None:
            if "rate" in found:
                speed = float(found["rate"])
                peer = f"{speed:,.0f}/s ({speed / codec:.1f} x our codec)"
            else:
                peer = f"decodes {found['ok']}/{found['of']}: {found['error']}"
        print(
            f"{name:14} {row['on_air_bytes']:5.0f} {codec:9,.0f} {module:9,.0f} "
            f"{1e6 / module:6.1f}  {row['t1_capacity_per_s']:8,.0f} "
            f"{row['t1_aloha_per_s']:8,.0f} {row['c1_capacity_per_s']:8,.0f}  {peer}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
