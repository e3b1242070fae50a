"""Every Z-Wave vector (zwave-js tests) through the decoder, each expected field checked."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modules.codecs.records import to_json
from modules.codecs.zwave.dispatch import ZwaveDecoder

VECTORS = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "vectors" / "zwave.json").read_text("utf-8")
)

# zwave-js field name -> our frame field name (same meaning, same number)
SAME = {
    "meter_type": "meter_type",
    "rate_type": "rate_type",
    "precision": "precision",
    "size": "size",
    "delta_time_s": "delta_time_s",
    "supports_reset": "supports_reset",
    "supported_scales": "scales",
    "supported_rate_types": "rate_types",
    "length": "length",
    "checksum": "checksum",
    "rx_status": "rx_status",
    "source_node_id": "source_node_id",
    "destination_node_id": "destination_node_id",
    "node_id": "node_id",
    "tx_options": "tx_options",
    "callback_id": "callback_id",
    "tx_status": "tx_status",
}
TX_REPORT = {
    "tx_ticks": "tx_ticks_10ms",
    "num_repeaters": "repeaters",
    "ack_rssi_dbm": "ack_rssi_dbm",
    "ack_repeater_rssi_raw": "ack_repeater_rssi_dbm",
    "ack_channel": "ack_channel",
    "tx_channel": "tx_channel",
    "route_scheme_state": "route_scheme_state",
    "repeater_node_ids": "repeater_node_ids",
    "beam_1000ms": "beam_1000ms",
    "beam_250ms": "beam_250ms",
    "route_speed": "route_speed",
    "routing_attempts": "routing_attempts",
    "failed_route_last_functional_node": "failed_route_last_functional_node",
    "failed_route_first_non_functional_node": "failed_route_first_non_functional_node",
}
UNITS = {(1, 0): "kWh", (1, 2): "W", (1, 6): None, (1, 8): "kvarh", (3, 2): "gal"}


def decode(hex_text: str) -> dict[str, Any]:
    """The decode JSON exactly as the CLI prints it."""
    decoded = ZwaveDecoder().decode(bytes.fromhex(hex_text), key=None, auth_key=None)
    result: dict[str, Any] = json.loads(to_json(decoded))
    return result


def hex_id(text: str) -> int:
    """The id in "METER (0x32)"-style labels."""
    match = re.search(r"\(0x([0-9A-Fa-f]+)\)", text)
    assert match, text
    return int(match.group(1), 16)


def number(value: Any) -> Decimal:
    return Decimal(str(value))


def check_command_class(frame: dict[str, Any], records: list[Any], want: dict[str, Any]) -> None:
    assert frame["command_class_id"] == hex_id(want["cc"])
    assert frame["command_id"] == hex_id(want["command"])
    assert frame["command"] == want["command"].split()[0]
    for theirs, ours in SAME.items():
        if theirs in want and theirs != "length":
            assert frame[ours] == want[theirs], theirs
    if "METER_GET" in want["command"]:
        assert frame.get("scale") == want.get("decoded_scale", want.get("scale"))
    if "METER_REPORT" in want["command"]:
        scale = want["scale"]
        assert frame["scale"] == scale
        assert number(frame["value"]) == number(want["value"])
        prev = want.get("previous_value")
        assert (frame["previous_value"] is None) == (prev is None)
        if prev is not None:
            assert number(frame["previous_value"]) == number(prev)
        (record,) = records
        assert {k: record["raw"][k] for k in ("meter_type", "rate_type", "scale")} == {
            "meter_type": want["meter_type"],
            "rate_type": want["rate_type"],
            "scale": scale,
        }
        assert number(record["value"]) == number(want["value"])
        assert record["unit"] == UNITS[want["meter_type"], scale]
    else:
        assert records == []
    if "target_value" in want:
        assert number(frame["value"]) == number(want["target_value"])
        assert frame["scale"] == want["scale"]


@pytest.mark.parametrize("vector", VECTORS, ids=[f"#{i}" for i in range(len(VECTORS))])
def test_vector(vector: dict[str, Any]) -> None:
    want = vector["expected"]
    result = decode(vector["hex"])
    assert result["ok"] is True
    frame, records = result["frame"], result["records"]
    layer = want["layer"]
    if layer == "command_class":
        check_command_class(frame, records, want)
        return
    if layer == "serial_api_control_byte":
        assert frame["name"] == want["name"]
        assert frame["value"] == want["value"]
        assert records == []
        return
    assert layer == "serial_api_frame"
    assert frame["type"] == want["frame_type"].split()[0]
    assert frame["function_id"] == hex_id(want["function"])
    for theirs, ours in SAME.items():
        if theirs in want:
            assert frame[ours] == want[theirs], theirs
    if "cc" in want:
        cc = want["cc"]
        assert len(frame["payload"]) // 2 == want["cc_length"]
        check_command_class(frame, records, cc)
    if "data" in want:
        data = want["data"]
        assert len(frame["payload"]) // 2 == want["data_length"]
        assert frame["command_class_id"] == data["cc_id"]
        if "cc_command" in data:
            assert frame["command_id"] == data["cc_command"]
            assert frame["data"] == data["payload_hex"]
        else:
            assert frame["command"] == "NO_OPERATION"
    if "tx_options_flags" in want:
        assert frame["tx_flags"] == [flag.split()[0] for flag in want["tx_options_flags"]]
    if "tx_report" in want:
        report = frame["report"]
        for theirs, ours in TX_REPORT.items():
            assert report[ours] == want["tx_report"][theirs], theirs
    if "trailer" in want:
        assert frame["rssi"] == want["trailer"]["rx_rssi_dbm"]
        assert frame["security_key"] == want["trailer"]["security_key"]
    if "multicast_node_mask_length" in want:
        assert len(frame["multicast_mask"]) // 2 == want["multicast_node_mask_length"]
        assert frame["rssi"] == want["rssi"]


def test_every_vector_layer_is_checked() -> None:
    layers = {vector["expected"]["layer"] for vector in VECTORS}
    assert layers == {"command_class", "serial_api_control_byte", "serial_api_frame"}


def test_property_key_name_of_the_report_frame() -> None:
    # zwave-js names this value Electric_kWh_Consumed; ours is the A+ register.
    (record,) = decode(VECTORS[8]["hex"])["records"]
    assert (record["name"], record["obis"], record["unit"]) == ("energy_import", "1-0:1.8.0", "kWh")
    assert record["value"] == 796.23
    assert record["raw"]["delta_time_s"] == 301
