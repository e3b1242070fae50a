"""The system around the gateway: the systemd unit's exposure, its reach to devices and time."""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.harness import figure, stored_totals
from tests.support.configs import sim_gateway_toml
from tests.support.processes import GATEWAY, ROOT, gateway

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


def stored_or_none(db: Path) -> dict[str, object] | None:
    """The stored totals, or None while the database is not there or not yet migrated."""
    try:
        return dict(stored_totals(db)) if db.exists() else None
    except sqlite3.OperationalError:
        return None


def test_a_notify_socket_nobody_reads_never_stalls_the_gateway(tmp_path: Path) -> None:
    """A datagram queue holds few messages (net.unix.max_dgram_qlen, often 10): a blocking
    sd_notify would freeze the event loop once a stalled manager stopped reading."""
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(str(tmp_path / "notify.sock"))
    config = tmp_path / "gateway.toml"
    config.write_text(
        sim_gateway_toml(tmp_path, persist_interval_s=0.2, speed=3600.0, interval_s=0.05)
    )
    # WATCHDOG_USEC of 0.2 s makes the gateway send WATCHDOG=1 and STATUS= ten times a second.
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}
    try:
        with gateway(config, log=tmp_path / "gateway.log", env=env):
            db = tmp_path / "gateway.db"
            deadline = time.monotonic() + 30
            while not stored_or_none(db):
                assert time.monotonic() < deadline, "the gateway never stored a register"
                time.sleep(0.2)
            time.sleep(3.0)  # 30 notifications: the queue is long full
            before = stored_totals(db)["1-0:1.8.0"]
            deadline = time.monotonic() + 30
            while stored_totals(db)["1-0:1.8.0"] <= before:
                assert time.monotonic() < deadline, "the gateway froze on a full notify queue"
                time.sleep(0.2)
    finally:
        deaf.close()


@pytest.mark.parametrize(
    "text",
    [
        # A secret beside an error elsewhere, a secret of the wrong type, a malformed key.
        '[mqtt]\npassword = "{secret}"\nusername = "u"\nport = "not a number"\n',
        '[mqtt]\nusername = "u"\npassword = ["{secret}"]\n',
        '[http]\ntoken = "{secret}"\nbind = 12\n',
        '[[meters]]\nid = "main"\n[[modules]]\ntype = "p1"\nname = "p1"\nmeter = "main"\n'
        'port = "/dev/null"\nkey = "{secret}"\n',
        '[[meters]]\nid = "main"\n[[modules]]\ntype = "p1"\nname = "p1"\nmeter = "main"\n'
        'port = "/dev/null"\nkey = "00112233445566778899aabbccddeeff"\nkey_file = "/x"\n',
    ],
)
def test_config_errors_never_echo_a_secret(tmp_path: Path, text: str) -> None:
    secret = "S3cr3t0ZZ9q8w7e6r5t4y3u2i1o0pAbCdEfG"
    path = tmp_path / "gateway.toml"
    path.write_text(text.format(secret=secret))
    done = subprocess.run(
        [str(GATEWAY), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    output = done.stdout + done.stderr
    assert secret not in output and "00112233445566778899" not in output, output
    assert "Traceback" not in output
