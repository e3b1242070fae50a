"""The shipped unit file keeps the promises the README makes."""

from __future__ import annotations

import configparser

from tests.support.processes import ROOT


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "systemd" / "meter-gateway.service")
    return parser


def test_notify_with_watchdog_and_reload() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert "HUP" in service["ExecReload"]
    assert service["StateDirectory"] == "meter-gateway"


def test_hardened_but_serial_and_gpio_reachable() -> None:
    text = (ROOT / "systemd" / "meter-gateway.service").read_text()
    service = unit()["Service"]
    assert service["SupplementaryGroups"] == "dialout gpio"
    assert service["DynamicUser"] == "yes"
    assert "PrivateDevices=yes" not in text, "it would hide the serial ports and gpiochips"
    for key in ("ProtectSystem", "NoNewPrivileges", "RestrictAddressFamilies", "SystemCallFilter"):
        assert key in service
