"""DLMS HAN pushes and DSMR P1 telegrams: frames per second, ours vs dlms-cosem and dsmr_parser.

Run: ``.venv/bin/python -m bench.dlms_dsmr [--rounds N]``

Four input sets, each given byte for byte to both sides:

- ``dlms clear``: the HDLC push frames of tests/fixtures/vectors/dlms.json that dlms-cosem also
  decodes (it refuses visible-strings and two-byte HDLC source addresses, which leaves few);
- ``dlms gcm``: 200 Kamstrup-style list-3 pushes from the emulator, AES-128-GCM (SC 0x30) with
  GUEK and GAK, ids as octet-strings so that dlms-cosem can read them;
- ``dsmr``: every telegram of tests/fixtures/vectors/dsmr.json, with the dsmr_parser
  specification that accepts it (V5, else V2_2);
- ``smarty``: 200 emulated DSMR 5 telegrams, smarty-encrypted (dsmr_parser spec MSN, hex in).

The peers do less: dlms-cosem checks the HDLC frame, deciphers and parses the A-XDR body into
Python objects; ours also assigns OBIS names, vendor scalers and units. dsmr_parser only
parses the objects its specification lists. So each DLMS set is timed twice on our side:
the whole decode (``DlmsDecoder``) and the same parse-level work as dlms-cosem.

The peers live in the bench's throwaway virtualenv (bench/peers.py) and run in their own
process (bench/peer_side.py); each side times only its decode loop.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench import peers
from modules.codecs.dlms.apdu import parse_data_notification
from modules.codecs.dlms.decode import DlmsDecoder
from modules.codecs.dlms.hdlc import parse_frame, strip_llc
from modules.codecs.dlms.security import decipher, parse_general_ciphering
from modules.codecs.dsmr.telegram import SMARTY_AUTH_KEY, DsmrDecoder, encrypt_telegram
from modules.codecs.errors import FrameError
from modules.p1.meter_model import EmulatedMeter, HanPush, dsmr5_telegram

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "fixtures" / "vectors"
GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
GENERATED = 200
# Issue 22's goals for our whole decode against the peer, per input set.
GOALS = {"dlms gcm": 5.0, "dsmr": 5.0}
REPEATS = 3


def measure(rounds: int, *, install: bool | None = None) -> dict[str, Any]:
    """Frames per second of both sides and their ratio, per input set."""
    peers.require(["dlms-cosem", "dsmr_parser"], install=install)
    figures: dict[str, Any] = {}
    for name, (inputs, ours, parse_level) in _inputs().items():
        peer = "dlms-cosem" if name.startswith("dlms") else "dsmr_parser"
        ours_ok = [i for i, data in enumerate(inputs) if _accepts(ours, data)]
        row: dict[str, Any] = {"inputs": len(inputs), "peer": peer}
        if name in GOALS:
            row["goal"] = GOALS[name]
        figures[name] = row
        job = _job(name, inputs)
        options = {"smarty": name == "smarty"}
        probe = peers.run(peer, job, options=options)
        common = [i for i in ours_ok if i in set(probe["accepted"])]
        row.update(common=len(common), version=probe["version"])
        if not common:
            continue
        subset = [inputs[i] for i in common]
        # Each side REPEATS times in turn, its best pass counting (bench.codecs says why).
        for _ in range(REPEATS):
            timed = peers.run(peer, job, subset=common, rounds=rounds, options=options)
            row["peer_fps"] = max(row.get("peer_fps", 0.0), timed["decodes"] / timed["elapsed"])
            decodes, seconds = _time(ours, subset, rounds)
            row["ours_fps"] = max(row.get("ours_fps", 0.0), decodes / seconds)
            if parse_level is not None:
                decodes, seconds = _time(parse_level, subset, rounds)
                row["parse_fps"] = max(row.get("parse_fps", 0.0), decodes / seconds)
        row["ratio"] = row["ours_fps"] / row["peer_fps"]
        if parse_level is not None:
            row["parse_ratio"] = row["parse_fps"] / row["peer_fps"]
        if "goal" in row:
            row["goal_met"] = bool(row["ratio"] >= row["goal"])
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print frames per second of both sides and their ratio, per input set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="passes over each input set")
    args = parser.parse_args(argv)
    figures = measure(args.rounds)
    for name, row in figures.items():
        print(f"\n{name}: {row.get('common', 0)} of {row['inputs']} inputs decoded by both")
        if "ratio" not in row:
            continue
        print(f"  meter-gateway decode   {row['ours_fps']:9.0f} frames/s")
        if "parse_fps" in row:
            print(f"  meter-gateway parse    {row['parse_fps']:9.0f} frames/s")
        print(f"  {row['peer']:<22} {row['peer_fps']:9.0f} frames/s  ({row['version']})")
        goal = f"  (goal {row['goal']:g}x)" if "goal" in row else ""
        print(f"  ratio decode / peer    {row['ratio']:9.2f}x{goal}")
        if "parse_ratio" in row:
            print(f"  ratio parse / peer     {row['parse_ratio']:9.2f}x")
    return 0


Decode = Callable[[bytes], object]


def _inputs() -> dict[str, tuple[list[bytes], Decode, Decode | None]]:
    """name -> (the inputs, our decode, our parse-level decode)."""
    vectors = json.loads((VECTORS / "dlms.json").read_text())
    clear = [
        bytes.fromhex(v["input"]["hex"])
        for v in vectors
        if isinstance(v["input"], dict)
        and v["input"].get("hex", "").startswith("7e")
        and v["input"]["hex"].endswith("7e")
    ]
    meter = EmulatedMeter()
    push = HanPush(meter, key=GUEK, auth_key=GAK, text_as_octets=True)
    now = datetime(2025, 1, 15, 12, tzinfo=UTC)
    ciphered = []
    plain_telegrams = []
    smarty = []
    for n in range(GENERATED):
        meter.advance(10)
        moment = now + timedelta(seconds=10 * n)
        ciphered.append(push.frame(moment))
        telegram = dsmr5_telegram(meter, moment)
        plain_telegrams.append(telegram)
        smarty.append(
            encrypt_telegram(
                telegram, key=GUEK, system_title=b"SAG\x10\x03\x08\x55\x22", frame_counter=n + 1
            )
        )
    dsmr = [v["input"].encode("latin-1") for v in json.loads((VECTORS / "dsmr.json").read_text())]
    dlms_decoder = DlmsDecoder()
    dsmr_decoder = DsmrDecoder()

    def dlms(data: bytes) -> object:
        return dlms_decoder.decode(data, key=GUEK, auth_key=GAK)

    def dsmr_plain(data: bytes) -> object:
        return dsmr_decoder.decode(data, key=None, auth_key=None)

    def dsmr_smarty(data: bytes) -> object:
        return dsmr_decoder.decode(data, key=GUEK, auth_key=SMARTY_AUTH_KEY)

    return {
        "dlms clear": (clear, dlms, _parse_level),
        "dlms gcm": (ciphered, dlms, _parse_level),
        "dsmr": (dsmr, dsmr_plain, None),
        "smarty": (smarty, dsmr_smarty, None),
    }


def _parse_level(data: bytes) -> object:
    """What dlms-cosem does: check the frame, decipher, parse the notification and its body."""
    apdu, _llc = strip_llc(parse_frame(data).info)
    if apdu[0] == 0xDB:
        ciphered, _size = parse_general_ciphering(apdu)
        apdu, _verified = decipher(ciphered, key=GUEK, auth_key=GAK)
    return parse_data_notification(apdu)


def _accepts(decode: Decode, data: bytes) -> bool:
    try:
        decode(data)
    except FrameError:
        return False
    return True


def _job(name: str, inputs: list[bytes]) -> list[dict[str, Any]]:
    """The peer's form of a set: hex frames (DLMS, smarty) or telegram text, with the keys."""
    auth = (GAK if name.startswith("dlms") else SMARTY_AUTH_KEY).hex()
    if name == "dsmr":
        return [{"data": data.decode("latin-1")} for data in inputs]
    return [{"data": data.hex(), "key": GUEK.hex(), "auth_key": auth} for data in inputs]


def _time(decode: Decode, inputs: list[bytes], rounds: int) -> tuple[int, float]:
    return peers.timed([partial(decode, data) for data in inputs], rounds=rounds)


if __name__ == "__main__":
    sys.exit(main())
