"""meter-gateway: a Kamstrup 382L model between your meter and MQTT, HTTP and Z-Wave.

Run "meter-gateway COMMAND --help" for the options of a command."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway import __version__, registry
from gateway.errors import ConfigError, GatewayError
from modules.codecs.errors import FrameError
from modules.codecs.records import Decoder, error_result, to_json

__all__ = ["main"]

_LOGGER = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Tools and emulators parse their own options: hand them every word after their name as
    # it is (argparse would reorder options it does not know).
    own: list[str] | None = None
    for index, word in enumerate(words):
        if word in ("simulate", *registry.TOOLS):
            cut = index + (2 if word == "simulate" else 1)
            words, own = words[:cut], words[cut:]
            break
        if not word.startswith("-") and words[index - 1 : index] != ["--log-level"]:
            break
    args, extra = parser.parse_known_args(words)
    if own is not None:
        args.args = own
    # argparse hands an optional positional its default before it sees later options, so
    # `decode dlms --key K INPUT` leaves INPUT over; it is the input, nothing else is.
    if extra and args.command == "decode" and args.input is None and len(extra) == 1:
        args.input = extra[0]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _setup_logging(args.log_level)
    try:
        status: int = args.handler(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except GatewayError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meter-gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity on stderr (default: info)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the gateway")
    run.add_argument("--config", type=Path, help="TOML config (default: the embedded sim meter)")
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="validate a config file, touching no device")
    check.add_argument(
        "file", type=Path, metavar="FILE", help="the TOML config to check (e.g. conf/gateway.toml)"
    )
    check.set_defaults(handler=_check_config)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_version)

    for name, summary, handler in (
        ("install-service", "install as a systemd service (user, config, unit)", _install),
        ("uninstall-service", "remove the systemd service (keeps config and data)", _uninstall),
    ):
        service = commands.add_parser(name, help=summary)
        service.add_argument(
            "--root", type=Path, help="write everything under DIR; touch nothing running"
        )
        service.add_argument("--user", default="meter-gateway", help="the system user's name")
        if name == "install-service":
            service.add_argument(
                "--low-ports",
                action="store_true",
                help="allow ports below 1024 (HomeWizard/Shelly stand-ins on port 80)",
            )
            service.add_argument(
                "--no-start", action="store_true", help="enable the service but do not start it"
            )
        service.set_defaults(handler=handler)

    export = commands.add_parser(
        "export-meter", help="write a meter's state and history as JSON (gateway stopped)"
    )
    export.add_argument("meter", help="the meter id")
    export.add_argument("--config", type=Path, required=True, help="the gateway's TOML config")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_export_meter)

    imported = commands.add_parser(
        "import-meter", help="load a meter exported from another gateway (gateway stopped)"
    )
    imported.add_argument("file", type=Path, help="the export-meter file (- = stdin)")
    imported.add_argument("--config", type=Path, required=True, help="the gateway's TOML config")
    imported.add_argument(
        "--replace", action="store_true", help="overwrite state this gateway has for the meter"
    )
    imported.set_defaults(handler=_import_meter)

    decode = commands.add_parser("decode", help="decode one frame or a batch, print JSON")
    decode.add_argument("protocol", choices=sorted(registry.DECODERS))
    decode.add_argument(
        "input", nargs="?", help="hex (or raw text for dsmr/iec62056-21); - = stdin"
    )
    decode.add_argument("--key", help="AES key as hex (wM-Bus, DLMS, encrypted P1)")
    decode.add_argument("--auth-key", help="authentication key as hex (DLMS)")
    decode.add_argument("--batch", help="JSON lines {input,key,auth_key} from FILE or - (stdin)")
    decode.set_defaults(handler=_decode)

    simulate = commands.add_parser("simulate", help="run a protocol's emulator (the meter side)")
    simulate.add_argument("type", choices=sorted(registry.EMULATORS))
    simulate.add_argument("args", nargs=argparse.REMAINDER, help="options of the emulator")
    simulate.set_defaults(handler=_simulate)

    for name, (_target, summary) in sorted(registry.TOOLS.items()):
        tool = commands.add_parser(name, help=summary, add_help=False)
        tool.add_argument("args", nargs=argparse.REMAINDER)
        tool.set_defaults(handler=_tool, tool=name)
    return parser


def _setup_logging(level: str) -> None:
    # journald adds its own timestamps; the priority prefix lets it colour and filter lines.
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _version(_args: argparse.Namespace) -> int:
    print(f"meter-gateway {__version__}")
    return 0


def _service_plan(args: argparse.Namespace) -> Any:
    from gateway.service import ServicePlan  # noqa: PLC0415

    return ServicePlan(
        root=args.root.resolve() if args.root else Path("/"),
        user=args.user,
        low_ports=getattr(args, "low_ports", False),
        start=not getattr(args, "no_start", False),
    )


def _install(args: argparse.Namespace) -> int:
    from gateway.service import install  # noqa: PLC0415

    install(_service_plan(args), print)
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from gateway.service import uninstall  # noqa: PLC0415

    uninstall(_service_plan(args), print)
    return 0


def _run(args: argparse.Namespace) -> int:
    # Imported here so that `decode` stays free of the daemon's imports.
    from gateway import config  # noqa: PLC0415
    from gateway.daemon import run  # noqa: PLC0415

    settings = config.load(args.config) if args.config else config.default()
    return run(settings, config_path=args.config)


def _export_meter(args: argparse.Namespace) -> int:
    from gateway import config  # noqa: PLC0415
    from gateway.model import utc_now  # noqa: PLC0415
    from gateway.transfer import export_meter  # noqa: PLC0415

    document = export_meter(config.load(args.config), args.meter, utc_now())
    if args.output is None:
        sys.stdout.buffer.write(document + b"\n")
    else:
        args.output.write_bytes(document)
    return 0


def _import_meter(args: argparse.Namespace) -> int:
    from gateway import config  # noqa: PLC0415
    from gateway.transfer import import_meter  # noqa: PLC0415

    text = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    export = import_meter(config.load(args.config), text, replace=args.replace)
    when = export.exported_at.strftime("%Y-%m-%d %H:%M")
    print(
        f"meter {export.meter} from gateway {export.gateway} (exported {when} UTC):"
        f" {len(export.billing)} billing periods, {len(export.events)} events,"
        f" {len(export.profile)} profile and {len(export.analysis)} analysis intervals imported"
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    return _call_tool(registry.EMULATORS[args.type], args.args)


def _tool(args: argparse.Namespace) -> int:
    return _call_tool(registry.TOOLS[args.tool][0], args.args)


def _call_tool(target: str, argv: list[str]) -> int:
    try:
        entry = registry.load(target)
    except ModuleNotFoundError as err:
        raise GatewayError(f"{target.partition(':')[0]} is not available in this version") from err
    status: int = entry(argv)
    return status


def _check_config(args: argparse.Namespace) -> int:
    from gateway import config  # noqa: PLC0415

    settings = config.load(args.file)
    names = ", ".join(f"{m.name} ({m.type})" for m in settings.modules) or "none"
    print(f"{args.file}: ok; meters: {', '.join(m.id for m in settings.meters)}; modules: {names}")
    return 0


def _decode(args: argparse.Namespace) -> int:
    decoder = registry.decoder(args.protocol)
    out = sys.stdout.buffer
    if args.batch is not None:
        with _open_text(args.batch) as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                out.write(_decode_batch_line(decoder, args.protocol, line, number) + b"\n")
        out.flush()
        return 0
    if args.input is None:
        print(
            "meter-gateway decode: give the frame (hex, or text for dsmr and iec62056-21), "
            "- to read it from stdin, or --batch FILE",
            file=sys.stderr,
        )
        return 2
    text = sys.stdin.read() if args.input == "-" else args.input
    result = _decode_one(decoder, args.protocol, text, args.key, args.auth_key)
    out.write(result + b"\n")
    out.flush()
    return 0 if json.loads(result)["ok"] else 1


def _decode_batch_line(decoder: Decoder, protocol: str, line: str, number: int) -> bytes:
    """One line of a batch: its result or its error, never an end to the batch."""
    try:
        item: Any = json.loads(line)
        if not isinstance(item, dict):
            raise TypeError(f"a JSON object is needed, not {type(item).__name__}")
        text, key, auth_key = item.get("input"), item.get("key"), item.get("auth_key")
        if not isinstance(text, str):
            raise TypeError('"input" must be a string')
        for name, value in (("key", key), ("auth_key", auth_key)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f'"{name}" must be a string of hex digits')
    except (ValueError, TypeError, RecursionError) as err:
        bad = FrameError(
            f"batch line {number} is not {{input, key, auth_key}}: {err}", code="bad_input"
        )
        return to_json(error_result(protocol, bad))
    return _decode_one(decoder, protocol, text, key, auth_key)


def _decode_one(
    decoder: Decoder, protocol: str, text: str, key: str | None, auth_key: str | None
) -> bytes:
    try:
        data = _hex(text, "input") if decoder.input_kind == "hex" else text.encode("latin-1")
        result = decoder.decode(
            data,
            key=_hex(key, "--key") if key else None,
            auth_key=_hex(auth_key, "--auth-key") if auth_key else None,
        )
    except FrameError as err:
        return to_json(error_result(protocol, err))
    return to_json(result)


def _hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split()).removeprefix("0x").replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        bad = next((i for i, c in enumerate(cleaned) if c not in "0123456789abcdefABCDEF"), None)
        where = (
            f"character {bad} ({cleaned[bad]!r})" if bad is not None else "an odd number of digits"
        )
        raise FrameError(f"{what} is not hex: {where}", code="bad_hex") from None


@contextlib.contextmanager
def _open_text(name: str) -> Iterator[Iterable[str]]:
    """Lines from a path or from stdin; closes only what it opened."""
    # Bytes that are not UTF-8 become U+FFFD: that line then fails as bad hex, the rest decode.
    if name == "-":
        sys.stdin.reconfigure(errors="replace")  # type: ignore[union-attr]
        yield sys.stdin
        return
    with open(name, encoding="utf-8", errors="replace") as stream:
        yield stream
