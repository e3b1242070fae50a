"""``[mqtt]`` config rules: caught with the key path before any connection is tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config
from gateway.errors import ConfigError


@pytest.mark.parametrize(
    ("mqtt", "path", "words"),
    [
        ('base_topic = "a/+/b"', "mqtt.base_topic", "wildcards"),
        ('base_topic = "meters/"', "mqtt.base_topic", "empty levels"),
        ('discovery_prefix = ""', "mqtt.discovery_prefix", "topic prefix"),
        ('username = "u"\npassword = "p"\npassword_file = "{secret}"', "mqtt", "not both"),
        ('password = "p"', "mqtt.username", "needs a username"),
        ("port = 0", "mqtt.port", "1..65535"),
        ("keepalive_s = 0", "mqtt.keepalive_s", "1..65535"),
        ("outbox_max_mb = 0.0", "mqtt.outbox_max_mb", "greater than 0"),
        ('outbox_policy = "drop_all"', "mqtt.outbox_policy", "drop_all"),
        ("availability_timeout_s = -1.0", "mqtt.availability_timeout_s", "greater than 0"),
        ('[mqtt.tls]\nca_file = "{tmp}/nope.pem"', "mqtt.tls.ca_file", "no such file"),
        ('[mqtt.tls]\nkey_file = "{secret}"', "mqtt.tls.cert_file", "needs cert_file"),
        ("[mqtt.tls]\nverify = false", "mqtt.tls", "unknown field `verify`"),
    ],
)
def test_mqtt_mistakes_name_their_key(tmp_path: Path, mqtt: str, path: str, words: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    text = "[mqtt]\n" + mqtt.format(secret=secret, tmp=tmp_path) + '\n[[meters]]\nid = "main"\n'
    with pytest.raises(ConfigError) as caught:
        config.loads(text, source="g.toml")
    assert caught.value.path == path
    assert words in str(caught.value)


def test_meter_ids_that_collide_with_gateway_topics_are_refused() -> None:
    with pytest.raises(ConfigError, match="the gateway's own MQTT topics") as caught:
        config.loads('[[meters]]\nid = "raw"\n')
    assert caught.value.path == "meters[0].id"


def test_a_complete_secure_mqtt_section_loads(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key", "password"):
        (tmp_path / name).write_text("x\n")
    settings = config.loads(
        f"""
[mqtt]
host = "broker.lan"
port = 8883
username = "meter"
password_file = "{tmp_path}/password"
protocol = "5"
base_topic = "home/meters"
[mqtt.tls]
ca_file = "{tmp_path}/ca.pem"
cert_file = "{tmp_path}/client.pem"
key_file = "{tmp_path}/client.key"
[[meters]]
id = "main"
"""
    )
    assert settings.mqtt.tls is not None
    assert settings.mqtt.tls.insecure is False
    assert settings.mqtt.base_topic == "home/meters"
