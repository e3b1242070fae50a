"""The meter engine: a pure model of a Kamstrup 382L fed by Samples (no I/O, clock injected)."""

from gateway.engine.breaker import Action
from gateway.engine.meter import MeterEngine, Register, Update
from gateway.engine.records import AnalysisRow, BillingRecord, ProfileFlag, ProfileRow
from gateway.engine.settings import EngineSettings

__all__ = [
    "Action",
    "AnalysisRow",
    "BillingRecord",
    "EngineSettings",
    "MeterEngine",
    "ProfileFlag",
    "ProfileRow",
    "Register",
    "Update",
]
