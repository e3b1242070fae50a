"""What one call into the engine changed.

A module of its own so that scripts/compile-codecs compiles it (records.py holds msgspec
Structs, which mypyc cannot compile): compiled, an Update is a native class, made and read
directly by the engine at every sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.engine.breaker import Action
    from gateway.engine.records import AnalysisRow, BillingRecord, ProfileRow, Register
    from gateway.model import Event

__all__ = ["Update"]


@dataclass(slots=True, init=False)
class Update:
    """What one call into the engine changed."""

    meter: str
    registers: dict[str, Register]
    events: list[Event]
    profile: list[ProfileRow]
    analysis: list[AnalysisRow]
    billing: list[BillingRecord]
    actions: list[Action]

    def __init__(  # noqa: PLR0913 - the dataclass's fields, each optional
        self,
        meter: str,
        registers: dict[str, Register] | None = None,
        *,
        events: list[Event] | None = None,
        profile: list[ProfileRow] | None = None,
        analysis: list[AnalysisRow] | None = None,
        billing: list[BillingRecord] | None = None,
        actions: list[Action] | None = None,
    ) -> None:
        # Written out, not default factories: one Update is made per sample, and compiled,
        # empty literals are made directly where factories are called through Python.
        self.meter = meter
        self.registers = {} if registers is None else registers
        self.events = [] if events is None else events
        self.profile = [] if profile is None else profile
        self.analysis = [] if analysis is None else analysis
        self.billing = [] if billing is None else billing
        self.actions = [] if actions is None else actions

    def __bool__(self) -> bool:
        return bool(
            self.registers
            or self.events
            or self.profile
            or self.analysis
            or self.billing
            or self.actions
        )
