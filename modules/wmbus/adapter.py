"""The wireless M-Bus module: one receiver, many meters, each mapped to a gateway meter.

The asyncio part only reads the receiver and dispatches; framing lives in ``receivers``,
routing and decoding in ``pipeline`` and the codec. Compact-frame formats, the table of
addresses heard and which key failures were already reported survive restarts in the store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from gateway.adapter import ModuleContext
from gateway.engine.commands import CommandSpec
from gateway.errors import CannotConnect, ConfigError, FatalAdapterError, StoreError
from gateway.model import Reading, Sample, utc_now
from gateway.transport import Link, SerialSettings, open_link
from modules.codecs.errors import FrameError
from modules.codecs.wmbus.compact import FormatCache
from modules.wmbus.config import WmbusConfig
from modules.wmbus.pipeline import Outcome, Router, meter_time, readings
from modules.wmbus.receivers import Heard, Receiver, Rejected, Reply, make_receiver

__all__ = ["WmbusAdapter", "WmbusConfig", "setup_receiver"]

_LOGGER = logging.getLogger(__name__)

# IMST HCI spec 1.6 and the Amber manual: a stick confirms a command within milliseconds;
# this leaves room for a USB-serial bridge waking up and a ser2net hop.
SETUP_REPLY_TIMEOUT_S = 3.0
# The heard table changes with every telegram: it is encoded at most this often and reaches the
# SD card with the gateway's next checkpoint (a commit of its own each minute wrote 12 KB or
# more a minute, over 17 MB a day, for a table that is only a diagnostic).
HEARD_SAVE_EVERY_S = 60.0
# One undecryptable telegram may be radio noise that passed the CRCs of a stick that strips
# them; two in a row is the key.
WRONG_KEY_CONFIRMATIONS = 2
# New unknown addresses logged one by one; in a block of flats the rest go to `listen`.
MAX_UNKNOWN_LOGGED = 20
KEY_FAILURES = ("wrong_key", "no_key", "not_encrypted", "bad_mac")
RSSI_READING = "rssi_dbm"
STATE_FORMATS = "formats"
STATE_HEARD = "heard"
STATE_KEY_REPORTS = "key_reports"


class WmbusAdapter:
    """Listens to one wM-Bus receiver and feeds the configured meters."""

    Config = WmbusConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: WmbusConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Open the receiver, set its link modes, route telegrams until cancelled or lost."""
        config = self.config
        try:
            entries = config.entries()
        except ConfigError as err:
            raise FatalAdapterError(f"{ctx.name}: {err}") from err
        router = Router(
            entries, cache=_load_cache(ctx), duplicate_window_s=config.duplicate_window_s
        )
        saved = ctx.load_state(STATE_HEARD)
        if saved:
            router.restore_heard(saved)
        receiver = make_receiver(config.receiver, config.modes)
        dispatch = _Dispatch(ctx, config, router)
        serial = SerialSettings(baudrate=config.baudrate or receiver.baudrate)
        try:
            async with open_link(config.device, serial) as link:
                await setup_receiver(link, receiver, config.device, dispatch.handle)
                _LOGGER.info(
                    "%s: %s on %s listening to %s%s; %d meter(s) configured",
                    ctx.name,
                    config.receiver,
                    config.device,
                    "+".join(config.modes),
                    f" ({receiver.device_info})" if receiver.device_info else "",
                    len(entries),
                )
                silence = config.silence_timeout_s or None
                while True:
                    for item in receiver.feed(await link.read_within(silence)):
                        dispatch.handle(item)
                    dispatch.save_heard(force=False)
        finally:
            with contextlib.suppress(StoreError):
                dispatch.save_heard(force=True)


async def setup_receiver(
    link: Link, receiver: Receiver, device: str, on_item: Callable[[Heard | Rejected], None]
) -> None:
    """Send the receiver's setup commands, each answered before the next; telegrams that
    arrive meanwhile go to ``on_item``."""
    if device == "stdin" or device.startswith("exec:"):
        return  # a one-way source: nothing to configure
    replies: collections.deque[Reply] = collections.deque()
    command = receiver.setup(None)
    while command is not None:
        if command:
            await link.write(command)
        try:
            async with asyncio.timeout(SETUP_REPLY_TIMEOUT_S):
                while not replies:
                    for item in receiver.feed(await link.read()):
                        if isinstance(item, Reply):
                            replies.append(item)
                        else:
                            on_item(item)
        except TimeoutError:
            raise CannotConnect(
                f"{receiver.kind} on {device} did not answer within "
                f"{SETUP_REPLY_TIMEOUT_S:g} s: check `receiver` and `device`"
            ) from None
        command = receiver.setup(replies.popleft())


class _Dispatch:
    """Turns routed telegrams into samples, counters and (rare) events."""

    def __init__(self, ctx: ModuleContext, config: WmbusConfig, router: Router) -> None:
        self.ctx = ctx
        self.config = config
        self.router = router
        self.zone = ctx.settings.zone
        self.streaks: dict[str, int] = {}
        self.reported = _load_json(ctx, STATE_KEY_REPORTS)
        self.unknown_logged = 0
        self.heard_saved_at = time.monotonic()
        self.heard_dirty = False

    def handle(self, item: Heard | Reply | Rejected) -> None:
        """One item from the receiver."""
        if isinstance(item, Heard):
            self._heard(item)
        elif isinstance(item, Rejected):
            _LOGGER.debug("%s: %s", self.ctx.name, item.reason)
            self.ctx.frame_failed(FrameError(item.reason), item.raw or None)
        else:
            _LOGGER.debug("%s: receiver says %s %s", self.ctx.name, item.name, item.detail)

    def save_heard(self, *, force: bool) -> None:
        """Keep the heard table for the next checkpoint when it changed, at most every
        HEARD_SAVE_EVERY_S."""
        now = time.monotonic()
        if self.heard_dirty and (force or now - self.heard_saved_at >= HEARD_SAVE_EVERY_S):
            self.ctx.keep_state(STATE_HEARD, self.router.heard_json())
            self.heard_saved_at, self.heard_dirty = now, False

    def _heard(self, heard: Heard) -> None:
        ctx = self.ctx
        received = utc_now()
        outcome = self.router.route(heard, now=time.monotonic(), at=received)
        self.heard_dirty = True
        if outcome.learned:
            ctx.save_state(STATE_FORMATS, self.router.cache.to_json())
            _LOGGER.info("%s: learned a compact frame format (kept across restarts)", ctx.name)
        counts = ctx.health.detail.setdefault("telegrams", {})
        counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        ctx.health.detail["meters_heard"] = len(self.router.heard)
        match outcome.kind:
            case "duplicate":
                _LOGGER.debug("%s: duplicate telegram dropped", ctx.name)
            case "unknown":
                self._unknown(outcome)
            case "failed":
                self._failed(outcome)
            case "decoded":
                self._decoded(outcome, received)

    def _unknown(self, outcome: Outcome) -> None:
        link = outcome.link
        assert link is not None
        self.ctx.frame_ok(outcome.heard.telegram, rssi=outcome.heard.rssi_dbm)
        if self.ctx.settings.cluster.receiver:
            return  # a receiver forwards every telegram; decode workers hold the keys
        row = self.router.heard.get(f"{link.manufacturer_code} {link.id}")
        if row is not None and row.telegrams == 1 and self.unknown_logged < MAX_UNKNOWN_LOGGED:
            self.unknown_logged += 1
            _LOGGER.info(
                "%s: heard %s %s (%s, version %d, type 0x%02X), not configured: add it under "
                "[[modules.meters]] to use it (`meter-gateway listen` shows all)",
                self.ctx.name,
                link.manufacturer_code,
                link.id,
                row.medium,
                link.version,
                link.device_type,
            )

    def _failed(self, outcome: Outcome) -> None:
        error = outcome.error
        assert error is not None
        self.ctx.frame_failed(error, outcome.heard.telegram, rssi=outcome.heard.rssi_dbm)
        entry = outcome.entry
        if entry is None or error.code not in KEY_FAILURES:
            _LOGGER.debug("%s: %s", self.ctx.name, error)
            return
        streak = self.streaks[entry.id] = self.streaks.get(entry.id, 0) + 1
        if error.code == "wrong_key" and streak < WRONG_KEY_CONFIRMATIONS:
            return
        fingerprint = _fingerprint(entry.key)
        if self.reported.get(entry.id) == fingerprint:
            return  # told once already, for this key
        self.reported[entry.id] = fingerprint
        self.ctx.save_state(STATE_KEY_REPORTS, json.dumps(self.reported).encode())
        assert outcome.link is not None
        who = f"{outcome.link.manufacturer_code} {entry.id}"
        detail = _hint(error, who)
        _LOGGER.warning("%s: %s", self.ctx.name, detail)
        self.ctx.event(
            "decryption_failed", detail, meter=entry.meter, wmbus_id=entry.id, code=error.code
        )

    def _decoded(self, outcome: Outcome, received: datetime) -> None:
        entry, decoded = outcome.entry, outcome.decoded
        assert entry is not None and decoded is not None
        ctx = self.ctx
        self.streaks.pop(entry.id, None)
        if self.reported.pop(entry.id, None) is not None:
            ctx.save_state(STATE_KEY_REPORTS, json.dumps(self.reported).encode())
            _LOGGER.info("%s: meter %s decrypts again", ctx.name, entry.id)
        values = readings(decoded)
        heard = outcome.heard
        if values and heard.rssi_dbm is not None:
            # Signal strength as wmbusmeters users know it: a diagnostic value of the meter.
            values += (Reading(RSSI_READING, round(heard.rssi_dbm, 1), "dBm"),)
        if not values:
            ctx.frame_ok(heard.telegram, rssi=heard.rssi_dbm)
            return
        ctx.submit(
            Sample(
                meter=entry.meter,
                source=ctx.name,
                at=meter_time(decoded, self.zone, received),
                readings=values,
                raw=heard.telegram,
                rssi=heard.rssi_dbm,
            )
        )


def _hint(error: FrameError, who: str) -> str:
    match error.code:
        case "wrong_key":
            return (
                f"telegrams from wM-Bus meter {who} do not decrypt with the configured key "
                f"({error}). Check the key: 32 hex digits from the meter's supplier (Kamstrup: "
                "the .kem file); the meter may use another key than the one configured (a "
                "replaced meter or radio module comes with a new key)"
            )
        case "no_key":
            return (
                f"wM-Bus meter {who} sends encrypted telegrams and no key is configured: add "
                "`key`, `key_file` or `kem_file` to its [[modules.meters]] entry"
            )
        case "not_encrypted":
            return (
                f"wM-Bus meter {who} sends unencrypted telegrams although a key is configured: "
                "they are refused (remove the key if the meter really sends in the clear; "
                "otherwise something else is sending with its address)"
            )
    return f"telegrams from wM-Bus meter {who} fail authentication ({error}): check the key"


def _fingerprint(key: bytes | None) -> str:
    """Tells keys apart without keeping them (the store is not a secret store)."""
    if key is None:
        return "none"
    return hashlib.sha256(b"meter-gateway wmbus key " + key).hexdigest()[:12]


def _load_cache(ctx: ModuleContext) -> FormatCache:
    saved = ctx.load_state(STATE_FORMATS)
    if not saved:
        return FormatCache()
    try:
        cache = FormatCache.from_json(saved)
    except FrameError as err:
        _LOGGER.warning("%s: %s; starting with the built-in formats", ctx.name, err)
        return FormatCache()
    _LOGGER.debug("%s: %d learned compact formats restored", ctx.name, len(cache.learned()))
    return cache


def _load_json(ctx: ModuleContext, key: str) -> dict[str, str]:
    saved = ctx.load_state(key)
    try:
        body = json.loads(saved) if saved else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
