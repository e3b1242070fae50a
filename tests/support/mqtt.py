"""MQTT test helpers: a recording subscriber, brokers with persistence, TLS and passwords."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import gateway
from tests.support.processes import Broker

# mosquitto drops root privileges to its own user, which cannot read pytest's 0700 temp dirs.
RUN_AS_INVOKER = "user root\n"
PERSISTENT = "persistence true\nmax_queued_messages 0\nautosave_interval 0\n"


@dataclass(frozen=True)
class Received:
    """One message as a subscriber saw it."""

    topic: str
    payload: bytes
    retain: bool
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class Collector:
    """A paho subscriber in its own thread that records everything it receives."""

    def __init__(
        self,
        port: int,
        topics: tuple[str, ...] = ("#",),
        *,
        client_id: str = "",
        persistent: bool = False,
        tls: dict[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Condition()
        self._connected = threading.Event()
        self._topics = topics
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
        )
        if tls:
            self.client.tls_set(**tls)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # connect_async, then loop_start: connect() before loop_start() makes paho open its
        # wake-up socket pair twice and leak the first (a ResourceWarning at random GC time).
        self.client.connect_async("localhost", port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError("collector could not connect")

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish and wait for the broker's PUBACK."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    async def apublish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """``publish`` for async tests: waits for the PUBACK in a thread, so the gateway under
        test (in this event loop) keeps running meanwhile, however slow the machine."""
        await asyncio.to_thread(self.publish, topic, payload, retain=retain)

    def on(self, topic: str) -> list[Received]:
        """Messages received on exactly this topic, in arrival order."""
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 15.0) -> None:
        """Block until ``predicate(messages)`` holds."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = sorted({m.topic for m in self.messages})
                    raise TimeoutError(f"condition not met; topics seen: {topics}")
                self._lock.wait(left)

    def wait_for(self, topic: str, count: int = 1, timeout_s: float = 15.0) -> list[Received]:
        """Block until ``count`` messages arrived on ``topic``; returns them all."""
        self.wait(lambda ms: sum(m.topic == topic for m in ms) >= count, timeout_s)
        return self.on(topic)

    async def arrived(self, topic: str, count: int = 1, timeout_s: float = 15.0) -> list[Received]:
        """``wait_for`` for async tests: polls, so the event loop keeps running."""
        await until(
            lambda: len(self.on(topic)) >= count, timeout_s, f"{count} message(s) on {topic}"
        )
        return self.on(topic)

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._lock:
            self.messages.clear()

    def _on_connect(self, client: paho.Client, _userdata: Any, flags: Any, *_: Any) -> None:
        # A resumed session still has its subscriptions; subscribing again would replay
        # retained messages as if they were new.
        if not flags.session_present:
            client.subscribe([(topic, 1) for topic in self._topics])
        else:
            self._connected.set()

    def _on_subscribe(self, *_: Any) -> None:
        self._connected.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), message.retain))
            self._lock.notify_all()


async def until(
    predicate: Callable[[], object], timeout_s: float = 15.0, what: str = "condition"
) -> None:
    """``tests.support.gateway.until`` with the longer wait a broker round trip may need."""
    await gateway.until(predicate, timeout_s, what)


def persistent_broker(workdir: Path) -> Broker:
    """A broker that keeps retained messages and offline sessions across restarts."""
    store = workdir / "mosquitto-db"
    store.mkdir(exist_ok=True)
    return Broker(workdir, RUN_AS_INVOKER + PERSISTENT + f"persistence_location {store}/\n")


@dataclass(frozen=True)
class Pki:
    """A throwaway CA with a server certificate for localhost and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def make_pki(directory: Path) -> Pki:
    """Generate the CA, certificates and keys (EC P-256, valid for a day)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("meter-gateway test CA")
    other_key, other_cert = _ca("someone else's CA")
    del other_key
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _signed(
        "localhost",
        server_key,
        ca_key,
        ca_cert,
        x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ),
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _signed("meter-gateway", client_key, ca_key, ca_cert, None)
    paths = Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.other_ca.write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    for key, path in ((server_key, paths.server_key), (client_key, paths.client_key)):
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


def secure_broker(workdir: Path, *, username: str, password: str) -> tuple[Broker, Pki]:
    """A broker with only a TLS listener that wants a client certificate and a password."""
    pki = make_pki(workdir / "pki")
    passwords = workdir / "passwd"
    passwords.touch()
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), username, password],
        check=True,
        capture_output=True,
    )
    broker = Broker(workdir)
    broker.config.write_text(
        RUN_AS_INVOKER
        + f"listener {broker.port} 127.0.0.1\n"
        + f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        + "require_certificate true\n"
        + f"allow_anonymous false\npassword_file {passwords}\npersistence false\n"
    )
    return broker, pki


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _signed(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    san: x509.SubjectAlternativeName | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256())
