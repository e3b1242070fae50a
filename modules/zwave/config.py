"""``[[modules]] type = "zwave"``: the stick, what the node reports and how often."""

from __future__ import annotations

from typing import Literal

from gateway.config import ModuleConfig

__all__ = ["ZwaveConfig"]


class ZwaveConfig(ModuleConfig, frozen=True):
    """A Z-Wave meter node that shows ``meter`` to in-home displays and controllers."""

    meter: str  # the meter whose registers the node reports
    # The stick: better its /dev/serial/by-id/... name; socket://host:port through ser2net.
    port: str = "/dev/ttyACM0"
    # Which of the meter's display lists the node follows; ``obis`` replaces it when not empty.
    display_list: Literal["auto", "manual", "battery"] = "auto"
    obis: tuple[str, ...] = ()
    # Learn mode's time-out and the stick's silence are checked this often. Reports need no
    # timer: the node is told of the meter's changes (and wakes for periodic reports).
    poll_interval_s: float = 1.0
    report_min_interval_s: float = 10.0  # never two unsolicited reports of a value closer
    report_interval_s: float = 300.0  # every value to the lifeline at least this often; 0: never
    report_delta_kwh: float = 0.1  # energy (kWh, kvarh, kVAh) change that is worth a report
    report_delta_pct: float = 10.0  # relative change of W, V, A, kvar, power factor
    learn_timeout_s: float = 60.0  # learn mode (inclusion/exclusion) gives up after this
    manufacturer_id: int = 0xFFFF  # Manufacturer Specific Report: 0xFFFF is "not defined"
    product_type: int = 0x0382
    product_id: int = 0x0001
    # What the node offers a controller that includes it securely (empty: joins insecurely).
    security: tuple[Literal["s2_authenticated", "s2_unauthenticated", "s0"], ...] = (
        "s2_authenticated",
        "s2_unauthenticated",
        "s0",
    )
    # The node's S2 key pair and the network keys it is given; "" puts it in the data
    # directory as zwave-<module name>-keys.json (mode 0600).
    keys_file: str = ""

    def __post_init__(self) -> None:
        for name in ("manufacturer_id", "product_type", "product_id"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"`{name}` is a 16-bit id (0..65535)")
        for name in ("poll_interval_s", "report_min_interval_s", "learn_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive")
        if self.report_interval_s < 0 or self.report_delta_kwh < 0 or self.report_delta_pct < 0:
            raise ValueError("report intervals and thresholds cannot be negative")
