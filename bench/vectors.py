"""The decode inputs of tests/fixtures/vectors/ per protocol, as ``meter-gateway decode`` gets them.

Only what a decoder is given: the frame or telegram, its key and authentication key, and the
frames a vector says go first (wM-Bus compact frames need their full frame). Expected values
are the tests' business (tests/codecs/); the bench only needs the same bytes for every side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "fixtures" / "vectors"
PROTOCOLS = ("mbus", "wmbus", "kmp", "dlms", "dsmr", "iec62056-21", "zwave")


@dataclass(frozen=True, slots=True)
class Input:
    """One decode call: the bytes (hex decoded, or text as Latin-1), keys, where it came from."""

    name: str
    data: bytes
    key: bytes | None = None
    auth_key: bytes | None = None
    meter_id: str | None = None  # wM-Bus: the address a peer files the key under

    def peer_form(self, form: str) -> dict[str, Any]:
        """The JSON a peer job carries: data as hex or as text."""
        data = self.data.decode("latin-1") if form == "text" else self.data.hex()
        return {
            "data": data,
            "key": self.key.hex() if self.key else None,
            "auth_key": self.auth_key.hex() if self.auth_key else None,
            "meter_id": self.meter_id,
        }


def _key(value: Any) -> bytes | None:
    """A vector's key: hex, a 16-character ASCII key, or none ("NOKEY", null)."""
    if not isinstance(value, str) or value.strip().upper() in ("", "NOKEY", "NONE"):
        return None
    text = value.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode("latin-1") if len(text) == 16 else None


def _hex(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return str(value or "")


def _text(value: Any) -> bytes:
    """A text protocol's input: ``input``, ``input.text``, or hex read as Latin-1."""
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return str(value["text"]).encode("latin-1")
        for field in ("hex", "text_escaped"):
            if value.get(field):
                return bytes.fromhex(_hex(value[field]))
    return b""


def _load(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())
    return items


def inputs(protocol: str) -> list[Input]:
    """Every decode input the vectors hold for ``protocol``, in file order."""
    found: list[Input] = []
    if protocol == "mbus":
        for n, item in enumerate(_load("mbus.json")):
            if item.get("hex"):
                found.append(Input(f"mbus.json#{n}", bytes.fromhex(item["hex"])))
    elif protocol == "wmbus":
        for file in ("wmbus_all.json", "wmbus_kamstrup_reencrypted.json"):
            for n, item in enumerate(_load(file)):
                if item.get("frame_type", "wmbus") != "wmbus" or not item.get("hex"):
                    continue
                key = _key(item.get("key"))
                meter_id = str(item.get("id") or "") or None
                for p, prior in enumerate(item.get("prior_hex") or []):
                    found.append(
                        Input(f"{file}#{n}.{p}", bytes.fromhex(prior), key, None, meter_id)
                    )
                found.append(Input(f"{file}#{n}", bytes.fromhex(item["hex"]), key, None, meter_id))
    elif protocol == "kmp":
        for n, item in enumerate(_load("kmp.json")):
            frame = (item.get("input") or {}).get("physical_frame_hex")
            if frame:
                found.append(Input(f"kmp.json#{n}", bytes.fromhex(frame)))
    elif protocol == "dlms":
        for n, item in enumerate(_load("dlms.json")):
            raw = _hex((item.get("input") or {}).get("hex"))
            keys = item.get("key")
            if not isinstance(keys, dict):
                keys = {"encryption_key": keys}
            if raw:
                found.append(
                    Input(
                        f"dlms.json#{n}",
                        bytes.fromhex(raw),
                        _key(keys.get("encryption_key")),
                        _key(keys.get("authentication_key")),
                    )
                )
    elif protocol in ("dsmr", "iec62056-21", "zwave"):
        files = {"dsmr": "dsmr.json", "iec62056-21": "iec62056_21.json", "zwave": "zwave.json"}
        for n, item in enumerate(_load(files[protocol])):
            if protocol == "zwave":
                data = bytes.fromhex(item.get("hex") or _hex(item.get("input")))
            else:
                data = _text(item.get("input"))
            if data:
                found.append(Input(f"{files[protocol]}#{n}", data))
    else:
        raise ValueError(f"no vectors for {protocol!r}")
    return found
