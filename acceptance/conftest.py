"""The test suite's fixtures that the acceptance test shares (a real mosquitto per test)."""

from tests.conftest import broker

__all__ = ["broker"]
