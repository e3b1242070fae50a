"""Query parameters of the API: parsed strictly, and every refusal names the parameter."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from gateway.contracts import http

__all__ = ["ApiError", "TimeRange", "choice", "integer", "time_range", "timestamp"]


class ApiError(Exception):
    """A request the API refuses; becomes ``{"error": {...}}`` with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, *, parameter: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter

    def body(self) -> http.ErrorResponse:
        """The JSON error object."""
        return http.ErrorResponse(
            error=http.ErrorDetail(code=self.code, message=self.message, parameter=self.parameter)
        )


def bad(parameter: str, message: str) -> ApiError:
    """A 400 about one query parameter."""
    return ApiError(400, "bad_parameter", f"{parameter}: {message}", parameter=parameter)


def integer(
    query: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int
) -> int:
    """An integer parameter within [minimum, maximum]."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad(name, f"not an integer: {text!r}") from None
    if not minimum <= value <= maximum:
        raise bad(name, f"{value} is outside {minimum}..{maximum}")
    return value


def choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``; the first is the default."""
    text = query.get(name) or allowed[0]
    if text not in allowed:
        raise bad(name, f"{text!r} is not one of {', '.join(allowed)}")
    return text


def timestamp(text: str, name: str, zone: tzinfo) -> datetime:
    """ISO 8601 date or date-time (naive ones are the meter's local time), or Unix seconds."""
    try:
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), UTC)
        if len(text) == 10:  # noqa: PLR2004 - YYYY-MM-DD
            return datetime.combine(date.fromisoformat(text), time(), zone).astimezone(UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise bad(
            name, f"not an ISO 8601 date/time or Unix time: {text!r} (e.g. 2024-05-01T00:00+02:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


class TimeRange:
    """A half-open [since, until) interval in UTC."""

    __slots__ = ("since", "until")

    def __init__(self, since: datetime, until: datetime) -> None:
        self.since = since
        self.until = until


def time_range(
    query: Mapping[str, str],
    zone: tzinfo,
    *,
    now: datetime,
    default_span: timedelta | None,
    max_span: timedelta | None = None,
) -> TimeRange:
    """``since``/``until`` from the query; ``default_span`` before ``until`` when ``since`` is
    absent (None: local midnight today)."""
    until = timestamp(query["until"], "until", zone) if query.get("until") else now
    if query.get("since"):
        since = timestamp(query["since"], "since", zone)
    elif default_span is None:
        local = now.astimezone(zone)
        since = datetime.combine(local.date(), time(), zone).astimezone(UTC)
    else:
        since = until - default_span
    if until <= since:
        raise bad("until", f"must be after since ({since.isoformat()}), got {until.isoformat()}")
    if max_span is not None and until - since > max_span:
        raise bad("since", f"the range is longer than {max_span.days} days; ask in parts")
    return TimeRange(since, until)
