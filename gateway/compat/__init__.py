"""Outputs that speak other devices' local APIs (HomeWizard P1, Shelly Pro 3EM/EM), read-only,
from the typed meter view (gateway/view.py). See README.md in this folder."""

from __future__ import annotations

from gateway.view import GatewayView, Output, meter_view

__all__ = ["outputs"]


def outputs(view: GatewayView) -> list[Output]:
    """The HomeWizard and Shelly stand-ins whose sections are enabled, each on one meter."""
    settings = view.settings
    found: list[Output] = []
    announce_on = settings.zeroconf.interfaces if settings.zeroconf.enabled else None
    first = settings.meters[0].id if settings.meters else None
    if settings.homewizard.enabled:
        from gateway.compat.homewizard import HomeWizardServer  # noqa: PLC0415

        section = settings.homewizard
        meter = settings.meter(section.meter or first or "")
        model = " ".join(p for p in (meter.manufacturer, meter.model) if p) or None
        found.append(
            HomeWizardServer(
                meter_view(view, meter.id),
                section,
                gateway_name=settings.gateway.name,
                model=model,
                announce_on=announce_on if section.zeroconf else None,
            )
        )
    if settings.shelly.enabled:
        from gateway.compat.shelly import ShellyServer  # noqa: PLC0415

        shelly = settings.shelly
        found.append(
            ShellyServer(
                meter_view(view, shelly.meter or first or ""),
                shelly,
                gateway_name=settings.gateway.name,
                announce_on=announce_on if shelly.zeroconf else None,
            )
        )
    return found
