"""The shipped unit file keeps the promises the README makes."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

from tests.support.processes import ROOT


class UnitParser(configparser.ConfigParser):
    """systemd keys are case-sensitive (ConfigParser lowercases them by default)."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def unit() -> configparser.ConfigParser:
    parser = UnitParser(strict=False, interpolation=None)
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


def test_the_groups_the_unit_needs_can_be_created_where_they_are_missing(tmp_path: Path) -> None:
    # A unit whose SupplementaryGroups names a group the system lacks does not start: the
    # shipped sysusers entry creates every such group but dialout (Debian always has it).
    groups = set(unit()["Service"]["SupplementaryGroups"].split()) - {"dialout"}
    sysusers = ROOT / "systemd" / "meter-gateway.sysusers"
    declared = {
        line.split()[1]
        for line in sysusers.read_text().splitlines()
        if line.strip() and not line.startswith("#") and line.split()[0] == "g"
    }
    assert groups <= declared
    # The real tool (make test installs systemd) accepts the file and makes the group.
    tool = shutil.which("systemd-sysusers")
    assert tool is not None, "make test installs systemd (scripts/ensure-packages)"
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    subprocess.run([tool, f"--root={root}", str(sysusers)], check=True, capture_output=True)
    groups_now = (root / "etc" / "group").read_text().splitlines()
    assert any(line.startswith("gpio:") for line in groups_now)
