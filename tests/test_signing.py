"""Signed MQTT commands: what is accepted, and every way a payload is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import CommandError
from gateway.signing import CommandVerifier, canonical, sign, sign_payload

SECRET = b"correct horse battery staple"
NOW = 1_767_225_600.0
GATEWAY = "home"


def verifier(max_age_s: float = 30.0) -> CommandVerifier:
    return CommandVerifier(SECRET, max_age_s, gateway=GATEWAY)


def payload(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode()


def refused(code: str, body: bytes, *, meter: str = "main", command: str = "top_up") -> str:
    with pytest.raises(CommandError) as caught:
        verifier().verify(meter, command, body, NOW)
    assert caught.value.code == code, str(caught.value)
    return str(caught.value)


def test_a_signed_command_is_accepted_with_its_id_and_args() -> None:
    args = {"id": "t-1", "sequence": 1, "amount": "25.5"}
    body = sign_payload(
        GATEWAY, "main", "top_up", args, secret=SECRET, command_id="c-1", ts=NOW - 5
    )
    command = verifier().verify("main", "top_up", body, NOW)
    assert (command.meter, command.name, command.id, command.source) == (
        "main",
        "top_up",
        "c-1",
        "mqtt",
    )
    assert dict(command.args) == args


def test_the_canonical_form_is_sorted_compact_utf8_with_integral_numbers() -> None:
    args = {"z": 2.0, "a": "ø", "n": [1.5, True]}
    text = canonical(GATEWAY, "main", "set_limits", args, command_id="x", ts=10.0)
    assert (
        text
        == (
            '{"args":{"a":"ø","n":[1.5,true],"z":2},"command":"set_limits","gateway":"home",'
            '"id":"x","meter":"main","ts":10}'
        ).encode()
    )
    # A client that writes 2 where another writes 2.0 signs the same command.
    one = sign(GATEWAY, "main", "set_limits", {"power_w": 2}, secret=SECRET, command_id="a", ts=1)
    two = sign(
        GATEWAY, "main", "set_limits", {"power_w": 2.0}, secret=SECRET, command_id="a", ts=1.0
    )
    assert one["hmac"] == two["hmac"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_documented_openssl_recipe_makes_an_accepted_signature() -> None:
    ts = int(NOW)
    body = (
        f'{{"args":{{}},"command":"disconnect","gateway":"home","id":"c-{ts}","meter":"main",'
        f'"ts":{ts}}}'
    )
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET.decode(), "-r"],
        input=body.encode(),
        capture_output=True,
        check=True,
    ).stdout
    mac = out.split()[0].decode()
    message = f'{{"args":{{}},"id":"c-{ts}","ts":{ts},"hmac":"{mac}"}}'.encode()
    assert verifier().verify("main", "disconnect", message, NOW).name == "disconnect"


def test_unsigned_commands_are_refused_with_a_reason() -> None:
    assert "must be signed" in refused("unsigned", b'{"id": "t", "sequence": 1, "amount": 5}')
    assert "not a signed JSON" in refused("unsigned", b"PRESS")
    refused("unsigned", b"[1, 2]")
    refused("unsigned", b"\xff\xfe")
    refused("unsigned", b"[" * 100_000)


def test_tampering_with_any_signed_part_is_refused() -> None:
    good = sign(GATEWAY, "main", "top_up", {"amount": "5"}, secret=SECRET, command_id="c", ts=NOW)
    for change in ({"args": {"amount": "500"}}, {"id": "d"}, {"ts": NOW - 1}):
        refused("bad_signature", payload({**good, **change}))
    # The topic is signed too: the same payload for another command or meter is refused.
    refused("bad_signature", payload(good), command="disconnect")
    refused("bad_signature", payload(good), meter="garage")
    other = sign(
        GATEWAY, "main", "top_up", {"amount": "5"}, secret=b"wrong", command_id="c", ts=NOW
    )
    assert "wrong secret" in refused("bad_signature", payload(other))
    refused("bad_signature", payload({**good, "hmac": "zz"}))
    refused("bad_signature", payload({**good, "hmac": "é" * 64}))


def test_shape_errors_name_the_field() -> None:
    good = sign(GATEWAY, "main", "top_up", {}, secret=SECRET, command_id="c", ts=NOW)
    assert "unexpected ['extra']" in refused("bad_payload", payload({**good, "extra": 1}))
    without_ts = {k: v for k, v in good.items() if k != "ts"}
    assert "missing ['ts']" in refused("bad_payload", payload(without_ts))
    assert '"args"' in refused("bad_payload", payload({**good, "args": [1]}))
    assert '"id"' in refused("bad_payload", payload({**good, "id": ""}))
    assert '"id"' in refused("bad_payload", payload({**good, "id": "x" * 65}))
    assert '"ts"' in refused("bad_payload", payload({**good, "ts": "now"}))
    assert '"ts"' in refused("bad_payload", payload({**good, "ts": True}))
    assert '"ts"' in refused("bad_payload", b'{"args":{},"id":"c","ts":NaN,"hmac":"00"}')
    nan_args = b'{"args":{"x":NaN},"id":"c","ts":1,"hmac":"' + b"0" * 64 + b'"}'
    assert "cannot be signed" in refused("bad_payload", nan_args)


def test_deeply_nested_args_are_refused_not_raised() -> None:
    deep: object = 1
    for _ in range(900):
        deep = [deep]
    body = payload({"args": {"x": deep}, "id": "d", "ts": NOW, "hmac": "0" * 64})
    assert "nested too deeply" in refused("bad_payload", body)


def test_old_and_future_timestamps_are_stale() -> None:
    old = sign_payload(GATEWAY, "main", "arm", {}, secret=SECRET, command_id="a", ts=NOW - 31)
    assert "31 s old" in refused("stale", old, command="arm")
    future = sign_payload(GATEWAY, "main", "arm", {}, secret=SECRET, command_id="b", ts=NOW + 31)
    assert "in the future" in refused("stale", future, command="arm")
    edge = sign_payload(GATEWAY, "main", "arm", {}, secret=SECRET, command_id="c", ts=NOW - 30)
    assert verifier().verify("main", "arm", edge, NOW).id == "c"


def test_a_replay_inside_the_window_is_refused_and_ids_are_forgotten_after_it() -> None:
    check = verifier(max_age_s=30)
    body = sign_payload(GATEWAY, "main", "reconnect", {}, secret=SECRET, command_id="r1", ts=NOW)
    check.verify("main", "reconnect", body, NOW)
    with pytest.raises(CommandError) as caught:
        check.verify("main", "reconnect", body, NOW + 10)
    assert caught.value.code == "replayed"
    with pytest.raises(CommandError) as caught:
        check.verify("main", "reconnect", body, NOW + 31)
    assert caught.value.code == "stale", "after the window the timestamp refuses it"
    # The memory does not grow without bound: old ids are forgotten.
    later = sign_payload(
        GATEWAY, "main", "reconnect", {}, secret=SECRET, command_id="r2", ts=NOW + 100
    )
    check.verify("main", "reconnect", later, NOW + 100)
    assert list(check._seen) == ["r2"]


def test_an_empty_secret_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="empty"):
        CommandVerifier(b"", 30, gateway=GATEWAY)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    args=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    command_id=st.text(min_size=1, max_size=20),
    skew=st.floats(-30, 30),
)
def test_whatever_a_client_signs_verifies(
    args: dict[str, object], command_id: str, skew: float
) -> None:
    body = sign_payload(
        GATEWAY, "main", "set_limits", args, secret=SECRET, command_id=command_id, ts=NOW
    )
    command = CommandVerifier(SECRET, 30, gateway=GATEWAY).verify(
        "main", "set_limits", body, NOW + skew
    )
    assert command.id == command_id
    assert json.dumps(command.args, sort_keys=True) == json.dumps(
        json.loads(body)["args"], sort_keys=True
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_mutated_payload_is_refused_with_a_command_error_only(data: st.DataObject) -> None:
    body = bytearray(
        sign_payload(GATEWAY, "main", "top_up", {"amount": "5", "n": 1}, secret=SECRET, ts=NOW)
    )
    position = data.draw(st.integers(0, len(body) - 1))
    action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if action == "flip":
        body[position] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "cut":
        del body[position:]
    else:
        body[position:position] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        command = CommandVerifier(SECRET, 30, gateway=GATEWAY).verify(
            "main", "top_up", bytes(body), NOW
        )
    except CommandError:
        return
    # A change JSON does not see (whitespace, an escaped letter) may still verify, but then
    # it carries exactly what was signed.
    assert dict(command.args) == {"amount": "5", "n": 1}


def test_a_command_signed_for_another_gateway_or_without_one_is_refused() -> None:
    """Two gateways that share a secret: a command captured on one cannot be replayed on the
    other, and a sender still signing the document without the gateway is told what to add."""
    for_other = sign_payload("garage", "main", "reconnect", {}, secret=SECRET, ts=NOW)
    message = refused("bad_signature", for_other, command="reconnect")
    assert "gateway" in message
    document = {"args": {}, "id": "old-1", "ts": NOW}
    legacy = canonical(None, "main", "reconnect", {}, command_id="old-1", ts=NOW)
    document["hmac"] = hmac.new(SECRET, legacy, hashlib.sha256).hexdigest()
    message = refused("bad_signature", payload(document), command="reconnect")
    assert 'must hold "gateway": "home"' in message
