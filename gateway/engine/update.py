"""What one call into the engine changed.

A module of its own so that scripts/compile-codecs compiles it (records.py holds msgspec
Structs, which mypyc cannot compile): compiled, an Update is a native class, made and read
directly by the engine at every sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.engine.breaker import Action
    from gateway.engine.records import AnalysisRow, BillingRecord, ProfileRow, Register
    from gateway.model import Event

__all__ = ["Update"]


@dataclass(slots=True)
class Update:
    """What one call into the engine changed."""

    meter: str
    registers: dict[str, Register] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    profile: list[ProfileRow] = field(default_factory=list)
    analysis: list[AnalysisRow] = field(default_factory=list)
    billing: list[BillingRecord] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.registers
            or self.events
            or self.profile
            or self.analysis
            or self.billing
            or self.actions
        )
