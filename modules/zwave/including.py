"""The including controller's side of S2 bootstrapping and S0 inclusion, sans-IO.

The controller emulator (``emulator.py``) runs it after the stick reports an inclusion, so a
test includes the gateway's node securely the way Z-Wave JS does: KEX Get, KEX Set and both
public keys in the clear, the echoes and every network key under the temporary key, Network
Key Verify under each new key, Transfer End; or, for S0, Scheme Get and the network key under
the all-zero key. Afterwards its ``link`` carries every frame to the node at ``level``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from modules.codecs.zwave.cc.base import CcCommand, CommandClassId
from modules.codecs.zwave.dispatch import parse_command
from modules.codecs.zwave.security.crypto import (
    KEY_BYTES,
    network_keys,
    public_key,
    s0_keys,
    shared_secret,
    temporary_keys,
)
from modules.codecs.zwave.security.s0 import (
    S0CommandsSupportedGet,
    S0CommandsSupportedReport,
    S0NetworkKeySet,
    S0NetworkKeyVerify,
    S0SchemeGet,
    S0SchemeReport,
)
from modules.codecs.zwave.security.s2 import (
    KexFail,
    KexFailType,
    KexGet,
    KexReport,
    KexSet,
    MessageEncapsulation,
    NetworkKeyGet,
    NetworkKeyReport,
    NetworkKeyVerify,
    PublicKeyReport,
    S2CommandsSupportedGet,
    S2CommandsSupportedReport,
    SecurityKey,
    TransferEnd,
)
from modules.zwave.security import Frame, Level, SecureLink, Step, bits_of, levels_of

__all__ = ["Includer", "InclusionMode"]

_UNREADABLE_TRIES = 1  # unreadable frames tolerated (one resynchronisation) before KEX Fail

InclusionMode = Literal["s2_authenticated", "s2_unauthenticated", "s0"]
_WANTED = {
    "s2_authenticated": SecurityKey.S2_AUTHENTICATED | SecurityKey.S2_UNAUTHENTICATED,
    "s2_unauthenticated": SecurityKey.S2_UNAUTHENTICATED,
}


class Includer:
    """Secure inclusion of one node, as the including controller."""

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        own_node_id: int,
        node_id: int,
        home_id: int,
        mode: InclusionMode,
        *,
        pin: str | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.node_id = node_id
        self.mode = mode
        self.pin = pin
        self.entropy = entropy
        self.link = SecureLink(own_node_id, home_id, entropy=entropy)
        self.level = Level.NONE  # what the node is reached with once done
        self.granted: list[Level] = []
        self.secure_classes: tuple[int, ...] = ()
        self.done = False
        self.failure: str | None = None
        self._private = X25519PrivateKey.from_private_bytes(entropy(32))
        self._report: KexReport | None = None
        self._set: KexSet | None = None
        self._verifying: Level | None = None
        self._unreadable = 0
        self._node_public = b""
        self.awaiting_pin = False  # the node's public key is in; the user has yet to type the PIN

    def start(self, now: float) -> list[Frame]:
        """The first frame: KEX Get (S2) or Scheme Get (S0), in the clear."""
        first: CcCommand = S0SchemeGet() if self.mode == "s0" else KexGet()
        return self.link.send(self.node_id, first.encode(), Level.NONE, now)

    def receive(self, source: int, payload: bytes, now: float) -> Step:
        """A frame from the node; its non-security commands come back in ``inbound``."""
        candidates = [Level.TEMP, *sorted(self.link.s2_keys, reverse=True), Level.S0]
        step = self.link.receive(source, payload, now, candidates=candidates)
        if (
            source == self.node_id
            and self._set is not None
            and Level.TEMP in self.link.s2_keys
            and not self.done
            and isinstance(parse_command(payload), MessageEncapsulation)
            and not step.inbound
            and step.frames
        ):
            # Frames under the temporary key that cannot be read: a wrong PIN (or someone
            # else's key). After a resynchronisation fails too, the exchange is over.
            self._unreadable += 1
            if self._unreadable > _UNREADABLE_TRIES:
                self.failure = "the node's frames cannot be decrypted (wrong PIN?)"
                self._set = None
                step.frames = self._send(KexFail(KexFailType.DECRYPT), Level.NONE, now)
        passed = []
        for inbound in step.inbound:
            command = parse_command(inbound.payload)
            if source == self.node_id and command.CC in (
                CommandClassId.SECURITY_2,
                CommandClassId.SECURITY,
            ):
                step.frames.extend(self._security(command, inbound.level, now))
            else:
                passed.append(inbound)
        step.inbound = passed
        return step

    def enter_pin(self, pin: str) -> None:
        """The user typed the node's PIN (S2 Authenticated): the temporary key can be derived."""
        self.pin = pin
        self.awaiting_pin = False
        self._derive()

    def _derive(self) -> None:
        node_public = self._node_public
        if self._set is None or not node_public:
            return
        if self._set.granted_keys & SecurityKey.S2_AUTHENTICATED:
            if self.pin is None:
                self.failure = "S2 Authenticated needs the node's PIN"
                return
            node_public = int(self.pin).to_bytes(2, "big") + node_public[2:]
        own = public_key(self._private)
        secret = shared_secret(self._private, node_public)
        self.link.s2_keys[Level.TEMP] = temporary_keys(secret, own, node_public)
        # As zwave-js does: whatever was exchanged before the key is forgotten, so the node's
        # next (repeated) KEX Set echo starts a SPAN under the temporary key.
        peer = self.link.peer(self.node_id)
        peer.span, peer.local_ei = None, None
        self._unreadable = 0

    def _send(self, command: CcCommand, level: Level, now: float) -> list[Frame]:
        return self.link.send(self.node_id, command.encode(), level, now)

    def _fail(self, why: str) -> list[Frame]:
        self.failure = why
        return []

    def _security(self, command: CcCommand, level: Level, now: float) -> list[Frame]:
        if isinstance(command, KexReport) and not command.echo and level == Level.NONE:
            granted = command.requested_keys & _WANTED.get(self.mode, 0)
            if not granted:
                return self._fail(f"the node requested keys {command.requested_keys:#04x}")
            self._report = command
            self._set = KexSet(granted)
            own = public_key(self._private)
            return [
                *self._send(self._set, Level.NONE, now),
                *self._send(PublicKeyReport(own, including=True), Level.NONE, now),
            ]
        if isinstance(command, PublicKeyReport) and not command.including and self._set:
            self._node_public = command.public_key
            if self._set.granted_keys & SecurityKey.S2_AUTHENTICATED and self.pin is None:
                self.awaiting_pin = True  # the node repeats its KEX Set echo meanwhile
                return []
            self._derive()
            return []
        if isinstance(command, KexSet) and command.echo and level == Level.TEMP:
            if self._set is None or self._report is None:
                return []
            if command.granted_keys != self._set.granted_keys:
                return self._fail("the node's KEX Set echo differs from what was granted")
            echo = KexReport(
                self._report.requested_keys,
                echo=True,
                request_csa=self._report.request_csa,
                schemes=self._report.schemes,
                profiles=self._report.profiles,
            )
            return self._send(echo, Level.TEMP, now)
        if isinstance(command, NetworkKeyGet) and level == Level.TEMP and self._set:
            asked = levels_of(command.requested_key)
            if len(asked) != 1 or not command.requested_key & self._set.granted_keys:
                return self._fail(f"the node asked for key {command.requested_key:#04x}")
            key = self.entropy(KEY_BYTES)
            self.link.s2_keys[asked[0]] = network_keys(key)
            self._verifying = asked[0]
            return self._send(NetworkKeyReport(command.requested_key, key), Level.TEMP, now)
        if isinstance(command, NetworkKeyVerify) and level == self._verifying:
            self.granted.append(level)
            self._verifying = None
            return self._send(TransferEnd(key_verified=True), Level.TEMP, now)
        if isinstance(command, TransferEnd) and command.key_request_complete:
            if self._set is None or bits_of(self.granted) != self._set.granted_keys:
                return self._fail("Transfer End before every granted key was verified")
            self.level = max(self.granted)
            return self._send(S2CommandsSupportedGet(), self.level, now)
        if isinstance(command, S2CommandsSupportedReport) and level == self.level:
            self.secure_classes = command.supported
            self.done = True
            return []
        if isinstance(command, KexFail):
            return self._fail(f"the node sent KEX Fail {command.fail_type}")
        if isinstance(command, S0SchemeReport) and level == Level.NONE and self.mode == "s0":
            self.link.s0_keys[Level.S0_TEMP] = s0_keys(bytes(KEY_BYTES))
            key = self.entropy(KEY_BYTES)
            self.link.s0_keys[Level.S0] = s0_keys(key)
            return self._send(S0NetworkKeySet(key), Level.S0_TEMP, now)
        if isinstance(command, S0NetworkKeyVerify) and level == Level.S0:
            self.granted = [Level.S0]
            self.level = Level.S0
            return self._send(S0CommandsSupportedGet(), Level.S0, now)
        if isinstance(command, S0CommandsSupportedReport) and level == Level.S0:
            self.secure_classes = command.supported
            self.done = True
        return []
