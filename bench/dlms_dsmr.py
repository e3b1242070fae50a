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

The peers live in a throwaway virtualenv, bench/.venv (created on first use with pip; never
in the project's .venv), and run in their own process; each side times only its decode loop.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.errors import FrameError
from modules.codecs.dlms import DlmsDecoder
from modules.codecs.dlms_apdu import parse_data_notification
from modules.codecs.dlms_hdlc import parse_frame, strip_llc
from modules.codecs.dlms_security import decipher, parse_general_ciphering
from modules.codecs.dsmr import SMARTY_AUTH_KEY, DsmrDecoder, encrypt_telegram
from modules.p1.emulated import EmulatedMeter, HanPush, dsmr5_telegram

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "fixtures" / "vectors"
PEER_VENV = ROOT / "bench" / ".venv"
PEER_PACKAGES = ("dlms-cosem", "dsmr-parser")
GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
GENERATED = 200

# Runs inside bench/.venv: which inputs the peer decodes, and how fast.
PEER_SCRIPT = r"""
import json, sys, time
job = json.load(sys.stdin)
rounds, kind, subset = job["rounds"], job["kind"], job["subset"]
if kind.startswith("dlms"):
    from dlms_cosem.hdlc.frames import UnnumberedInformationFrame
    from dlms_cosem.connection import XDlmsApduFactory
    from dlms_cosem.protocol.xdlms import DataNotification
    from dlms_cosem.dlms_data import DlmsDataParser
    key, auth = bytes.fromhex(job["key"]), bytes.fromhex(job["auth_key"])
    inputs = [bytes.fromhex(h) for h in job["inputs"]]
    def decode(data, _spec):
        info = UnnumberedInformationFrame.from_bytes(data).payload
        if info[:3] == b"\xe6\xe7\x00":
            info = info[3:]
        if info[0] == 0xDB:
            info = XDlmsApduFactory.apdu_from_bytes(info).to_plain_apdu(key, auth)
        return DlmsDataParser().parse(DataNotification.from_bytes(info).body)
    specs = [None]
else:
    from dsmr_parser import telegram_specifications as ts
    from dsmr_parser.parsers import TelegramParser
    inputs = job["inputs"]
    names = ["MSN"] if kind == "smarty" else ["V5", "V2_2"]
    specs = [TelegramParser(getattr(ts, n)) for n in names]
    key, auth = job["key"], job["auth_key"]
    def decode(data, parser):
        if kind == "smarty":
            return parser.parse(data, encryption_key=key, authentication_key=auth, throw_ex=True)
        return parser.parse(data, throw_ex=True)
chosen = {}
for index, data in enumerate(inputs):
    for spec in specs:
        try:
            decode(data, spec)
            chosen[index] = spec
            break
        except Exception:
            pass
elapsed = 0.0
if subset is not None:
    work = [(inputs[i], chosen[i]) for i in subset]
    start = time.perf_counter()
    for _ in range(rounds):
        for data, spec in work:
            decode(data, spec)
    elapsed = time.perf_counter() - start
from importlib.metadata import version
print(json.dumps({"accepted": sorted(chosen), "elapsed": elapsed,
                  "versions": {p: version(p) for p in ("dlms-cosem", "dsmr-parser")}}))
"""


def main(argv: list[str] | None = None) -> int:
    """Print frames per second of both sides and their ratio, per input set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="passes over each input set")
    args = parser.parse_args(argv)
    peer = _peer_python()
    if peer is None:
        return 1
    sets = _inputs()
    versions: dict[str, str] = {}
    for name, (inputs, peer_inputs, ours, parse_level) in sets.items():
        ours_ok = [i for i, data in enumerate(inputs) if _accepts(ours, data)]
        probe = _run_peer(peer, name, peer_inputs, args.rounds, None)
        versions = probe["versions"]
        common = [i for i in ours_ok if i in set(probe["accepted"])]
        print(f"\n{name}: {len(common)} of {len(inputs)} inputs decoded by both")
        if not common:
            continue
        subset = [inputs[i] for i in common]
        total = len(subset) * args.rounds
        peer_fps = total / _run_peer(peer, name, peer_inputs, args.rounds, common)["elapsed"]
        peer_name = "dlms-cosem" if name.startswith("dlms") else "dsmr_parser"
        ours_fps = total / _time(ours, subset, args.rounds)
        print(f"  meter-gateway decode   {ours_fps:9.0f} frames/s")
        if parse_level is not None:
            level_fps = total / _time(parse_level, subset, args.rounds)
            print(f"  meter-gateway parse    {level_fps:9.0f} frames/s")
        print(f"  {peer_name:<22} {peer_fps:9.0f} frames/s")
        print(f"  ratio decode / peer    {ours_fps / peer_fps:9.2f}x")
        if parse_level is not None:
            print(f"  ratio parse / peer     {level_fps / peer_fps:9.2f}x")
    print(f"\npeers: {', '.join(f'{k} {v}' for k, v in versions.items())}")
    return 0


Decode = Callable[[bytes], object]


def _inputs() -> dict[str, tuple[list[bytes], list[str], Decode, Decode | None]]:
    """name -> (our inputs, the peer's form of them, our decode, our parse-level decode)."""
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
        "dlms clear": (clear, [f.hex() for f in clear], dlms, _parse_level),
        "dlms gcm": (ciphered, [f.hex() for f in ciphered], dlms, _parse_level),
        "dsmr": (dsmr, [t.decode("latin-1") for t in dsmr], dsmr_plain, None),
        "smarty": (smarty, [f.hex() for f in smarty], dsmr_smarty, None),
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


def _time(decode: Decode, inputs: list[bytes], rounds: int) -> float:
    for data in inputs:  # warm-up: imports, caches
        decode(data)
    start = time.perf_counter()
    for _ in range(rounds):
        for data in inputs:
            decode(data)
    return time.perf_counter() - start


def _peer_python() -> Path | None:
    """bench/.venv's python with the peers, created on first use; None if it cannot be."""
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import dlms_cosem, dsmr_parser"]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return python
    print(f"setting up {PEER_VENV} with {', '.join(PEER_PACKAGES)} (pip) ...", file=sys.stderr)
    try:
        if not python.exists():
            venv.create(PEER_VENV, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        print(f"the peers could not be installed: {err} {detail.decode()[-300:]}")
        return None
    return python


def _run_peer(
    python: Path, kind: str, inputs: list[str], rounds: int, subset: list[int] | None
) -> dict[str, Any]:
    job = {
        "kind": kind,
        "inputs": inputs,
        "rounds": rounds,
        "subset": subset,
        "key": GUEK.hex(),
        "auth_key": (GAK if kind.startswith("dlms") else SMARTY_AUTH_KEY).hex(),
    }
    result = subprocess.run(
        [str(python), "-c", PEER_SCRIPT],
        input=json.dumps(job).encode(),
        capture_output=True,
        check=True,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


if __name__ == "__main__":
    sys.exit(main())
