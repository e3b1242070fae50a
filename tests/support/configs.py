"""The gateway configuration most end-to-end tests start: one meter fed by the sim module.

The crash, kill, broker-outage and two-gateway tests (and bench/soak_kill.py) differ only in
the sim's pace and in which outputs are on, so they say just that and share the rest.
"""

from __future__ import annotations

from pathlib import Path


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
    """Meter "main" fed by sim module "sim1"; MQTT and HTTP off unless given a port.

    ``mqtt_port``: the broker on that loopback port, with a 5 s keepalive so that a lost broker
    is noticed within a test's patience, and ``mqtt`` as more [mqtt] lines. ``http_port``: the
    HTTP API on that port. ``more``: TOML after the sim module (another module, say).
    Unset values are the gateway's defaults.
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
    sim = ['type = "sim"', 'name = "sim1"', 'meter = "main"', f"interval_s = {interval_s}"]
    if speed is not None:
        sim.append(f"speed = {speed}")
    if pv_kwp is not None:
        sim.append(f"pv_kwp = {pv_kwp}")
    sections = (
        ("[gateway]", *gateway),
        ("[mqtt]", *mqtt_lines),
        ("[http]", http),
        ("[zeroconf]", "enabled = false"),
        ("[[meters]]", 'id = "main"'),
        ("[[modules]]", *sim),
    )
    text = "\n".join(line for section in sections for line in section if line)
    return f"{text}\n{more}"
