"""The node's security: S2 and S0 between the stick and the application, sans-IO.

``SecureLink`` is one node's view of its secure conversations, on either side of an inclusion
(the meter node uses it, and so does the controller emulator): nonce exchange, the S2 SPAN
table, the S0 nonce tables, frames waiting for a nonce, and resynchronisation when the other
side could not decrypt. ``NodeSecurity`` adds what only the joining node does: S2 bootstrapping
(KEX, ECDH, the network keys) and S0 inclusion, the keys it keeps, and which security class an
application command must arrive with. Nothing here reads a clock or the wire: ``now`` comes in,
frames to send go out.

Z-Wave facts: the Security 2 Command Class (SDS13783) and Security 0 Command Class (SDS10865)
specifications; the codec in ``modules/codecs/zwave/security`` holds the layouts and the crypto.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as _random
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from modules.codecs.errors import DecryptionError
from modules.codecs.zwave.cc.base import CcCommand, CommandClassId
from modules.codecs.zwave.dispatch import parse_command
from modules.codecs.zwave.security.crypto import (
    CCM_NONCE_BYTES,
    EI_BYTES,
    KEY_BYTES,
    CtrDrbg,
    S0Keys,
    S2Keys,
    dsk_pin,
    dsk_text,
    mixed_entropy,
    network_keys,
    public_key,
    s0_keys,
    shared_secret,
    temporary_keys,
)
from modules.codecs.zwave.security.s0 import (
    NONCE_BYTES,
    S0CommandsSupportedGet,
    S0CommandsSupportedReport,
    S0MessageEncapsulation,
    S0NetworkKeySet,
    S0NetworkKeyVerify,
    S0NonceGet,
    S0NonceReport,
    S0SchemeGet,
    S0SchemeReport,
    open_s0,
    seal_s0,
)
from modules.codecs.zwave.security.s2 import (
    ECDH_CURVE25519,
    KEX_SCHEME_1,
    Extension,
    ExtensionType,
    KexFail,
    KexFailType,
    KexGet,
    KexReport,
    KexSet,
    MessageEncapsulation,
    NetworkKeyGet,
    NetworkKeyReport,
    NetworkKeyVerify,
    NonceGet,
    NonceReport,
    PublicKeyReport,
    S2CommandsSupportedGet,
    S2CommandsSupportedReport,
    SecurityKey,
    TransferEnd,
    open_encapsulation,
    seal_encapsulation,
)

__all__ = [
    "BOOTSTRAP_TIMEOUT_S",
    "INCLUSION_WINDOW_S",
    "KEX_SET_ECHO_INTERVAL_S",
    "NONCE_REPLY_TIMEOUT_S",
    "S0_NONCE_LIFETIME_S",
    "Frame",
    "Inbound",
    "Level",
    "NodeSecurity",
    "Secrets",
    "SecureLink",
    "Step",
]

_LOGGER = logging.getLogger(__name__)

# The joining node sends its KEX Set echo again this often until the controller answers:
# the controller cannot read it before the user typed the PIN (SDS13783 TB5; zwave-js counts
# on it).
KEX_SET_ECHO_INTERVAL_S = 10.0
# The whole key exchange gives up after this (SDS13783 TBI1, the user's time for the PIN).
BOOTSTRAP_TIMEOUT_S = 240.0
# How long after the stick reports an inclusion the node accepts KEX Get or Scheme Get: the
# controller starts the key exchange at once (zwave-js does within a second); later requests
# are someone else's attempt to re-key the node.
INCLUSION_WINDOW_S = 30.0
# An S0 nonce the node hands out is good for this long (SDS10865 asks at least 3 s; slow
# controllers and retransmissions need more).
S0_NONCE_LIFETIME_S = 10.0
# A frame the other side failed to decrypt is sent again with a new SPAN at most this many times.
_RESENDS = 1
# A Nonce Get unanswered this long is asked again, and the frames waiting for it are dropped
# (the other node was away; what they said is stale by now).
NONCE_REPLY_TIMEOUT_S = 10.0
_MAX_WAITING = 16  # frames kept per node while a nonce is awaited
# The application payload one ZW_SendData frame carries on classic Z-Wave (routed); an S2
# frame that would grow past it with the 18-byte SPAN extension goes as a SPAN-only frame
# followed by the command under the SPAN's next nonce.
MAX_FRAME_PAYLOAD_BYTES = 46
_S2_OVERHEAD_BYTES = 4 + 8  # class, command, sequence, flags; the CCM tag
# A frame that fails with the current SPAN is tried with the next nonces too: both sides may
# have sent at the same moment, each consuming one (zwave-js tries 5).
_SPAN_LOOKAHEAD = 5


class Level(IntEnum):
    """Security classes, lowest to highest; TEMP and S0_TEMP only while keys are exchanged."""

    NONE = 0
    S0 = 1
    S2_UNAUTHENTICATED = 2
    S2_AUTHENTICATED = 3
    S2_ACCESS_CONTROL = 4
    TEMP = 10
    S0_TEMP = 11

    @property
    def is_s2(self) -> bool:
        """Whether frames of this class travel in S2 Message Encapsulation."""
        return self in _S2_LEVELS

    @property
    def label(self) -> str:
        """The name users see in events and health."""
        return self.name.lower()


_S2_LEVELS = frozenset(
    (Level.S2_UNAUTHENTICATED, Level.S2_AUTHENTICATED, Level.S2_ACCESS_CONTROL, Level.TEMP)
)
_KEY_BITS = {
    Level.S2_UNAUTHENTICATED: SecurityKey.S2_UNAUTHENTICATED,
    Level.S2_AUTHENTICATED: SecurityKey.S2_AUTHENTICATED,
    Level.S2_ACCESS_CONTROL: SecurityKey.S2_ACCESS_CONTROL,
    Level.S0: SecurityKey.S0,
}
_LEVEL_OF_BIT = {int(bit): level for level, bit in _KEY_BITS.items()}


def levels_of(bits: int) -> list[Level]:
    """The classes a KEX key bit mask names, highest first."""
    return sorted((level for bit, level in _LEVEL_OF_BIT.items() if bits & bit), reverse=True)


def bits_of(levels: Sequence[Level]) -> int:
    """The KEX key bit mask of ``levels``."""
    out = 0
    for level in levels:
        out |= int(_KEY_BITS[level])
    return out


class Frame(msgspec.Struct, frozen=True):
    """A payload for the stick to send to ``node_id``."""

    node_id: int
    payload: bytes


class Inbound(msgspec.Struct, frozen=True):
    """A command that arrived from ``source`` with security class ``level`` (decrypted)."""

    source: int
    payload: bytes
    level: Level


class Step(msgspec.Struct):
    """What one received frame led to."""

    frames: list[Frame] = msgspec.field(default_factory=list)
    inbound: list[Inbound] = msgspec.field(default_factory=list)
    events: list[tuple[str, str]] = msgspec.field(default_factory=list)


class _Span(msgspec.Struct):
    level: Level
    drbg: CtrDrbg
    # The nonces of our last frames: when both ends send at the same moment, each encrypts
    # with the same next nonce, and the other's frame is readable only with one of these.
    sent: list[bytes] = msgspec.field(default_factory=list)

    def note_sent(self, nonce: bytes) -> None:
        """Remember a nonce this end used (the last few)."""
        self.sent = [*self.sent, nonce][-_SPAN_LOOKAHEAD:]

    def next_nonce(self) -> bytes:
        # zwave-js and the Silicon Labs library draw a whole block and keep the first 13 bytes.
        return self.drbg.generate(16)[:CCM_NONCE_BYTES]


class _Peer(msgspec.Struct):
    """What this node knows about one other node's secure conversation with it."""

    span: _Span | None = None
    local_ei: bytes | None = None  # our entropy input, sent in a Nonce Report (SOS)
    remote_ei: bytes | None = None  # theirs, from a Nonce Report: our next frame starts a SPAN
    sequence: int = 0
    last_sequence_in: int | None = None
    s2_waiting: list[tuple[Level, bytes]] = msgspec.field(default_factory=list)
    s2_asked: float | None = None  # when a Nonce Get went out, unanswered yet
    last_s2: tuple[Level, bytes] | None = None
    resends: int = 0
    s0_nonce: tuple[bytes, float] | None = None  # theirs, and when it expires
    s0_waiting: list[tuple[Level, bytes]] = msgspec.field(default_factory=list)
    s0_asked: float | None = None


class SecureLink:
    """One node's secure conversations with the others (nonces, SPANs, waiting frames)."""

    def __init__(
        self,
        own_node_id: int,
        home_id: int,
        *,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.own_node_id = own_node_id
        self.home_id = home_id
        self.entropy = entropy
        self.s2_keys: dict[Level, S2Keys] = {}
        self.s0_keys: dict[Level, S0Keys] = {}
        self._peers: dict[int, _Peer] = {}
        self._s0_ours: dict[int, tuple[bytes, int, float]] = {}  # id -> nonce, peer, expiry

    def peer(self, node_id: int) -> _Peer:
        """The state kept for ``node_id`` (created empty)."""
        found = self._peers.get(node_id)
        if found is None:
            found = self._peers[node_id] = _Peer(sequence=self.entropy(1)[0])
        return found

    def forget(self) -> None:
        """Drop every key, SPAN and nonce (a new network)."""
        self.s2_keys.clear()
        self.s0_keys.clear()
        self._peers.clear()
        self._s0_ours.clear()

    # receiving ---------------------------------------------------------------------------------

    def receive(
        self,
        source: int,
        payload: bytes,
        now: float,
        *,
        candidates: Sequence[Level],
        multicast: bool = False,
    ) -> Step:
        """Decrypt what can be, answer nonce requests; FrameError for a malformed frame."""
        step = Step()
        command = parse_command(payload)
        peer = self.peer(source)
        if isinstance(command, NonceGet):
            if not multicast:
                step.frames.append(Frame(source, self._nonce_report(source)))
        elif isinstance(command, NonceReport):
            self._on_nonce_report(source, command, now, step)
        elif isinstance(command, MessageEncapsulation):
            if multicast:
                return step  # multicast needs an MPAN; this node keeps none (MPAN refused)
            opened = self._open_s2(source, command, candidates)
            if opened is None:
                if command.sequence != peer.last_sequence_in:
                    step.frames.append(Frame(source, self._nonce_report(source)))
            elif opened[1]:
                step.inbound.append(Inbound(source, opened[1], opened[0]))
        elif isinstance(command, S0NonceGet):
            step.frames.append(Frame(source, self._s0_nonce_report(source, now)))
        elif isinstance(command, S0NonceReport):
            peer.s0_nonce = (command.nonce, now + S0_NONCE_LIFETIME_S)
            peer.s0_asked = None
            self._flush_s0(source, now, step.frames)
        elif isinstance(command, S0MessageEncapsulation):
            opened_s0 = self._open_s0(source, command, now, candidates)
            if command.nonce_get:
                step.frames.append(Frame(source, self._s0_nonce_report(source, now)))
            if opened_s0 is not None:
                step.inbound.append(Inbound(source, opened_s0[1], opened_s0[0]))
        else:
            step.inbound.append(Inbound(source, payload, Level.NONE))
        return step

    def _nonce_report(self, source: int) -> bytes:
        peer = self.peer(source)
        peer.local_ei = self.entropy(EI_BYTES)
        peer.span = None  # a new SPAN starts with the sender's next frame
        return NonceReport(self._next_sequence(peer), sos=True, receiver_ei=peer.local_ei).encode()

    def _on_nonce_report(self, source: int, report: NonceReport, now: float, step: Step) -> None:
        if not report.sos or len(report.receiver_ei) != EI_BYTES:
            return  # MOS: a multicast state this node never keeps
        peer = self.peer(source)
        peer.remote_ei = report.receiver_ei
        peer.span = None
        asked, peer.s2_asked = peer.s2_asked is not None, None
        if peer.s2_waiting:
            waiting, peer.s2_waiting = peer.s2_waiting, []
            for level, payload in waiting:
                step.frames.extend(self._send_s2(source, level, payload, now))
        elif not asked and peer.last_s2 is not None and peer.resends < _RESENDS:
            # The other side could not decrypt our last frame: send it again with a new SPAN.
            peer.resends += 1
            level, payload = peer.last_s2
            step.frames.extend(self._send_s2(source, level, payload, now, resend=True))

    def _open_s2(
        self, source: int, frame: MessageEncapsulation, candidates: Sequence[Level]
    ) -> tuple[Level, bytes] | None:
        peer = self.peer(source)
        if any(
            ext.critical and ext.type not in (ExtensionType.SPAN, ExtensionType.MGRP)
            for ext in frame.extensions
        ):
            return None
        if frame.sequence == peer.last_sequence_in:
            return None  # a duplicate of the last frame (a retransmission that arrived twice)
        sender_ei = frame.sender_ei()
        keyed = [(level, self.s2_keys[level]) for level in candidates if level in self.s2_keys]
        if sender_ei is not None:
            if peer.local_ei is None:
                return None
            mei = mixed_entropy(sender_ei, peer.local_ei)
            for level, keys in keyed:
                span = _Span(level, CtrDrbg(mei, keys.personalization))
                plain = self._try_open(source, frame, keys, span.next_nonce())
                if plain is not None:
                    peer.span, peer.local_ei = span, None
                    peer.last_sequence_in = frame.sequence
                    return level, plain
            return None
        if peer.span is None or peer.span.level not in self.s2_keys:
            return None
        # The SPAN's class first; then the others: a controller may encrypt one command with
        # another key on the same SPAN (zwave-js sends Transfer End so, under the temporary key).
        first = peer.span.level
        keyed = [(first, self.s2_keys[first]), *((lv, k) for lv, k in keyed if lv != first)]
        trial = peer.span.drbg.copy()
        for _ in range(_SPAN_LOOKAHEAD):
            nonce = trial.generate(16)[:CCM_NONCE_BYTES]
            for level, keys in keyed:
                plain = self._try_open(source, frame, keys, nonce)
                if plain is not None:
                    peer.span.drbg = trial
                    peer.span.sent.clear()
                    peer.last_sequence_in = frame.sequence
                    return level, plain
        for at, crossed in enumerate(peer.span.sent):
            for level, keys in keyed:
                plain = self._try_open(source, frame, keys, crossed)
                if plain is not None:
                    del peer.span.sent[: at + 1]
                    peer.last_sequence_in = frame.sequence
                    return level, plain
        return None

    def _try_open(
        self, source: int, frame: MessageEncapsulation, keys: S2Keys, nonce: bytes
    ) -> bytes | None:
        try:
            _extensions, plain = open_encapsulation(
                frame,
                keys.ccm,
                nonce,
                sender=source,
                receiver=self.own_node_id,
                home_id=self.home_id,
            )
        except DecryptionError:
            return None
        return plain  # encrypted extensions (an MPAN) are ignored: multicast is refused

    def _s0_nonce_report(self, source: int, now: float) -> bytes:
        self._s0_ours = {k: v for k, v in self._s0_ours.items() if v[2] > now}
        while True:
            nonce = self.entropy(NONCE_BYTES)
            if nonce[0] not in self._s0_ours:
                break
        self._s0_ours[nonce[0]] = (nonce, source, now + S0_NONCE_LIFETIME_S)
        return S0NonceReport(nonce).encode()

    def _open_s0(
        self, source: int, frame: S0MessageEncapsulation, now: float, candidates: Sequence[Level]
    ) -> tuple[Level, bytes] | None:
        ours = self._s0_ours.pop(frame.receiver_nonce_id, None)
        if ours is None or ours[1] != source or ours[2] <= now:
            return None
        for level in candidates:
            keys = self.s0_keys.get(level)
            if keys is None:
                continue
            try:
                plain = open_s0(frame, keys, ours[0], sender=source, receiver=self.own_node_id)
            except DecryptionError:
                continue
            return level, plain
        return None

    # sending -----------------------------------------------------------------------------------

    def send(self, target: int, payload: bytes, level: Level, now: float) -> list[Frame]:
        """Frames carrying ``payload`` to ``target`` at ``level`` (maybe a nonce request first)."""
        if level == Level.NONE:
            return [Frame(target, payload)]
        if level.is_s2:
            return self._send_s2(target, level, payload, now)
        peer = self.peer(target)
        if peer.s0_asked is not None and now - peer.s0_asked > NONCE_REPLY_TIMEOUT_S:
            peer.s0_waiting.clear()
            peer.s0_asked = None
        peer.s0_waiting = [*peer.s0_waiting, (level, payload)][-_MAX_WAITING:]
        out: list[Frame] = []
        self._flush_s0(target, now, out)
        return out

    def _send_s2(
        self, target: int, level: Level, payload: bytes, now: float, *, resend: bool = False
    ) -> list[Frame]:
        peer = self.peer(target)
        if peer.s2_asked is not None and now - peer.s2_asked > NONCE_REPLY_TIMEOUT_S:
            peer.s2_waiting.clear()
            peer.s2_asked = None
        keys = self.s2_keys.get(level)
        if keys is None:
            _LOGGER.debug("no %s key for node %d: frame dropped", level.label, target)
            return []
        extensions: tuple[Extension, ...] = ()
        span = peer.span
        if span is not None and span.level == level and not peer.s2_waiting:
            pass
        elif peer.remote_ei is not None and not peer.s2_waiting:
            sender_ei = self.entropy(EI_BYTES)
            span = _Span(
                level, CtrDrbg(mixed_entropy(sender_ei, peer.remote_ei), keys.personalization)
            )
            peer.span, peer.remote_ei = span, None
            extensions = (Extension.span(sender_ei),)
        else:
            peer.s2_waiting = [*peer.s2_waiting, (level, payload)][-_MAX_WAITING:]
            if peer.s2_asked is not None:
                return []
            peer.s2_asked = now
            return [Frame(target, NonceGet(self._next_sequence(peer)).encode())]
        if not resend:
            peer.last_s2, peer.resends = (level, payload), 0
        out: list[Frame] = []
        spanned = len(payload) + 2 + EI_BYTES + _S2_OVERHEAD_BYTES
        if extensions and spanned > MAX_FRAME_PAYLOAD_BYTES:
            out.append(self._seal(target, keys, span.next_nonce(), b"", extensions))
            extensions = ()
        nonce = span.next_nonce()
        out.append(self._seal(target, keys, nonce, payload, extensions))
        span.note_sent(nonce)
        return out

    def _seal(
        self,
        target: int,
        keys: S2Keys,
        nonce: bytes,
        payload: bytes,
        extensions: tuple[Extension, ...],
    ) -> Frame:
        frame = seal_encapsulation(
            keys.ccm,
            nonce,
            sender=self.own_node_id,
            receiver=target,
            home_id=self.home_id,
            sequence=self._next_sequence(self.peer(target)),
            command=payload,
            extensions=extensions,
        )
        return Frame(target, frame.encode())

    def _flush_s0(self, target: int, now: float, out: list[Frame]) -> None:
        peer = self.peer(target)
        while peer.s0_waiting:
            theirs = peer.s0_nonce
            if theirs is None or theirs[1] <= now:
                if peer.s0_asked is None:
                    peer.s0_asked = now
                    out.append(Frame(target, S0NonceGet().encode()))
                return
            level, payload = peer.s0_waiting.pop(0)
            peer.s0_nonce = None  # a nonce is used once
            frame = seal_s0(
                self.s0_keys[level],
                self.entropy(NONCE_BYTES),
                theirs[0],
                sender=self.own_node_id,
                receiver=target,
                command=payload,
            )
            out.append(Frame(target, frame.encode()))

    @staticmethod
    def _next_sequence(peer: _Peer) -> int:
        peer.sequence = (peer.sequence + 1) & 0xFF
        return peer.sequence


# ------------------------------------------------------------------------------ the joining node


class Secrets(msgspec.Struct, frozen=True):
    """What the node keeps in its keys file: its ECDH key, and the keys its network granted."""

    private_key: bytes
    granted: tuple[Level, ...] = ()
    s2_keys: tuple[tuple[Level, bytes], ...] = ()
    s0_key: bytes = b""

    @classmethod
    def generate(cls) -> Secrets:
        """A fresh ECDH key pair and no network keys."""
        return cls(_random.token_bytes(32))

    @property
    def public_key(self) -> bytes:
        """The node's Curve25519 public key (its DSK is the first 16 bytes)."""
        return public_key(X25519PrivateKey.from_private_bytes(self.private_key))

    @property
    def dsk(self) -> str:
        """The DSK as a controller shows it (eight 5-digit groups)."""
        return dsk_text(self.public_key)

    @property
    def pin(self) -> str:
        """The PIN a user types for S2 Authenticated inclusion."""
        return dsk_pin(self.public_key)

    def to_json(self) -> bytes:
        """The keys file's content."""
        return json.dumps(
            {
                "private_key": self.private_key.hex(),
                "dsk": self.dsk,
                "granted": [level.label for level in sorted(self.granted, reverse=True)],
                "s2_keys": {level.label: key.hex() for level, key in self.s2_keys},
                "s0_key": self.s0_key.hex(),
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, blob: bytes) -> Secrets:
        """Read a keys file (ValueError naming what is wrong)."""
        data = json.loads(blob)
        names = {level.label: level for level in Level}
        try:
            private = bytes.fromhex(data["private_key"])
            granted = tuple(names[name] for name in data.get("granted", ()))
            s2 = tuple((names[k], bytes.fromhex(v)) for k, v in data.get("s2_keys", {}).items())
            s0 = bytes.fromhex(data.get("s0_key", ""))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"Z-Wave keys file: bad or missing entry {err}") from None
        if len(private) != 32 or any(len(key) != KEY_BYTES for _, key in s2):  # noqa: PLR2004 - a Curve25519 private key
            raise ValueError("Z-Wave keys file: a key has the wrong length")
        return cls(private, granted, s2, s0)


def load_secrets(path: Path) -> Secrets:
    """The node's keys from ``path``, generated (and written, mode 0600) the first time."""
    if path.exists():
        return Secrets.from_json(path.read_bytes())
    found = Secrets.generate()
    save_secrets(path, found)
    return found


def save_secrets(path: Path, secrets: Secrets) -> None:
    """Write the keys file atomically, readable by the gateway's user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.to_json())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


class _S2Bootstrap(msgspec.Struct):
    controller: int
    report: KexReport
    granted: int = 0
    controller_public: bytes = b""
    wanted: list[Level] = msgspec.field(default_factory=list)  # keys still to fetch
    asking: Level | None = None
    done: bool = False  # the temporary key stays for a resend of the last Transfer End
    started: float = 0.0
    echo_due: float | None = None  # when the KEX Set echo goes out again, until answered


class NodeSecurity:
    """The joining node's side: key exchange, kept keys, and what a command must arrive with."""

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        secrets: Secrets,
        offered: Sequence[Level],
        secure_classes: Callable[[], tuple[int, ...]],
        *,
        own_node_id: int = 0,
        home_id: int = 0,
        entropy: Callable[[int], bytes] = os.urandom,
        echo_interval_s: float = KEX_SET_ECHO_INTERVAL_S,
    ) -> None:
        self.secrets = secrets
        self.offered = tuple(offered)
        self.echo_interval_s = echo_interval_s
        self.secure_classes = secure_classes
        self.link = SecureLink(own_node_id, home_id, entropy=entropy)
        self.changed = False  # the secrets need saving
        self._private = X25519PrivateKey.from_private_bytes(secrets.private_key)
        self._armed_until = float("-inf")
        self._s2: _S2Bootstrap | None = None
        self._install()

    @property
    def granted(self) -> tuple[Level, ...]:
        """The security classes the network granted, highest first."""
        return tuple(sorted(self.secrets.granted, reverse=True))

    @property
    def highest(self) -> Level:
        """The class the node sends with and wants application commands in."""
        return max(self.secrets.granted, default=Level.NONE)

    def set_network(self, home_id: int, node_id: int) -> None:
        """The ids the stick reports; a different network forgets the old keys."""
        if (home_id, node_id) != (self.link.home_id, self.link.own_node_id):
            self.link.home_id, self.link.own_node_id = home_id, node_id
            self.link._peers.clear()

    def begin_inclusion(self, now: float) -> None:
        """The stick joined a network: accept a key exchange for a while, forget old keys."""
        self._armed_until = now + INCLUSION_WINDOW_S
        self._s2 = None
        self.link.s2_keys.pop(Level.TEMP, None)
        self.link.s0_keys.pop(Level.S0_TEMP, None)
        self._set_secrets(msgspec.structs.replace(self.secrets, granted=(), s2_keys=(), s0_key=b""))

    def forget(self) -> None:
        """The node left its network: its keys mean nothing any more."""
        self._armed_until = float("-inf")
        self._s2 = None
        if self.secrets.granted or self.secrets.s0_key:
            self._set_secrets(
                msgspec.structs.replace(self.secrets, granted=(), s2_keys=(), s0_key=b"")
            )

    def accepts(self, inbound: Inbound) -> bool:
        """Whether an application command arrived with the class it needs.

        A securely included node answers its application classes only at its highest class;
        Z-Wave Plus Info stays open (controllers read it before they know the keys).
        """
        if inbound.payload[:1] == bytes((CommandClassId.ZWAVEPLUS_INFO,)):
            return True
        return inbound.level == self.highest

    def receive(self, source: int, payload: bytes, now: float, *, multicast: bool = False) -> Step:
        """A frame from ``source``: security handled here, application commands in ``inbound``."""
        step = self.link.receive(
            source, payload, now, candidates=self._candidates(), multicast=multicast
        )
        application: list[Inbound] = []
        for inbound in step.inbound:
            command = parse_command(inbound.payload)
            if command.CC in (CommandClassId.SECURITY_2, CommandClassId.SECURITY):
                self._security_command(inbound, command, now, step)
            else:
                application.append(inbound)
        step.inbound = application
        return step

    def send(self, target: int, payload: bytes, level: Level, now: float) -> list[Frame]:
        """Frames carrying ``payload`` at ``level``."""
        return self.link.send(target, payload, level, now)

    def tick(self, now: float) -> Step:
        """What time alone makes due: the KEX Set echo again, or giving the exchange up."""
        step = Step()
        boot = self._s2
        if boot is None or boot.done or boot.echo_due is None or now < boot.echo_due:
            return step
        if now - boot.started >= BOOTSTRAP_TIMEOUT_S:
            self._s2 = None
            self.link.s2_keys.pop(Level.TEMP, None)
            step.events.append(
                ("zwave_secure_inclusion_failed", "the controller never confirmed the keys")
            )
            return step
        boot.echo_due = now + self.echo_interval_s
        echo = KexSet(boot.granted, echo=True).encode()
        step.frames += self.link.send(boot.controller, echo, Level.TEMP, now)
        return step

    # internals ---------------------------------------------------------------------------------

    def _candidates(self) -> list[Level]:
        out = [Level.TEMP] if self._s2 is not None and not self._s2.done else []
        out += list(self.granted)
        if Level.S0_TEMP in self.link.s0_keys:
            out.append(Level.S0_TEMP)
        return out

    def _install(self) -> None:
        """The link's keys from the secrets, keeping the exchange keys while one is running."""
        s2_temp: dict[Level, S2Keys] = {
            lv: k for lv, k in self.link.s2_keys.items() if lv == Level.TEMP
        }
        s0_temp: dict[Level, S0Keys] = {
            lv: k for lv, k in self.link.s0_keys.items() if lv == Level.S0_TEMP
        }
        self.link.s2_keys = {level: network_keys(key) for level, key in self.secrets.s2_keys}
        self.link.s2_keys.update(s2_temp)
        self.link.s0_keys = {Level.S0: s0_keys(self.secrets.s0_key)} if self.secrets.s0_key else {}
        self.link.s0_keys.update(s0_temp)

    def _set_secrets(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.changed = True
        self._install()

    def _armed(self, now: float) -> bool:
        return now <= self._armed_until

    def _security_command(
        self, inbound: Inbound, command: CcCommand, now: float, step: Step
    ) -> None:
        source, level = inbound.source, inbound.level

        def reply(answer: CcCommand, at: Level) -> None:
            step.frames.extend(self.link.send(source, answer.encode(), at, now))

        if isinstance(command, KexGet) and level == Level.NONE and self._armed(now):
            requested = bits_of([lv for lv in self.offered if lv.is_s2])
            if not requested:
                return
            self._s2 = _S2Bootstrap(source, KexReport(requested), started=now)
            reply(self._s2.report, Level.NONE)
        elif isinstance(command, KexSet) and not command.echo and level == Level.NONE:
            self._on_kex_set(source, command, now, reply)
        elif isinstance(command, PublicKeyReport) and command.including and level == Level.NONE:
            boot = self._s2
            if boot is not None and source == boot.controller:
                boot.controller_public = command.public_key
                self._derive_temporary(now, reply)
        elif isinstance(command, KexReport) and command.echo and level == Level.TEMP:
            boot = self._s2
            if boot is None:
                return
            if msgspec.structs.replace(command, echo=False) != boot.report:
                self._fail(KexFailType.AUTH, reply, step)
                return
            if boot.echo_due is None:
                return  # a repeated echo: the keys are being fetched already
            boot.echo_due = None
            self._next_key(reply)
        elif isinstance(command, NetworkKeyReport) and level == Level.TEMP:
            boot = self._s2
            if boot is None or boot.asking is None or command.granted_key != bits_of([boot.asking]):
                self._fail(KexFailType.KEY_REPORT, reply, step)
                return
            fetched = boot.asking
            keys = dict(self.secrets.s2_keys)
            keys[fetched] = command.network_key
            self._set_secrets(msgspec.structs.replace(self.secrets, s2_keys=tuple(keys.items())))
            reply(NetworkKeyVerify(), fetched)
        elif isinstance(command, TransferEnd) and command.key_verified and level == Level.TEMP:
            boot = self._s2
            if boot is None or boot.asking is None:
                return
            granted = (*self.secrets.granted, boot.asking)
            self._set_secrets(msgspec.structs.replace(self.secrets, granted=granted))
            if boot.wanted:
                self._next_key(reply)
                return
            reply(TransferEnd(key_request_complete=True), Level.TEMP)
            boot.done = True
            self._armed_until = float("-inf")
            names = ", ".join(lv.label for lv in self.granted)
            step.events.append(("zwave_secure_inclusion", f"S2 keys granted: {names}"))
        elif isinstance(command, KexFail):
            if self._s2 is not None:
                self._s2 = None
                step.events.append(
                    (
                        "zwave_secure_inclusion_failed",
                        f"the controller ended the key exchange ({command.fail_type})",
                    )
                )
        elif isinstance(command, S2CommandsSupportedGet) and level.is_s2:
            supported = self.secure_classes() if level == self.highest else ()
            reply(S2CommandsSupportedReport(supported), level)
        elif isinstance(command, S0SchemeGet) and level == Level.NONE and self._armed(now):
            if Level.S0 not in self.offered:
                return
            self.link.s0_keys[Level.S0_TEMP] = s0_keys(bytes(KEY_BYTES))
            reply(S0SchemeReport(), Level.NONE)
        elif isinstance(command, S0NetworkKeySet) and level == Level.S0_TEMP:
            self._set_secrets(
                msgspec.structs.replace(
                    self.secrets, s0_key=command.network_key, granted=(Level.S0,)
                )
            )
            self._armed_until = float("-inf")
            self.link.s0_keys.pop(Level.S0_TEMP, None)
            reply(S0NetworkKeyVerify(), Level.S0)
            step.events.append(("zwave_secure_inclusion", "S0 network key received"))
        elif isinstance(command, S0CommandsSupportedGet) and level == Level.S0:
            supported = self.secure_classes() if self.highest == Level.S0 else ()
            reply(S0CommandsSupportedReport(supported), Level.S0)

    def _on_kex_set(
        self, source: int, command: KexSet, now: float, reply: Callable[[CcCommand, Level], None]
    ) -> None:
        boot = self._s2
        if boot is None or source != boot.controller:
            return
        if not command.scheme & KEX_SCHEME_1:
            reply(KexFail(KexFailType.KEX_SCHEME), Level.NONE)
            self._s2 = None
            return
        if not command.profile & ECDH_CURVE25519:
            reply(KexFail(KexFailType.KEX_CURVES), Level.NONE)
            self._s2 = None
            return
        granted = command.granted_keys
        if not granted or granted & ~boot.report.requested_keys:
            reply(KexFail(KexFailType.KEX_KEY), Level.NONE)
            self._s2 = None
            return
        boot.granted = granted
        boot.wanted = sorted(levels_of(granted))  # lowest first, as the Silicon Labs library asks
        shown = self.secrets.public_key
        if granted & (SecurityKey.S2_AUTHENTICATED | SecurityKey.S2_ACCESS_CONTROL):
            shown = bytes(2) + shown[2:]  # the PIN bytes: the user types them at the controller
        reply(PublicKeyReport(shown), Level.NONE)
        self._derive_temporary(now, reply)

    def _derive_temporary(self, now: float, reply: Callable[[CcCommand, Level], None]) -> None:
        boot = self._s2
        if boot is None or not boot.granted or not boot.controller_public:
            return
        own = self.secrets.public_key
        secret = shared_secret(self._private, boot.controller_public)
        self.link.s2_keys[Level.TEMP] = temporary_keys(secret, boot.controller_public, own)
        boot.echo_due = now + self.echo_interval_s
        reply(KexSet(boot.granted, echo=True), Level.TEMP)

    def _next_key(self, reply: Callable[[CcCommand, Level], None]) -> None:
        boot = self._s2
        if boot is None or not boot.wanted:
            return
        boot.asking = boot.wanted.pop(0)
        reply(NetworkKeyGet(bits_of([boot.asking])), Level.TEMP)

    def _fail(
        self, why: KexFailType, reply: Callable[[CcCommand, Level], None], step: Step
    ) -> None:
        reply(KexFail(why), Level.TEMP if Level.TEMP in self.link.s2_keys else Level.NONE)
        self._s2 = None
        step.events.append(
            ("zwave_secure_inclusion_failed", f"key exchange abandoned ({why.name})")
        )
