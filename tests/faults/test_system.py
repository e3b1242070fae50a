"""The system around the gateway: the systemd unit's exposure, its reach to devices and time."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.faults.harness import figure
from tests.support.processes import ROOT

UNIT = ROOT / "systemd" / "meter-gateway.service"
# The goal for `systemd-analyze security` (0 = fully locked down, 10 = unprotected).
EXPOSURE_GOAL = 2.0


def test_systemd_analyze_rates_the_unit_at_most_two() -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: `make test` installs Debian's systemd package"
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    exposure = float(found.group(1))
    figure("systemd-analyze security exposure", exposure)
    assert exposure <= EXPOSURE_GOAL, done.stdout


def test_hardening_leaves_serial_ports_gpio_and_time_sync_in_reach() -> None:
    text = UNIT.read_text()
    assert "SupplementaryGroups=dialout gpio" in text
    for device in ("char-ttyUSB rw", "char-ttyAMA rw", "/dev/gpiochip0 rw"):
        assert f"DeviceAllow={device}" in text
    # PrivateDevices and PrivateUsers would hide the ttys/gpiochips or the groups that open them.
    assert "PrivateDevices=yes" not in text
    assert "PrivateUsers=yes" not in text
    after = next(line for line in text.splitlines() if line.startswith("After="))
    assert "time-sync.target" in after
