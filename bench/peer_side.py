"""The peers' side of every codec bench: runs inside bench/.venv, never imports the project.

Run by ``bench.peers.run`` as ``bench/.venv/bin/python bench/peer_side.py`` with one JSON job on
stdin: ``{"peer", "inputs": [{"data", "key", "auth_key"}], "subset", "rounds", "seconds",
"options"}``. It first tries every input once (which the peer accepts, and in which form: a
DSMR specification, an IEC message type), then, when ``subset`` is given, decodes those inputs
in order, whole passes, for ``rounds`` passes or until ``seconds`` have gone, and prints
``{"accepted", "elapsed", "decodes", "version"}``. Accepted means "decoded without raising" and
every value read out (lazy peers compute values on access), not "decoded right".
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

Decode = Callable[[Any], object]


def _pymeterbus(job: dict[str, Any]) -> list[Decode]:
    import meterbus  # noqa: PLC0415 - lives in bench/.venv only

    for item in job["inputs"]:
        if item.get("key") and item.get("meter_id"):
            meterbus.add_wmbus_encryption_key(
                bytes.fromhex(item["meter_id"]), bytes.fromhex(item["key"])
            )

    def decode(data: bytes) -> object:
        telegram = meterbus.load(data)
        records = getattr(telegram, "records", None)
        if records is None:
            return telegram
        return [(record.value, record.unit) for record in records]

    return [decode]


def _pymbusparser(job: dict[str, Any]) -> list[Decode]:
    import pymbusparser  # noqa: PLC0415

    keys = {item["data"]: item.get("key") for item in job["inputs"]}

    def decode(data: str) -> object:
        return pymbusparser.parse(data, key=keys.get(data))

    return [decode]


def _dlms_cosem(job: dict[str, Any]) -> list[Decode]:
    from dlms_cosem.connection import XDlmsApduFactory  # noqa: PLC0415
    from dlms_cosem.dlms_data import DlmsDataParser  # noqa: PLC0415
    from dlms_cosem.hdlc.frames import UnnumberedInformationFrame  # noqa: PLC0415
    from dlms_cosem.protocol.xdlms import DataNotification  # noqa: PLC0415

    keys = {item["data"]: item for item in job["inputs"]}

    def decode(data: bytes) -> object:
        item = keys[data.hex()]
        info = UnnumberedInformationFrame.from_bytes(data).payload
        if info[:3] == b"\xe6\xe7\x00":
            info = info[3:]
        if info[0] == 0xDB:
            key = bytes.fromhex(item["key"])
            auth = bytes.fromhex(item["auth_key"] or "")
            info = XDlmsApduFactory.apdu_from_bytes(info).to_plain_apdu(key, auth)
        return DlmsDataParser().parse(DataNotification.from_bytes(info).body)

    return [decode]


def _dsmr_parser(job: dict[str, Any]) -> list[Decode]:
    from dsmr_parser import telegram_specifications  # noqa: PLC0415
    from dsmr_parser.parsers import TelegramParser  # noqa: PLC0415

    smarty = job.get("options", {}).get("smarty", False)
    # The first specification that accepts a telegram is the one timed for it.
    names = ["MSN"] if smarty else job.get("options", {}).get("specs", ["V5", "V2_2"])
    decoders: list[Decode] = []
    for name in names:
        spec = getattr(telegram_specifications, name, None)
        if spec is None:
            continue
        parser = TelegramParser(spec)
        if smarty:
            item = job["inputs"][0]

            def decode_smarty(data: str, parser: Any = parser, item: Any = item) -> object:
                return parser.parse(
                    data,
                    encryption_key=item["key"],
                    authentication_key=item["auth_key"],
                    throw_ex=True,
                )

            decoders.append(decode_smarty)
        else:

            def decode(data: str, parser: Any = parser) -> object:
                return parser.parse(data, throw_ex=True)

            decoders.append(decode)
    return decoders


def _iec62056(job: dict[str, Any]) -> list[Decode]:
    import iec62056  # noqa: PLC0415

    parser = iec62056.parser.Parser()
    return [parser.parse]


def _iec62056_21(job: dict[str, Any]) -> list[Decode]:
    from iec62056_21 import messages  # noqa: PLC0415

    def decode(data: str) -> object:
        # Its parsers slice without checking, so pick the message type as a reader would: by
        # the first character. Whole sessions (sign-on and readout in one input) are refused.
        lines = data.count("\n")
        if data.startswith("\x02"):
            readout = data[:-1].endswith("!\r\n\x03")
            kind = messages.ReadoutDataMessage if readout else messages.AnswerDataMessage
            return kind.from_representation(data)
        if data.startswith("\x01"):
            return messages.CommandMessage.from_representation(data)
        if data.startswith("\x06") and lines == 1:
            return messages.AckOptionSelectMessage.from_representation(data)
        if data.startswith("/?") and lines == 1:
            return messages.RequestMessage.from_representation(data)
        if data.startswith("/") and lines == 1:
            return messages.IdentificationMessage.from_representation(data)
        raise ValueError("not one IEC 62056-21 message")

    return [decode]


def _pykmp(job: dict[str, Any]) -> list[Decode]:
    from pykmp import codec, messages  # noqa: PLC0415

    link = codec.DataLinkCodec()
    physical = {
        0x40: codec.PhysicalCodec(direction=codec.PhysicalDirection.FROM_METER),
        0x80: codec.PhysicalCodec(direction=codec.PhysicalDirection.TO_METER),
    }
    responses = {
        m.command_id: m
        for m in (
            messages.GetTypeResponse,
            messages.GetSerialResponse,
            messages.GetRegisterResponse,
        )
    }
    requests = {
        m.command_id: m
        for m in (messages.GetTypeRequest, messages.GetSerialRequest, messages.GetRegisterRequest)
    }

    def decode(data: bytes) -> object:
        layer = physical[data[0]]
        application = codec.ApplicationCodec.decode(
            link.decode(layer.decode(data)).application_bytes
        )
        table = responses if data[0] == 0x40 else requests
        return table[application.command_id].decode(application)

    return [decode]


PEERS: dict[str, tuple[str, str, Callable[[dict[str, Any]], list[Decode]]]] = {
    # name: (distribution, input form, setup)
    "pyMeterBus": ("pyMeterBus", "bytes", _pymeterbus),
    "pymbusparser": ("pymbusparser", "hex", _pymbusparser),
    "dlms-cosem": ("dlms-cosem", "bytes", _dlms_cosem),
    "dsmr_parser": ("dsmr-parser", "text", _dsmr_parser),
    "iec62056": ("iec62056", "text", _iec62056),
    "iec62056-21": ("iec62056-21", "text", _iec62056_21),
    "PyKMP": ("pykmp", "bytes", _pykmp),
}


def main() -> None:
    """Answer one job."""
    job = json.load(sys.stdin)
    distribution, form, setup = PEERS[job["peer"]]
    decoders = setup(job)

    def prepare(item: dict[str, Any]) -> Any:
        data = item["data"]
        if form == "bytes":
            return bytes.fromhex(data)
        return data

    inputs = [prepare(item) for item in job["inputs"]]
    chosen: dict[int, Decode] = {}
    errors: dict[str, int] = {}
    first_error = ""
    for index, data in enumerate(inputs):
        for decode in decoders:
            try:
                decode(data)
            except Exception as err:  # a refusal, whatever the peer raises
                name = type(err).__name__
                errors[name] = errors.get(name, 0) + 1
                first_error = first_error or f"{name}: {str(err)[:120]}"
                continue
            chosen[index] = decode
            break
    elapsed, decodes = 0.0, 0
    subset = job.get("subset")
    if subset:
        work = [(inputs[i], chosen[i]) for i in subset]
        rounds, seconds = job.get("rounds"), job.get("seconds")
        start = time.perf_counter()
        while True:
            for data, decode in work:
                decode(data)
            decodes += len(work)
            elapsed = time.perf_counter() - start
            if rounds is not None and decodes >= rounds * len(work):
                break
            if seconds is not None and elapsed >= seconds:
                break
            if rounds is None and seconds is None:
                break
    print(
        json.dumps(
            {
                "accepted": sorted(chosen),
                "elapsed": elapsed,
                "decodes": decodes,
                "version": version(distribution),
                "errors": errors,
                "first_error": first_error,
            }
        )
    )


if __name__ == "__main__":
    main()
