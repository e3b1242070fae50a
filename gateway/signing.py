"""Signed MQTT commands: HMAC-SHA256 over a canonical JSON, a fresh timestamp, no replays.

With ``[mqtt] command_secret_file`` set, a command on ``<base>/<gateway>/<meter>/set/<command>``
must be

    {"args": {...}, "id": "c-0042", "ts": 1767225600, "hmac": "<64 hex digits>"}

where ``hmac`` is HMAC-SHA256, keyed with the secret file's text (UTF-8, surrounding whitespace
stripped), of the canonical JSON of the other fields plus the gateway, meter and command from
the topic:

    {"args":{...},"command":"disconnect","gateway":"home","id":"c-0042","meter":"main",
     "ts":1767225600}

Canonical: keys sorted, no whitespace, UTF-8 (no ``\\u`` escapes for non-ASCII), integral
numbers without a fraction (``2.0`` is ``2``). Write other non-integers as strings (``"12.5"``:
``top_up`` and ``set_limits`` accept them) to stay clear of float formatting differences between
languages. The topic's gateway, meter and command are signed too: a captured ``reconnect``
cannot be replayed as ``disconnect``, against another meter, or on another gateway that shares
the secret. ``ts`` (unix seconds) must be within
``command_max_age_s`` of the gateway's clock, either way, and an ``id`` is accepted once.

From a shell (openssl, mosquitto-clients)::

    secret=$(cat /etc/meter-gateway/command-secret); ts=$(date +%s); id=c-$ts
    body='{"args":{},"command":"disconnect","gateway":"home","id":"'$id'","meter":"main","ts":'$ts'}'
    mac=$(printf %s "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
    mosquitto_pub -q 1 -t meter-gateway/home/main/set/disconnect \\
        -m '{"args":{},"id":"'$id'","ts":'$ts',"hmac":"'$mac'"}'

From Python: ``sign_payload("home", "main", "top_up", {"id": "t-7", "sequence": 7, "amount": "50"},
secret=b"...")`` gives the bytes to publish on ``meter-gateway/home/main/set/top_up``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.errors import CommandError
from gateway.model import Command

__all__ = [
    "MAX_ID_CHARS",
    "CommandVerifier",
    "canonical",
    "sign",
    "sign_payload",
]

MAX_ID_CHARS = 64  # as plain MQTT commands (gateway/mqtt/payloads.py)
# Ids accepted inside the freshness window are remembered to refuse a replay; a signed flood
# can only come from someone holding the secret, and this bounds the memory it could take.
MAX_REMEMBERED_IDS = 10_000
_FIELDS = frozenset({"args", "id", "ts", "hmac"})
_HEX_DIGITS = 64


def canonical(  # noqa: PLR0913 - the signed fields, one argument each
    gateway: str | None,
    meter: str,
    command: str,
    args: Mapping[str, Any],
    *,
    command_id: str,
    ts: float,
) -> bytes:
    """The bytes that are signed: the payload without ``hmac``, plus the topic's gateway, meter
    and command (``gateway=None``: the document before the gateway was signed, which is only
    checked to tell a sender why its signature no longer passes)."""
    document = {"args": args, "command": command, "id": command_id, "meter": meter, "ts": ts}
    if gateway is not None:
        document["gateway"] = gateway
    return json.dumps(
        _normal(document),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def sign(  # noqa: PLR0913 - the signed fields, one argument each
    gateway: str,
    meter: str,
    command: str,
    args: Mapping[str, Any],
    *,
    secret: bytes,
    command_id: str | None = None,
    ts: float | None = None,
) -> dict[str, Any]:
    """A signed command for ``<base>/<gateway>/<meter>/set/<command>`` (for clients and tests)."""
    command_id = command_id or uuid.uuid4().hex[:16]
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(
        secret,
        canonical(gateway, meter, command, args, command_id=command_id, ts=ts),
        hashlib.sha256,
    )
    return {"args": dict(args), "id": command_id, "ts": ts, "hmac": mac.hexdigest()}


def sign_payload(  # noqa: PLR0913 - the signed fields, one argument each
    gateway: str,
    meter: str,
    command: str,
    args: Mapping[str, Any],
    *,
    secret: bytes,
    command_id: str | None = None,
    ts: float | None = None,
) -> bytes:
    """``sign`` as the JSON bytes to publish."""
    document = sign(gateway, meter, command, args, secret=secret, command_id=command_id, ts=ts)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class CommandVerifier:
    """Checks signed command payloads; remembers accepted ids for the freshness window."""

    def __init__(self, secret: bytes, max_age_s: float, *, gateway: str) -> None:
        if not secret:
            raise ValueError("the command secret is empty")
        self._secret = secret
        self.gateway = gateway
        self.max_age_s = max_age_s
        self._seen: dict[str, float] = {}  # id -> when it may be forgotten (unix s)

    def verify(self, meter: str, command: str, payload: bytes, now: float) -> Command:  # noqa: PLR0912 - one check per refusal code, in order
        """The Command a payload carries, or CommandError saying why it is refused.

        Codes: ``unsigned`` (no signature at all), ``bad_payload`` (not the signed shape),
        ``bad_signature``, ``stale`` (timestamp outside the window), ``replayed`` (id seen).
        """
        document = _document(payload)
        if "hmac" not in document:
            raise CommandError(
                "unsigned",
                "commands must be signed: send {args, id, ts, hmac} with an HMAC-SHA256"
                " of the canonical JSON (see gateway/signing.py)",
            )
        extra = set(document) - _FIELDS
        missing = _FIELDS - set(document)
        if extra or missing:
            raise CommandError(
                "bad_payload",
                f"a signed command has exactly args, id, ts and hmac;"
                f" missing {sorted(missing)}, unexpected {sorted(extra)}",
            )
        args, command_id, ts, given = (document[key] for key in ("args", "id", "ts", "hmac"))
        if not isinstance(args, dict):
            raise CommandError("bad_payload", '"args" must be a JSON object')
        if not isinstance(command_id, str) or not 1 <= len(command_id) <= MAX_ID_CHARS:
            raise CommandError(
                "bad_payload", f'"id" must be a string of 1 to {MAX_ID_CHARS} characters'
            )
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise CommandError("bad_payload", '"ts" must be a number (unix seconds)')
        if not isinstance(given, str) or len(given) != _HEX_DIGITS:
            raise CommandError("bad_signature", f'"hmac" must be {_HEX_DIGITS} hex digits')
        try:
            message = canonical(self.gateway, meter, command, args, command_id=command_id, ts=ts)
        except ValueError as err:  # NaN or infinity inside args
            raise CommandError("bad_payload", f"args cannot be signed: {err}") from None
        except RecursionError:
            raise CommandError("bad_payload", "args are nested too deeply to sign") from None
        expected = hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
        if not hmac.compare_digest(expected.encode(), given.lower().encode()):
            legacy = canonical(None, meter, command, args, command_id=command_id, ts=ts)
            if hmac.compare_digest(
                hmac.new(self._secret, legacy, hashlib.sha256).hexdigest().encode(),
                given.lower().encode(),
            ):
                raise CommandError(
                    "bad_signature",
                    f'signed without the gateway: the signed JSON must hold "gateway":'
                    f" {json.dumps(self.gateway)} too (see gateway/signing.py)",
                )
            raise CommandError(
                "bad_signature",
                "the HMAC does not match (wrong secret, or the payload, gateway, meter or"
                " command differ from what was signed)",
            )
        age = now - ts
        if abs(age) > self.max_age_s:
            side = "old" if age > 0 else "in the future"
            raise CommandError(
                "stale",
                f"the command is {abs(age):.0f} s {side}; at most {self.max_age_s:.0f} s"
                " either way (check the clocks)",
            )
        self._forget(now)
        if command_id in self._seen:
            raise CommandError("replayed", f"command id {command_id!r} was already accepted")
        if len(self._seen) >= MAX_REMEMBERED_IDS:
            del self._seen[min(self._seen, key=self._seen.__getitem__)]
        self._seen[command_id] = ts + self.max_age_s
        return Command(meter=meter, name=command, id=command_id, args=args, source="mqtt")

    def _forget(self, now: float) -> None:
        """Drop ids whose timestamps can no longer pass the freshness check."""
        expired = [key for key, until in self._seen.items() if until < now]
        for key in expired:
            del self._seen[key]


def _document(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CommandError("unsigned", f"payload is not UTF-8 (byte {err.start})") from None
    except (ValueError, RecursionError):
        raise CommandError(
            "unsigned", "payload is not a signed JSON command {args, id, ts, hmac}"
        ) from None
    if not isinstance(document, dict):
        raise CommandError("unsigned", "payload is not a signed JSON command {args, id, ts, hmac}")
    return document


def _normal(value: Any) -> Any:
    """Integral floats as integers, so ``2.0`` and ``2`` sign the same in any language."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(key): _normal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(item) for item in value]
    return value
