"""The outputs `meter-gateway run` serves, each imported only when its config section is on.

The supervisor is handed its outputs (``Gateway(outputs=...)``; this table by default) and
imports none of them, so a gateway without MQTT never loads the MQTT client, and the outputs,
which read ``gateway.view`` only, never import the supervisor back.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config import Settings
from gateway.registry import load
from gateway.view import GatewayView, Output

__all__ = ["OUTPUTS", "default_outputs"]

# In start order: whether the output's section is on, and its ``outputs(view) -> list[Output]``.
OUTPUTS: tuple[tuple[Callable[[Settings], bool], str], ...] = (
    (lambda settings: settings.mqtt.enabled, "gateway.mqtt:outputs"),
    (lambda settings: settings.http.enabled, "gateway.lan:outputs"),
    (
        lambda settings: settings.homewizard.enabled or settings.shelly.enabled,
        "gateway.compat:outputs",
    ),
)


def default_outputs(view: GatewayView) -> list[Output]:
    """The outputs whose sections are enabled, built on ``view``."""
    outputs: list[Output] = []
    for enabled, target in OUTPUTS:
        if enabled(view.settings):
            outputs.extend(load(target)(view))
    return outputs
