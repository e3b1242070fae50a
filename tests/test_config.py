"""Config: every shipped file loads; every mistake names its file and key path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway import config
from gateway.engine import settings
from gateway.errors import ConfigError
from tests.support.processes import GATEWAY, ROOT

CONF_FILES = sorted((ROOT / "conf").rglob("*.toml"))

MINIMAL = """
[[meters]]
id = "main"

[[modules]]
type = "sim"
name = "sim1"
meter = "main"
"""


def test_conf_folder_has_reference_and_examples() -> None:
    names = {path.relative_to(ROOT / "conf").as_posix() for path in CONF_FILES}
    assert "gateway.toml" in names
    assert any(name.startswith("examples/") for name in names)


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_config_loads(path: Path) -> None:
    settings = config.load(path)
    # Receivers and decode workers have no meters: they hand frames or samples to the broker.
    hands_on = settings.cluster.receiver or any(m.type == "decode_worker" for m in settings.modules)
    assert settings.meters or hands_on, "a config without meters is not a useful example"
    for module in settings.modules:
        assert module.name


def test_embedded_default_runs_a_sim_meter_on_localhost() -> None:
    settings = config.default()
    assert [m.type for m in settings.modules] == ["sim"]
    assert settings.http.bind == "127.0.0.1"
    assert settings.http.port == 8382
    assert settings.gateway.data_dir == "./var"


def test_reference_documents_every_key() -> None:
    """Every key a section accepts appears in conf/gateway.toml (commented or not)."""
    text = (ROOT / "conf" / "gateway.toml").read_text()
    sections = [
        config.GatewaySection,
        config.MqttSection,
        config.TlsSection,
        config.HttpSection,
        config.ZeroconfSection,
        config.HomeWizardSection,
        config.ShellySection,
        config.MeterConfig,
        settings.TariffSettings,
        settings.TariffSeason,
        settings.DebitingSettings,
        settings.DemandSettings,
        settings.ProfileSettings,
        settings.AnalysisSettings,
        settings.DisplaySettings,
        settings.LimitSettings,
        settings.BreakerSettings,
        settings.SmartDisconnectSettings,
        settings.PrepaymentSettings,
        settings.FriendlyHours,
    ]
    for section in sections:
        for field in section.__struct_fields__:
            documented = f"{field} =" in text or f".{field}]" in text
            assert documented, f"{section.__name__}.{field} is not documented"


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        (MINIMAL + "spede = 2.0\n", "modules[0]", "unknown field `spede`"),
        (MINIMAL.replace("[[meters]]", "[mqtt]\nprot = 1883\n[[meters]]"), "mqtt", "`prot`"),
        (MINIMAL.replace('id = "main"', 'id = "main"\nname = 7'), "meters[0].name", "str"),
        ('[http]\nport = "80"\n', "http.port", "int"),
        ('[[meters]]\nname = "x"\n', "meters[0]", "missing required field `id`"),
        (MINIMAL.replace('meter = "main"', 'meter = "other"'), "modules[0].meter", "other"),
        (MINIMAL.replace('type = "sim"', 'type = "simm"'), "modules[0].type", "simm"),
        (MINIMAL.replace('name = "sim1"', 'name = "sim 1"'), "modules[0].name", "letters"),
        (
            MINIMAL + '\n[[modules]]\ntype = "sim"\nname = "sim1"\nmeter = "main"\n',
            "modules[1].name",
            "duplicate",
        ),
        ('[gateway]\ntimezone = "Mars/Olympus"\n', "gateway.timezone", "Mars"),
        ('[[meters]]\nid = "status"\n', "meters[0].id", "gateway's own MQTT topics"),
        ('[gateway]\nname = "attic"\n[[meters]]\nid = "attic"\n', "meters[0].id", "choose"),
        ('[mqtt]\nprotocol = "4"\n', "mqtt.protocol", "4"),
        ("[gateway\n", None, "TOML"),
    ],
)
def test_mistakes_name_the_key_path(
    text: str, path: str | None, words: str, tmp_path: Path
) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(file)
    message = str(caught.value)
    assert str(file) in message
    assert words in message
    if path is not None:
        assert caught.value.path == path
        assert f"at {path}" in message


def test_secret_files_are_checked(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(f'[mqtt]\npassword_file = "{tmp_path}/nope"\n')
    with pytest.raises(ConfigError, match=r"mqtt.password_file.*no such file"):
        config.load(file)
    (tmp_path / "secret").write_text("  s3cret\n")
    assert config.read_secret(str(tmp_path / "secret"), what="mqtt.password") == "s3cret"


def test_check_config_cli_refuses_and_touches_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[gateway]\ndata_dir = "{data_dir}"\n' + MINIMAL + "typo = 1\n")
    result = subprocess.run(
        [str(GATEWAY), "check-config", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "modules[0]" in result.stderr and "typo" in result.stderr
    run = subprocess.run(
        [str(GATEWAY), "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert run.returncode != 0
    assert "typo" in run.stderr
    assert not data_dir.exists(), "a refused config must not create state"


def test_check_config_cli_accepts_the_reference() -> None:
    result = subprocess.run(
        [str(GATEWAY), "check-config", str(ROOT / "conf" / "gateway.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
