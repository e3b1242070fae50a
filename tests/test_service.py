"""install-service / uninstall-service into a temporary root, and the wheel that pipx installs."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from gateway import __version__, service
from gateway.errors import GatewayError
from tests.support.processes import GATEWAY, ROOT


class UnitParser(configparser.ConfigParser):
    """systemd keys are case-sensitive (ConfigParser lowercases them by default)."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def unit_of(text: str) -> configparser.SectionProxy:
    parser = UnitParser(strict=False, interpolation=None)
    parser.read_string(text)
    return parser["Service"]


def run_cli(*args: str, command: Path = GATEWAY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_install_writes_user_config_and_unit_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "group").write_text("root:x:0:\ndialout:x:20:\ngpio:x:997:\n")
    done = run_cli("install-service", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    unit_file = tmp_path / "etc/systemd/system/meter-gateway.service"
    config_file = tmp_path / "etc/meter-gateway/gateway.toml"
    sysusers = tmp_path / "etc/sysusers.d/meter-gateway.conf"
    for path in (unit_file, config_file, sysusers):
        assert f"wrote {path}" in done.stdout
    assert "skipped (--root): systemctl enable --now meter-gateway" in done.stdout
    unit = unit_of(unit_file.read_text())
    assert unit["ExecStart"] == f"{GATEWAY} run --config /etc/meter-gateway/gateway.toml"
    assert (unit["User"], unit["Group"]) == ("meter-gateway", "meter-gateway")
    assert unit["SupplementaryGroups"] == "dialout gpio"  # gpio: this root has the group
    assert "DynamicUser" not in unit
    # The shipped hardening is kept as it is.
    shipped = unit_of((ROOT / "systemd" / "meter-gateway.service").read_text())
    for key in ("ProtectSystem", "NoNewPrivileges", "SystemCallFilter", "StateDirectory"):
        assert unit[key] == shipped[key]
    assert unit["CapabilityBoundingSet"] == ""
    assert sysusers.read_text().splitlines()[1:] == [
        'u meter-gateway - "meter-gateway service" /var/lib/meter-gateway -',
        "m meter-gateway dialout",
        "m meter-gateway gpio",
    ]
    assert 'data_dir = "/var/lib/meter-gateway"' in config_file.read_text()
    assert run_cli("check-config", str(config_file)).returncode == 0
    assert config_file.stat().st_mode & 0o777 == 0o640
    if shutil.which("systemd-sysusers"):
        # The user really exists in the root's passwd, with the groups.
        passwd = (tmp_path / "etc/passwd").read_text()
        assert "meter-gateway:x:" in passwd and "/usr/sbin/nologin" in passwd
        groups = (tmp_path / "etc/group").read_text()
        assert "gpio:x:997:meter-gateway" in groups and "dialout:x:20:meter-gateway" in groups


def test_without_gpio_low_ports_and_an_existing_config(tmp_path: Path) -> None:
    config_file = tmp_path / "etc/meter-gateway/gateway.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("# mine\n")
    done = run_cli("install-service", "--root", str(tmp_path), "--low-ports", "--no-start")
    assert done.returncode == 0, done.stderr
    assert f"kept {config_file} (it exists)" in done.stdout
    assert config_file.read_text() == "# mine\n"
    assert "skipped (--root): systemctl enable meter-gateway" in done.stdout
    unit = unit_of((tmp_path / "etc/systemd/system/meter-gateway.service").read_text())
    assert unit["SupplementaryGroups"] == "dialout"
    assert unit["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert unit["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"


def test_uninstall_removes_the_service_and_keeps_the_data(tmp_path: Path) -> None:
    assert run_cli("install-service", "--root", str(tmp_path)).returncode == 0
    done = run_cli("uninstall-service", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "etc/systemd/system/meter-gateway.service").exists()
    assert not (tmp_path / "etc/sysusers.d/meter-gateway.conf").exists()
    assert (tmp_path / "etc/meter-gateway/gateway.toml").exists()
    assert "kept" in done.stdout and "removed" in done.stdout


def test_refused_without_root_and_without_a_root_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    plan = service.ServicePlan(root=Path("/"))
    said: list[str] = []
    for action in (service.install, service.uninstall):
        with pytest.raises(GatewayError, match=r"must run as root.*--root DIR"):
            action(plan, said.append)
    assert said == []  # nothing was done before the refusal


def test_cli_refusal_is_clear_for_a_normal_user(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        nobody = shutil.which("setpriv")
        assert nobody, "setpriv (util-linux) runs the CLI as an unprivileged user"
        argv = [nobody, "--reuid=65534", "--regid=65534", "--clear-groups", str(GATEWAY)]
    else:
        argv = [str(GATEWAY)]
    done = subprocess.run(
        [*argv, "install-service"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "must run as root" in done.stderr and "--root DIR" in done.stderr


def test_the_packaged_unit_is_the_shipped_one() -> None:
    from importlib import resources  # noqa: PLC0415

    packaged = resources.files("gateway").joinpath("meter-gateway.service").read_text()
    assert packaged == (ROOT / "systemd" / "meter-gateway.service").read_text()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_built_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    """What `pipx install ./meter_gateway-*.whl` does: a venv of its own, the wheel with its
    dependencies, the command on the venv's bin."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("meter_gateway-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    pip = tmp_path / "venv" / "bin" / "pip"
    installed = subprocess.run(
        [str(pip), "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    command = tmp_path / "venv" / "bin" / "meter-gateway"
    done = run_cli("version", command=command)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"meter-gateway {__version__}"
    # The unit travels in the wheel, and points at this installation's command.
    done = run_cli("install-service", "--root", str(tmp_path / "root"), command=command)
    assert done.returncode == 0, done.stderr
    unit = unit_of((tmp_path / "root/etc/systemd/system/meter-gateway.service").read_text())
    assert unit["ExecStart"].startswith(f"{command} run ")
