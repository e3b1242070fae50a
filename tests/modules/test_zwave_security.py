"""S2 and S0 inclusion of the meter node's security layer, pure: frames pumped by hand.

The node (``NodeSecurity``) and the including controller (``Includer``) only meet through the
payloads they hand each other, as over the air; every frame after the key exchange is checked
to be encrypted (no Meter Report travels in the clear).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from modules.codecs.zwave.cc.base import CommandClassId
from modules.codecs.zwave.dispatch import parse_command
from modules.codecs.zwave.meter import MeterGet, MeterReport
from modules.codecs.zwave.security.s2 import KexFail, KexFailType, MessageEncapsulation
from modules.zwave.including import Includer, InclusionMode
from modules.zwave.security import (
    KEX_SET_ECHO_INTERVAL_S,
    Frame,
    Inbound,
    Level,
    NodeSecurity,
    Secrets,
    load_secrets,
    save_secrets,
)

CONTROLLER, NODE, HOME = 1, 7, 0xC0FFEE01
SECURE = (CommandClassId.METER, CommandClassId.VERSION)
REPORT = MeterReport.of(1, 0, Decimal("1234.567")).encode()


def joining(
    offered: tuple[Level, ...],
    secrets: Secrets | None = None,
    *,
    echo_interval_s: float = KEX_SET_ECHO_INTERVAL_S,
) -> NodeSecurity:
    """A node with fresh (or the given) keys offering ``offered``."""
    return NodeSecurity(
        secrets or Secrets.generate(),
        offered,
        lambda: SECURE,
        own_node_id=NODE,
        home_id=HOME,
        echo_interval_s=echo_interval_s,
    )


class Air:
    """Both ends and the frames between them."""

    def __init__(
        self,
        node: NodeSecurity,
        includer: Includer,
        drop: Callable[[Frame], bool] = lambda _: False,
    ) -> None:
        self.node = node
        self.includer = includer
        self.now = 100.0
        self.to_controller: list[Inbound] = []
        self.to_node_app: list[Inbound] = []
        self.events: list[tuple[str, str]] = []
        self.wire: list[tuple[str, bytes]] = []
        self.drop = drop

    def pump(self, to_node: list[Frame], to_controller: list[Frame]) -> None:
        for _ in range(200):
            if not to_node and not to_controller:
                return
            if to_node:
                frame = to_node.pop(0)
                assert frame.node_id == NODE
                self.wire.append(("to_node", frame.payload))
                if self.drop(frame):
                    continue
                step = self.node.receive(CONTROLLER, frame.payload, self.now)
                self.to_node_app += step.inbound
                self.events += step.events
                to_controller += step.frames
            else:
                frame = to_controller.pop(0)
                assert frame.node_id == CONTROLLER
                self.wire.append(("to_controller", frame.payload))
                step = self.includer.receive(NODE, frame.payload, self.now)
                self.to_controller += step.inbound
                to_node += step.frames
        raise AssertionError("frames never stopped")


def include(mode: InclusionMode, *, offered: tuple[Level, ...] | None = None) -> Air:
    """Include a node with fresh keys; S2 Authenticated types the node's own PIN."""
    secrets = Secrets.generate()
    offered = offered or (Level.S2_AUTHENTICATED, Level.S2_UNAUTHENTICATED, Level.S0)
    node = joining(offered, secrets)
    node.begin_inclusion(100.0)
    includer = Includer(CONTROLLER, NODE, HOME, mode, pin=secrets.pin)
    air = Air(node, includer)
    air.pump(includer.start(air.now), [])
    return air


@pytest.mark.parametrize(
    ("mode", "granted"),
    [
        ("s2_authenticated", (Level.S2_AUTHENTICATED, Level.S2_UNAUTHENTICATED)),
        ("s2_unauthenticated", (Level.S2_UNAUTHENTICATED,)),
        ("s0", (Level.S0,)),
    ],
)
def test_inclusion_then_encrypted_reports_both_ways(
    mode: InclusionMode, granted: tuple[Level, ...]
) -> None:
    air = include(mode)
    node, includer = air.node, air.includer
    assert includer.failure is None
    assert includer.done
    assert node.granted == granted
    assert includer.level == node.highest == granted[0]
    assert includer.secure_classes == SECURE
    assert "zwave_secure_inclusion" in {kind for kind, _ in air.events}
    assert node.changed and node.secrets.granted

    # An unsolicited report from the node arrives decrypted, at the highest class.
    air.wire.clear()
    air.pump([], node.send(CONTROLLER, REPORT, node.highest, air.now))
    assert air.to_controller[-1] == Inbound(NODE, REPORT, node.highest)
    assert all(REPORT not in payload for _, payload in air.wire)
    # A Get from the controller reaches the node's application at that class too.
    get = MeterGet(0, 1, scale2_present=True).encode()
    air.pump(includer.link.send(NODE, get, includer.level, air.now), [])
    assert air.to_node_app[-1] == Inbound(CONTROLLER, get, node.highest)
    assert node.accepts(air.to_node_app[-1])
    assert not node.accepts(Inbound(CONTROLLER, get, Level.NONE))
    # Many in a row keep the SPAN in step (no new nonce exchange).
    air.wire.clear()
    for _ in range(5):
        air.pump([], node.send(CONTROLLER, REPORT, node.highest, air.now))
    if node.highest.is_s2:
        assert len(air.wire) == 5


def test_authenticated_with_a_wrong_pin_fails_and_grants_nothing() -> None:
    secrets = Secrets.generate()
    node = joining((Level.S2_AUTHENTICATED,), secrets)
    node.begin_inclusion(100.0)
    wrong = f"{(int(secrets.pin) + 1) % 65536:05d}"
    air = Air(node, Includer(CONTROLLER, NODE, HOME, "s2_authenticated", pin=wrong))
    air.pump(air.includer.start(air.now), [])
    assert not air.includer.done
    assert air.includer.failure is not None and "PIN" in air.includer.failure
    assert node.granted == ()
    assert "zwave_secure_inclusion_failed" in {kind for kind, _ in air.events}
    # The node never learns a key: its KEX Set echo cannot be read under a wrong temporary key.
    assert not any(lv.is_s2 for lv in node.link.s2_keys if lv != Level.TEMP)


def test_kex_set_granting_unrequested_keys_is_refused() -> None:
    secrets = Secrets.generate()
    node = joining((Level.S2_UNAUTHENTICATED,), secrets)
    node.begin_inclusion(0.0)
    node.receive(CONTROLLER, bytes((0x9F, 0x04)), 1.0)
    step = node.receive(CONTROLLER, bytes((0x9F, 0x06, 0x00, 0x02, 0x01, 0x02)), 1.0)
    assert [parse_command(f.payload) for f in step.frames] == [KexFail(KexFailType.KEX_KEY)]


def test_key_exchange_only_right_after_inclusion() -> None:
    node = joining((Level.S2_UNAUTHENTICATED,))
    assert node.receive(CONTROLLER, bytes((0x9F, 0x04)), 1.0).frames == []  # never armed
    node.begin_inclusion(0.0)
    assert node.receive(CONTROLLER, bytes((0x9F, 0x04)), 1000.0).frames == []  # too late


def test_lost_span_resynchronises_and_the_frame_still_arrives() -> None:
    air = include("s2_unauthenticated")
    node = air.node
    # The controller forgets its SPAN (a restart): the node's next frame cannot be read there;
    # the controller answers with a Nonce Report (SOS) and the node sends the frame again.
    air.includer.link.peer(NODE).span = None
    air.pump([], node.send(CONTROLLER, REPORT, node.highest, air.now))
    assert air.to_controller[-1] == Inbound(NODE, REPORT, Level.S2_UNAUTHENTICATED)
    kinds = [parse_command(payload).NAME for _, payload in air.wire[-3:]]
    assert kinds == [
        "SECURITY_2_MESSAGE_ENCAPSULATION",
        "SECURITY_2_NONCE_REPORT",
        "SECURITY_2_MESSAGE_ENCAPSULATION",
    ]
    resent = parse_command(air.wire[-1][1])
    assert isinstance(resent, MessageEncapsulation)
    assert resent.sender_ei() is not None  # a new SPAN


def test_replayed_frame_is_not_delivered_twice() -> None:
    air = include("s2_unauthenticated")
    get = MeterGet(0, 1, scale2_present=True).encode()
    frames = air.includer.link.send(NODE, get, air.includer.level, air.now)
    air.pump(list(frames), [])
    delivered = len(air.to_node_app)
    air.pump(list(frames), [])
    assert len(air.to_node_app) == delivered


def test_secrets_file_is_private_and_survives(tmp_path: Path) -> None:
    path = tmp_path / "data" / "zwave-keys.json"
    first = load_secrets(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secrets(path) == first
    granted = Secrets(
        first.private_key, (Level.S2_UNAUTHENTICATED,), ((Level.S2_UNAUTHENTICATED, b"\x01" * 16),)
    )
    save_secrets(path, granted)
    assert load_secrets(path) == granted
    assert first.dsk.startswith(first.pin + "-")
    path.write_text('{"private_key": "zz"}')
    with pytest.raises(ValueError, match="keys file"):
        load_secrets(path)


def test_frames_crossing_in_the_air_need_no_resynchronisation() -> None:
    air = include("s2_unauthenticated")
    node, includer = air.node, air.includer
    # Both ends send at the same moment: a burst of lifeline reports and a Get, each drawn
    # from the same SPAN before the other's frames arrive.
    reports = [f for _ in range(3) for f in node.send(CONTROLLER, REPORT, node.highest, air.now)]
    get = MeterGet(0, 1, scale2_present=True).encode()
    gets = includer.link.send(NODE, get, includer.level, air.now)
    air.wire.clear()
    air.pump(gets, reports)
    assert air.to_node_app[-1] == Inbound(CONTROLLER, get, node.highest)
    assert air.to_controller[-3:] == [Inbound(NODE, REPORT, node.highest)] * 3
    assert [parse_command(p).NAME for _, p in air.wire] == ["SECURITY_2_MESSAGE_ENCAPSULATION"] * 4
    # And the SPAN is still shared afterwards.
    air.wire.clear()
    air.pump([], node.send(CONTROLLER, REPORT, node.highest, air.now))
    assert len(air.wire) == 1 and air.to_controller[-1].payload == REPORT


def test_a_long_first_frame_establishes_the_span_on_its_own() -> None:
    air = include("s2_unauthenticated")
    node = air.node
    long_command = bytes((CommandClassId.CONFIGURATION, 0x06)) + bytes(30)
    node.link.peer(CONTROLLER).span = None
    node.link.peer(CONTROLLER).remote_ei = b"\x01" * 16  # as after a Nonce Report (SOS)
    air.includer.link.peer(NODE).local_ei = b"\x01" * 16
    air.includer.link.peer(NODE).span = None
    frames = node.send(CONTROLLER, long_command, node.highest, air.now)
    assert len(frames) == 2
    assert all(len(f.payload) <= 46 for f in frames)
    first = parse_command(frames[0].payload)
    assert isinstance(first, MessageEncapsulation) and first.sender_ei() is not None
    air.pump([], frames)
    assert air.to_controller[-1] == Inbound(NODE, long_command, node.highest)


def test_pin_typed_late_the_node_repeats_its_echo_until_read() -> None:
    secrets = Secrets.generate()
    node = joining((Level.S2_AUTHENTICATED, Level.S2_UNAUTHENTICATED), secrets, echo_interval_s=2.0)
    node.begin_inclusion(100.0)
    includer = Includer(CONTROLLER, NODE, HOME, "s2_authenticated")  # no PIN yet
    air = Air(node, includer)
    air.pump(includer.start(air.now), [])
    # The node's echo cannot be read yet; nothing is granted, nothing failed.
    assert includer.awaiting_pin
    assert not includer.done and includer.failure is None
    assert node.tick(air.now + 1.0).frames == []  # not due yet
    includer.enter_pin(secrets.pin)  # the user took a while
    air.now += 2.5
    air.pump([], node.tick(air.now).frames)
    assert includer.failure is None
    assert includer.done
    assert node.granted == (Level.S2_AUTHENTICATED, Level.S2_UNAUTHENTICATED)
    assert node.tick(air.now + 10).frames == []  # nothing repeats after the exchange


def test_key_exchange_gives_up_when_the_pin_never_comes() -> None:
    node = joining((Level.S2_AUTHENTICATED,))
    node.begin_inclusion(100.0)
    air = Air(node, Includer(CONTROLLER, NODE, HOME, "s2_authenticated"))
    air.pump(air.includer.start(air.now), [])
    assert node.tick(100.0 + 20).frames  # the echo again
    step = node.tick(100.0 + 241)
    assert [kind for kind, _ in step.events] == ["zwave_secure_inclusion_failed"]
    assert node.granted == ()
