"""The meter engine: a pure model of a Kamstrup 382L fed by Samples (no I/O, clock injected)."""

from gateway.engine.meter import MeterEngine, Register, Update

__all__ = ["MeterEngine", "Register", "Update"]
