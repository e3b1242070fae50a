"""The engine's cursor between samples, persisted with the registers so a restart resumes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from gateway.engine.breaker import BreakerState
from gateway.engine.prepayment import PrepaymentState

__all__ = ["EngineState"]


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
