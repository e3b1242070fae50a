"""A real gateway with only the compatibility outputs, and a full three-phase sample to feed it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway import config
from gateway.app import Gateway
from gateway.compat.serving import CompatServer
from gateway.model import Reading, Sample, utc_now
from tests.support.gateway import until

# One moment of a three-phase house exporting from its PV: phases 1 and 3 import, 2 exports.
SAMPLE = (
    Reading("1-0:1.8.0", 1234.567, "kWh"),
    Reading("1-0:1.8.1", 1000.5, "kWh"),
    Reading("1-0:1.8.2", 234.067, "kWh"),
    Reading("1-0:2.8.0", 12.345, "kWh"),
    Reading("1-0:21.8.0", 400.0, "kWh"),
    Reading("1-0:41.8.0", 434.567, "kWh"),
    Reading("1-0:61.8.0", 400.0, "kWh"),
    Reading("1-0:22.8.0", 2.0, "kWh"),
    Reading("1-0:42.8.0", 10.345, "kWh"),
    Reading("1-0:62.8.0", 0.0, "kWh"),
    Reading("1-0:1.7.0", 0.0, "W"),
    Reading("1-0:2.7.0", 700.0, "W"),
    Reading("1-0:21.7.0", 300.0, "W"),
    Reading("1-0:22.7.0", 0.0, "W"),
    Reading("1-0:41.7.0", 0.0, "W"),
    Reading("1-0:42.7.0", 1200.0, "W"),
    Reading("1-0:61.7.0", 200.0, "W"),
    Reading("1-0:62.7.0", 0.0, "W"),
    Reading("1-0:32.7.0", 231.4, "V"),
    Reading("1-0:52.7.0", 232.0, "V"),
    Reading("1-0:72.7.0", 229.9, "V"),
    Reading("1-0:31.7.0", 1.5, "A"),
    Reading("1-0:51.7.0", 5.25, "A"),
    Reading("1-0:71.7.0", 1.0, "A"),
    Reading("1-0:14.7.0", 50.02, "Hz"),
)


def settings_text(tmp_path: Path, sections: str) -> str:
    """A gateway with one meter "house", no MQTT, no LAN API, no zeroconf, plus ``sections``."""
    return f"""
[gateway]
name = "compat"
data_dir = "{tmp_path / "data"}"
timezone = "Europe/Copenhagen"

[mqtt]
enabled = false

[http]
enabled = false

[zeroconf]
enabled = false

[[meters]]
id = "house"
name = "House meter"
manufacturer = "Kamstrup"
model = "382L"

{sections}
"""


def feed(gateway: Gateway) -> None:
    """The sample above, stamped now."""
    gateway.submit("test", Sample(meter="house", source="test", at=utc_now(), readings=SAMPLE))


@asynccontextmanager
async def compat_gateway(text: str) -> AsyncIterator[tuple[Gateway, list[CompatServer]]]:
    """Gateway.serve() with its default outputs; yields it and its started compat outputs."""
    gateway = Gateway(config.loads(text))
    serving = asyncio.create_task(gateway.serve())
    try:
        await until(lambda: gateway.ready.is_set() or serving.done(), 15, "gateway ready")
        if serving.done():
            serving.result()
        servers = [o for o in gateway.outputs if isinstance(o, CompatServer)]
        await until(lambda: all(s.started.is_set() for s in servers), 15, "outputs listening")
        yield gateway, servers
    finally:
        gateway.request_stop()
        await asyncio.wait_for(serving, 15)


async def fed(gateway: Gateway) -> None:
    """Feed the sample and wait until its totals are committed (what every output shows)."""
    feed(gateway)
    await until(
        lambda: (
            "1-0:1.8.0" in gateway.meters.published("house")
            and float(gateway.meters.published("house")["1-0:1.8.0"].value) == 1234.567
        ),
        15,
        "totals committed",
    )
