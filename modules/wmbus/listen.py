"""``meter-gateway listen``: every wM-Bus telegram a receiver hears, decoded where a key is known.

Keys come from a gateway config (``--config``, its wmbus module's meters) and/or ``--key
ID=HEX``. Addresses not configured are marked UNKNOWN and shown with whatever an
unencrypted telegram says. ``--heard`` prints, without touching the radio, the table of
addresses a running gateway's module has heard (kept in its store).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import config as config_module
from gateway.errors import ConfigError, ConnectionLost
from gateway.model import utc_now
from gateway.transport import SerialSettings, open_link
from modules.wmbus.adapter import STATE_HEARD, setup_receiver
from modules.wmbus.config import WmbusConfig, parse_key
from modules.wmbus.pipeline import (
    HeardMeter,
    MeterEntry,
    Outcome,
    Router,
    entry_facts,
    readings,
)
from modules.wmbus.receivers import RECEIVERS, Heard, Rejected, check_modes, make_receiver

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """``meter-gateway listen [DEVICE] [--receiver TYPE] [--config FILE] [--key ID=HEX] ...``."""
    args = _parser().parse_args(argv)
    module = _module(args)
    if args.heard:
        return _print_heard(args, module)
    device = args.device or (module.device if module else None)
    receiver = args.receiver or (module.receiver if module else None)
    if not device or not receiver:
        raise ConfigError("give DEVICE and --receiver (or --config with a wmbus module)")
    modes = tuple(args.modes.split(",")) if args.modes else (module.modes if module else ())
    if not modes:
        modes = ("C1", "T1") if receiver not in ("im170a",) else ("N1a",)
    check_modes(receiver, modes)
    entries = {e.id: e for e in (module.entries() if module else [])}
    for text in args.key:
        meter_id, _, hex_key = text.partition("=")
        meter_id = meter_id.strip().upper()
        entries[meter_id] = MeterEntry(meter_id, meter_id, parse_key(hex_key, what="--key"))
    router = Router(entries.values(), duplicate_window_s=args.window, decode_unknown=True)
    listener = _Listener(router, json_lines=args.json)
    baudrate = args.baudrate or (module.baudrate if module else None)
    one_way = device == "stdin" or device.startswith("exec:")
    try:
        with contextlib.suppress(KeyboardInterrupt, TimeoutError):  # Ctrl-C or --seconds
            asyncio.run(
                listener.listen(
                    device=device,
                    kind=receiver,
                    modes=modes,
                    baudrate=baudrate,
                    count=args.count,
                    seconds=args.seconds,
                )
            )
    except ConnectionLost:
        if not one_way:
            raise
    finally:
        listener.summary()
    return 0


class _Listener:
    def __init__(self, router: Router, *, json_lines: bool) -> None:
        self.router = router
        self.json_lines = json_lines
        self.telegrams = 0

    async def listen(  # noqa: PLR0913 - keyword-only options
        self,
        *,
        device: str,
        kind: str,
        modes: Sequence[str],
        baudrate: int | None,
        count: int | None,
        seconds: float | None,
    ) -> None:
        receiver = make_receiver(kind, modes)
        serial = SerialSettings(baudrate=baudrate or receiver.baudrate)
        async with asyncio.timeout(seconds), open_link(device, serial) as link:
            await setup_receiver(link, receiver, device, self.show)
            sys.stderr.write(
                f"listening on {device} ({kind}, {'+'.join(modes)}) {receiver.device_info}\n"
            )
            while count is None or self.telegrams < count:
                for item in receiver.feed(await link.read()):
                    if not isinstance(item, Heard | Rejected):
                        continue
                    self.show(item)
                    if count is not None and self.telegrams >= count:
                        break

    def show(self, item: Heard | Rejected) -> None:
        now = utc_now()
        if isinstance(item, Rejected):
            line: dict[str, Any] = {"kind": "rejected", "reason": item.reason}
        else:
            outcome = self.router.route(item, now=time.monotonic(), at=now)
            if outcome.kind != "duplicate":
                self.telegrams += 1
            line = entry_facts(outcome)
            line["values"] = _values(outcome)
            if outcome.decoded is not None:
                line["security"] = outcome.decoded.frame.get("security")
        line = {"at": now.isoformat(timespec="seconds"), **line}
        _out(json.dumps(line, default=str) if self.json_lines else _text(line))

    def summary(self) -> None:
        rows = list(self.router.heard.values())
        if self.json_lines:
            for row in rows:
                _out(json.dumps({"kind": "summary", **_row_dict(row)}))
            return
        _out(f"# {len(rows)} address(es) heard")
        for row in rows:
            _out("# " + _row_text(row))


def _values(outcome: Outcome) -> list[dict[str, Any]]:
    if outcome.decoded is None:
        return []
    return [{"code": r.obis, "value": r.value, "unit": r.unit} for r in readings(outcome.decoded)]


def _text(line: dict[str, Any]) -> str:
    if line["kind"] == "rejected":
        return f"{line['at']}  rejected: {line['reason']}"
    rssi = line.get("rssi_dbm")
    level = f"{rssi:6.1f} dBm" if rssi is not None else "    -     "
    who = f"{line.get('manufacturer', '?')} {line.get('id', '?')} v{line.get('version', 0):02X}"
    who += f" {line.get('medium', '')}"
    status = line["kind"].upper() if line["kind"] != "decoded" else f"-> {line['meter']}"
    if line["kind"] == "unknown":
        status = "UNKNOWN (not configured)"
    if line["kind"] == "failed":
        status = f"-> {line['meter']} FAILED"
    text = f"{line['at']}  {level}  {who:34} {status}"
    if "error" in line:
        text += f"  {line['error']['code']}: {line['error']['message']}"
    values = " | ".join(
        f"{v['code']} {v['value']}{' ' + v['unit'] if v['unit'] else ''}" for v in line["values"]
    )
    return text + (f"  {values}" if values else "")


def _row_dict(row: HeardMeter) -> dict[str, Any]:
    return {
        "manufacturer": row.manufacturer,
        "id": row.id,
        "version": row.version,
        "type": row.device_type,
        "medium": row.medium,
        "meter": row.meter,
        "telegrams": row.telegrams,
        "duplicates": row.duplicates,
        "failures": row.failures,
        "rssi_dbm": row.rssi_dbm,
        "last_seen": row.last_seen,
        "last_error": row.last_error,
    }


def _row_text(row: HeardMeter) -> str:
    known = f"-> {row.meter}" if row.meter else "UNKNOWN"
    rssi = f"{row.rssi_dbm:.1f} dBm" if row.rssi_dbm is not None else "-"
    return (
        f"{row.manufacturer} {row.id} v{row.version:02X} {row.medium:14} {known:14} "
        f"telegrams {row.telegrams} duplicates {row.duplicates} failures {row.failures} "
        f"last {row.last_seen} rssi {rssi}" + (f" error {row.last_error}" if row.last_error else "")
    )


def _print_heard(args: argparse.Namespace, module: WmbusConfig | None) -> int:
    from gateway.store import Store  # noqa: PLC0415 - only --heard needs the store

    if module is None:
        raise ConfigError("--heard needs --config (the gateway's config with a wmbus module)")
    settings = config_module.load(Path(args.config))
    store = Store(settings.data_path / "gateway.db")
    try:
        saved = store.get_state(module.name, STATE_HEARD)
    finally:
        store.close()
    router = Router(())
    if saved:
        router.restore_heard(saved)
    listener = _Listener(router, json_lines=args.json)
    listener.summary()
    return 0


def _module(args: argparse.Namespace) -> WmbusConfig | None:
    if not args.config:
        return None
    settings = config_module.load(Path(args.config))
    for module in settings.modules:
        if isinstance(module, WmbusConfig) and args.module in (None, module.name):
            return module
    raise ConfigError(
        f"{args.config} has no wmbus module{f' {args.module!r}' if args.module else ''}"
    )


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meter-gateway listen",
        description="Print every wM-Bus telegram heard; decode those whose key is known.",
    )
    parser.add_argument(
        "device", nargs="?", help="/dev/ttyUSB0, socket://host:port, stdin or exec:COMMAND"
    )
    parser.add_argument("--receiver", choices=RECEIVERS)
    parser.add_argument("--modes", help="link modes, e.g. C1,T1")
    parser.add_argument("--baudrate", type=int)
    parser.add_argument("--config", help="gateway config: device, receiver and keys from it")
    parser.add_argument("--module", help="which wmbus module of --config (default: the first)")
    parser.add_argument("--key", action="append", default=[], metavar="ID=HEX")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--count", type=int, help="stop after N telegrams")
    parser.add_argument("--seconds", type=float, help="stop after S seconds")
    parser.add_argument("--window", type=float, default=10.0, help="duplicate window, seconds")
    parser.add_argument(
        "--heard", action="store_true", help="print what a running gateway has heard (--config)"
    )
    return parser
