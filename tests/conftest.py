"""Fixtures shared by every test: real brokers and temporary data directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Broker

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port, stopped after the test."""
    instance = Broker(tmp_path)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
