"""``meter-gateway install-service`` / ``uninstall-service``: the gateway as a systemd service.

Installing writes a system user (through a systemd-sysusers entry, so the user is declared the
way the distribution declares its own), a config directory with a starter config, and the
systemd unit, which is the hardened unit shipped in ``systemd/`` with the user in place of
``DynamicUser`` and the running installation's executable. Every step is printed. With
``--root DIR`` everything is written under DIR and nothing touches the running system (no
systemctl), which is how the tests run it; without it the command must run as root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gateway.errors import GatewayError

__all__ = ["ServicePlan", "install", "uninstall", "unit_text"]

SERVICE = "meter-gateway"
# systemctl and systemd-sysusers finish in well under a second; a hung one is reported.
COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """Where things go; ``root`` prefixes every path (``/`` on the real system)."""

    root: Path
    user: str = SERVICE
    config_dir: str = "/etc/meter-gateway"
    data_dir: str = "/var/lib/meter-gateway"
    low_ports: bool = False  # let the service bind ports below 1024 (HomeWizard/Shelly on 80)
    start: bool = True

    @property
    def live(self) -> bool:
        """True when installing onto the running system (not into a directory)."""
        return self.root == Path("/")

    def path(self, absolute: str) -> Path:
        """``absolute`` under the root."""
        return self.root / absolute.lstrip("/")

    @property
    def unit_path(self) -> Path:
        """The unit file."""
        return self.path(f"/etc/systemd/system/{SERVICE}.service")

    @property
    def sysusers_path(self) -> Path:
        """The systemd-sysusers entry that declares the user."""
        return self.path(f"/etc/sysusers.d/{SERVICE}.conf")


def executable() -> str:
    """The ``meter-gateway`` command of this installation (pipx venv, project venv, system)."""
    beside = Path(sys.executable).with_name(SERVICE)
    if beside.is_file():
        return str(beside)
    found = shutil.which(SERVICE)
    if found:
        return str(Path(found).resolve())
    raise GatewayError(f"cannot find the {SERVICE} command beside {sys.executable} or on PATH")


def groups_present(plan: ServicePlan) -> set[str]:
    """Group names in the target system's /etc/group."""
    try:
        text = plan.path("/etc/group").read_text(encoding="utf-8")
    except OSError:
        return set()
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def supplementary_groups(plan: ServicePlan) -> list[str]:
    """dialout for serial ports always; gpio where the system has that group (Raspberry Pi OS)."""
    return ["dialout"] + (["gpio"] if "gpio" in groups_present(plan) else [])


def unit_text(plan: ServicePlan, command: str) -> str:
    """The shipped unit, made concrete for this installation."""
    text = resources.files("gateway").joinpath(f"{SERVICE}.service").read_text(encoding="utf-8")
    groups = " ".join(supplementary_groups(plan))
    config_file = f"{plan.config_dir}/gateway.toml"
    replacements = [
        (r"(?m)^ExecStart=.*$", f"ExecStart={command} run --config {config_file}"),
        (r"(?m)^DynamicUser=yes$", f"User={plan.user}\nGroup={plan.user}"),
        (r"(?m)^SupplementaryGroups=.*$", f"SupplementaryGroups={groups}"),
        (r"(?m)^WorkingDirectory=.*$", f"WorkingDirectory={plan.data_dir}"),
        # The shipped unit points at a checkout in /opt; this one was installed by the command.
        (r"(?m)^Documentation=.*\n", ""),
        (r"(?m)^# Install: see README.*$", f"# Written by `{SERVICE} install-service`."),
    ]
    if command.startswith(("/home/", "/root/")):
        # A pipx install in a home directory: the service must be able to read it.
        replacements.append((r"(?m)^ProtectHome=yes$", "ProtectHome=read-only"))
    if plan.low_ports:
        replacements += [
            (r"(?m)^CapabilityBoundingSet=$", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"),
            (r"(?m)^AmbientCapabilities=$", "AmbientCapabilities=CAP_NET_BIND_SERVICE"),
        ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement.replace("\\", "\\\\"), text)
        if count != 1 and not pattern.startswith("(?m)^# Install"):
            raise GatewayError(f"the shipped unit has no single line matching {pattern!r}")
    return text


def sysusers_text(plan: ServicePlan) -> str:
    """The user, its home (the data directory) and its groups, in sysusers.d(5) form."""
    lines = [
        f"# Written by `{SERVICE} install-service`.",
        f'u {plan.user} - "meter-gateway service" {plan.data_dir} -',
    ]
    lines += [f"m {plan.user} {group}" for group in supplementary_groups(plan)]
    return "\n".join(lines) + "\n"


def starter_config(plan: ServicePlan) -> str:
    """The embedded default config with the data directory the unit gives the service."""
    text = resources.files("gateway").joinpath("default.toml").read_text(encoding="utf-8")
    return re.sub(r'(?m)^data_dir = ".*"$', f'data_dir = "{plan.data_dir}"', text)


Say = Callable[[str], None]


def install(plan: ServicePlan, say: Say) -> None:
    """Declare the user, write config and unit, then enable (and start) the service."""
    _require_root(plan, "install-service")
    command = executable()
    _write(plan.sysusers_path, sysusers_text(plan), 0o644, say)
    if plan.live or shutil.which("systemd-sysusers"):
        _run(plan, ["systemd-sysusers", *_root_flag(plan), str(plan.sysusers_path)], say)
    else:
        say("skipped: systemd-sysusers is not installed here; the target applies the entry at boot")
    config_dir = plan.path(plan.config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    config_file = config_dir / "gateway.toml"
    if config_file.exists():
        say(f"kept {config_file} (it exists)")
    else:
        _write(config_file, starter_config(plan), 0o640, say)
    config_dir.chmod(0o750)
    _chown_group(plan, config_dir, say)
    _chown_group(plan, config_file, say)
    _write(plan.unit_path, unit_text(plan, command), 0o644, say)
    _systemctl(plan, ["daemon-reload"], say)
    _systemctl(plan, ["enable", "--now", SERVICE] if plan.start else ["enable", SERVICE], say)
    say(
        f"done: edit {config_file}, then `systemctl reload {SERVICE}`;"
        f" logs: `journalctl -u {SERVICE} -f`"
    )


def uninstall(plan: ServicePlan, say: Say) -> None:
    """Stop and disable the service, remove unit and user entry; keep config and data."""
    _require_root(plan, "uninstall-service")
    if plan.unit_path.exists():
        _systemctl(plan, ["disable", "--now", SERVICE], say)
    for path in (plan.unit_path, plan.sysusers_path):
        if path.exists():
            path.unlink()
            say(f"removed {path}")
        else:
            say(f"not there: {path}")
    _systemctl(plan, ["daemon-reload"], say)
    # As distributions do with system users: files may still belong to it (the data).
    say(
        f"kept {plan.path(plan.config_dir)}, {plan.path(plan.data_dir)} (config and meter data)"
        f" and the user {plan.user}; remove them yourself if they should go"
        f" (`userdel {plan.user}`)"
    )


# internals -------------------------------------------------------------------------------------


def _require_root(plan: ServicePlan, what: str) -> None:
    if plan.live and os.geteuid() != 0:
        raise GatewayError(
            f"{what} changes the system (a user, /etc, systemd) and must run as root:"
            f" `sudo {SERVICE} {what}`; or write the files under a directory with --root DIR"
        )


def _root_flag(plan: ServicePlan) -> list[str]:
    return [] if plan.live else [f"--root={plan.root}"]


def _write(path: Path, text: str, mode: int, say: Say) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(mode)
    temporary.replace(path)
    say(f"wrote {path}")


def _chown_group(plan: ServicePlan, path: Path, say: Say) -> None:
    """Config readable by the service's group only (secrets may live beside it)."""
    try:
        import grp  # noqa: PLC0415 - POSIX only

        gid = grp.getgrnam(plan.user).gr_gid if plan.live else _gid_in(plan)
    except KeyError:
        gid = None
    if gid is None:
        say(f"left {path} owned by root: no group {plan.user} yet")
        return
    if os.geteuid() == 0:
        os.chown(path, 0, gid)


def _gid_in(plan: ServicePlan) -> int | None:
    try:
        text = plan.path("/etc/group").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == plan.user:  # noqa: PLR2004 - name:password:uid
            return int(fields[2])
    return None


def _systemctl(plan: ServicePlan, args: list[str], say: Say) -> None:
    if not plan.live:
        say(f"skipped (--root): systemctl {' '.join(args)}")
        return
    _run(plan, ["systemctl", *args], say)


def _run(plan: ServicePlan, argv: list[str], say: Say) -> None:
    if shutil.which(argv[0]) is None:
        raise GatewayError(f"{argv[0]} is not installed; it is needed to {' '.join(argv[1:])}")
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise GatewayError(f"{' '.join(argv)} did not finish in {COMMAND_TIMEOUT_S:.0f} s") from err
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise GatewayError(f"{' '.join(argv)} failed ({done.returncode}): {detail}")
    say(f"ran {' '.join(argv)}")
