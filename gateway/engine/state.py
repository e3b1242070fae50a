"""The engine's cursor between samples, persisted with the registers so a restart resumes.

The breaker's and prepayment's persisted parts live here too: msgspec Structs cannot be
classes of a mypyc-compiled module (scripts/compile-codecs compiles the engine's logic, not
this module), so the engine keeps its Structs in modules that stay Python."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import msgspec

__all__ = ["CONNECTED", "BreakerState", "EngineState", "PrepaymentState"]

CONNECTED = "connected"  # the breaker's state while power flows


class BreakerState(msgspec.Struct, kw_only=True):
    """The persisted part of the breaker."""

    state: str = CONNECTED
    causes: list[str] = msgspec.field(default_factory=list)
    actuator: str = "confirmed"  # confirmed | pending | failed
    target: str | None = None  # "open" | "closed" while pending
    pending_since: datetime | None = None
    over_limit_since: datetime | None = None
    under_limit_since: datetime | None = None


class PrepaymentState(msgspec.Struct, kw_only=True):
    """The persisted part of prepayment."""

    balance: Decimal = Decimal(0)
    emergency_in_use: bool = False
    exhausted: bool = False
    warned: list[str] = msgspec.field(default_factory=list)  # warning levels already reported
    last_sequence: int = 0
    recent_ids: list[str] = msgspec.field(default_factory=list)
    charged_through: date | None = None  # standing charge paid up to and including this day
    deferred: bool = False


class EngineState(msgspec.Struct, kw_only=True):
    """Everything besides registers the engine needs to continue exactly where it stopped."""

    last_at: datetime | None = None
    last: dict[str, Decimal] = msgspec.field(default_factory=dict)  # cumulative values at last_at
    demand_start: datetime | None = None
    demand_energy: Decimal | None = None  # A+ at demand_start; None: the period is not whole
    demand_tariff: int = 1
    profile_start: datetime | None = None
    profile_values: dict[str, Decimal] = msgspec.field(default_factory=dict)
    profile_flags: int = 0
    analysis_start: datetime | None = None
    analysis_sums: dict[str, float] = msgspec.field(default_factory=dict)
    analysis_counts: dict[str, int] = msgspec.field(default_factory=dict)
    next_debiting: datetime | None = None
    external_tariff: int | None = None
    operating_s: float = 0.0
    rejecting: dict[str, str] = msgspec.field(default_factory=dict)  # register -> refusal kind
    rebase: bool = False
    display_mode: str = "auto"
    display_index: int = 0
    display_last_push: datetime | None = None
    display_lists: dict[str, list[str]] = msgspec.field(default_factory=dict)
    breaker: BreakerState = msgspec.field(default_factory=BreakerState)
    prepayment: PrepaymentState = msgspec.field(default_factory=PrepaymentState)
    limit_overrides: dict[str, float] = msgspec.field(default_factory=dict)  # set_limits

    def encode(self) -> bytes:
        """JSON bytes for the store."""
        return msgspec.json.encode(self)

    @classmethod
    def decode(cls, blob: bytes | None) -> EngineState:
        """The state from the store; a fresh one when there is none."""
        if not blob:
            return cls()
        return msgspec.json.decode(blob, type=cls)
