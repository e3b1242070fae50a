"""The gateway configurations the end-to-end tests start, written in one place.

Tests differ in their modules and in which outputs are on; the rest (zeroconf off, MQTT on a
loopback broker with a short keepalive, the data directory) is the same, so they say just what
differs. Most of them run one meter fed by the sim module (``sim_gateway_toml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def gateway_toml(
    data_dir: Path,
    modules: str,
    *,
    name: str | None = None,
    persist_interval_s: float | None = None,
    mqtt_port: int | None = None,
    mqtt: str = "",
    http_port: int | None = None,
    meters: Sequence[str] = ("main",),
) -> str:
    """A gateway with ``meters`` and ``modules`` (TOML); MQTT and HTTP off unless given a port.

    ``mqtt_port``: the broker on that loopback port, with a 5 s keepalive so that a lost broker
    is noticed within a test's patience, and ``mqtt`` as more [mqtt] lines. ``http_port``: the
    HTTP API on that port. Unset values are the gateway's defaults.
    """
    gateway = [f'data_dir = "{data_dir}"']
    if name is not None:
        gateway.insert(0, f'name = "{name}"')
    if persist_interval_s is not None:
        gateway.append(f"persist_interval_s = {persist_interval_s}")
    if mqtt_port is None:
        mqtt_lines = ["enabled = false"]
    else:
        mqtt_lines = ['host = "127.0.0.1"', f"port = {mqtt_port}", "keepalive_s = 5", mqtt]
    http = "enabled = false" if http_port is None else f"port = {http_port}"
    sections = (
        ("[gateway]", *gateway),
        ("[mqtt]", *mqtt_lines),
        ("[http]", http),
        ("[zeroconf]", "enabled = false"),
        *(("[[meters]]", f'id = "{meter}"') for meter in meters),
    )
    text = "\n".join(line for section in sections for line in section if line)
    return f"{text}\n{modules}"


def sim_gateway_toml(
    data_dir: Path,
    *,
    name: str | None = None,
    persist_interval_s: float | None = None,
    mqtt_port: int | None = None,
    mqtt: str = "",
    http_port: int | None = None,
    speed: float | None = None,
    interval_s: float = 0.2,
    pv_kwp: float | None = None,
    more: str = "",
) -> str:
    """Meter "main" fed by sim module "sim1" at ``speed`` (meter seconds a second) every
    ``interval_s``; ``more``: TOML after it (another module, say). The rest: ``gateway_toml``.
    """
    sim = ["[[modules]]", 'type = "sim"', 'name = "sim1"', 'meter = "main"']
    sim.append(f"interval_s = {interval_s}")
    if speed is not None:
        sim.append(f"speed = {speed}")
    if pv_kwp is not None:
        sim.append(f"pv_kwp = {pv_kwp}")
    return gateway_toml(
        data_dir,
        "\n".join(sim) + f"\n{more}",
        name=name,
        persist_interval_s=persist_interval_s,
        mqtt_port=mqtt_port,
        mqtt=mqtt,
        http_port=http_port,
    )
