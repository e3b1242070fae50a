"""A repeating fault is logged once per interval with how many were folded in."""

from __future__ import annotations

import logging

import pytest

from gateway.ratelog import RateLimitedLog


def test_a_repeating_fault_is_one_line_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    log = RateLimitedLog(logging.getLogger("test.ratelog"), 60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        assert log.warning("link %s lost", "ttyUSB0")
        for _ in range(29):
            now[0] += 1.0
            assert not log.warning("link %s lost", "ttyUSB0")
        now[0] += 31.0  # 60 s after the first line
        assert log.log(logging.ERROR, "link %s lost", "ttyUSB0")
        now[0] += 0.5
        assert not log.warning("link %s lost", "ttyUSB0")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "link ttyUSB0 lost"),
        (logging.ERROR, "link ttyUSB0 lost (and 29 more like it since the last line)"),
    ]


def test_the_traceback_goes_with_the_line_that_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = RateLimitedLog(logging.getLogger("test.ratelog"), 60.0, clock=lambda: 5.0)
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            log.log(logging.ERROR, "module %s crashed", "m", exc_info=True)
            log.log(logging.ERROR, "module %s crashed", "m", exc_info=True)
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
