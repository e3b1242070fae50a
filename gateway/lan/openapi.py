"""The OpenAPI 3.1 description served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

__all__ = ["PATHS", "document"]

_ERROR = {"$ref": "#/components/responses/Error"}


def _param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_METER = _param("meter", "path", "Meter id from the config's [[meters]].", {"type": "string"})
_SINCE = _param(
    "since",
    "query",
    "Start (inclusive): ISO 8601 date or date-time (no offset: the meter's local time) or Unix"
    " seconds.",
    {"type": "string"},
)
_UNTIL = _param("until", "query", "End (exclusive), same forms; default now.", {"type": "string"})
_FORMAT = _param(
    "format", "query", "json (default) or csv; both are streamed.", {"enum": ["json", "csv"]}
)
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _get(summary: str, *params: dict[str, Any], csv: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {
        "get": {
            "summary": summary,
            "parameters": list(params),
            "responses": {"200": {"description": "OK", "content": content}, "4XX": _ERROR},
        }
    }


def _post(summary: str, *params: dict[str, Any], body: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": list(params),
        "security": _AUTH,
        "responses": {
            "200": {"description": "Done", "content": {"application/json": {}}},
            "401": _ERROR,
            "403": _ERROR,
            "4XX": _ERROR,
        },
    }
    if body:
        operation["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "args": {"type": "object"},
                            "id": {"type": "string", "maxLength": 128},
                        },
                        "additionalProperties": False,
                    }
                }
            },
        }
    return {"post": operation}


PATHS: dict[str, dict[str, Any]] = {
    "/api/v1": _get("Links to everything below."),
    "/api/v1/openapi.json": _get("This document."),
    "/api/v1/info": _get("Gateway name, version, meters, commands, zeroconf state."),
    "/api/v1/health": _get(
        "Modules (state, frames, last frame, last error, restarts) and outputs (MQTT, outbox)."
    ),
    "/api/v1/stream": {
        "get": {
            "summary": "Server-sent events: snapshot, then live, state, event and health.",
            "parameters": [
                _param("meter", "query", "Only this meter's messages.", {"type": "string"})
            ],
            "responses": {
                "200": {
                    "description": "An endless text/event-stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "4XX": _ERROR,
            },
        }
    },
    "/api/v1/events": _get(
        "The non-volatile event log in id order; page with after_id = next_after_id.",
        _param(
            "meter",
            "query",
            "Only this meter ('gateway' for the gateway's own).",
            {"type": "string"},
        ),
        _param("kind", "query", "Only this kind (register_decrease, ...).", {"type": "string"}),
        _SINCE,
        _UNTIL,
        _param(
            "limit",
            "query",
            "Page size (JSON only).",
            {"type": "integer", "minimum": 1, "maximum": 1000},
        ),
        _param(
            "after_id", "query", "Return events after this id.", {"type": "integer", "minimum": 0}
        ),
        _FORMAT,
        csv=True,
    ),
    "/api/v1/meters": _get("Configured meters."),
    "/api/v1/meters/{meter}": _get("One meter with its current registers.", _METER),
    "/api/v1/meters/{meter}/registers": _get("Current registers by OBIS code.", _METER),
    "/api/v1/meters/{meter}/registers/{obis}": _get(
        "One register.",
        _METER,
        _param("obis", "path", "OBIS code such as 1-0:1.8.0.", {"type": "string"}),
    ),
    "/api/v1/meters/{meter}/display": _get(
        "The 382L display: auto/manual/battery lists, scroll timing, current state.", _METER
    ),
    "/api/v1/meters/{meter}/display/push": _post(
        "Press the display push button (the display_push command).", _METER
    ),
    "/api/v1/meters/{meter}/breaker": _get(
        "Breaker state, causes, actuator confirmation, control modes, prepayment credit and"
        " their recent history. The breaker is never a safety function.",
        _METER,
    ),
    "/api/v1/meters/{meter}/profile": _get(
        "Load profile intervals (energy per interval by OBIS code, status flags).",
        _METER,
        _param(
            "interval_s",
            "query",
            "Profile interval; default: the one the meter is configured to record.",
            {"enum": [300, 900, 1800, 3600]},
        ),
        _SINCE,
        _UNTIL,
        _FORMAT,
        csv=True,
    ),
    "/api/v1/meters/{meter}/analysis": _get(
        "Analysis logger entries (default: the last 24 h).",
        _METER,
        _SINCE,
        _UNTIL,
        _FORMAT,
        csv=True,
    ),
    "/api/v1/meters/{meter}/billing": _get(
        "Billing history: values frozen at each debiting stop, newest first.",
        _METER,
        _param(
            "limit",
            "query",
            "Periods to return.",
            {"type": "integer", "minimum": 1, "maximum": 1000},
        ),
        _param(
            "before",
            "query",
            "Only periods numbered below this (page with next_before).",
            {"type": "integer", "minimum": 1},
        ),
        _FORMAT,
        csv=True,
    ),
    "/api/v1/meters/{meter}/commands": _get("Commands the gateway can execute.", _METER),
    "/api/v1/meters/{meter}/commands/{command}": _post(
        "Execute a command (breaker, top-up, ...); nothing changes when refused.",
        _METER,
        _param("command", "path", "Command name.", {"type": "string"}),
        body=True,
    ),
}


def document(version: str) -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meter-gateway",
            "version": version,
            "description": "The LAN API of a Kamstrup 382L meter gateway. Reads are open; state"
            " changes need 'Authorization: Bearer <token>' (http.token_file).",
        },
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Refused; error.parameter names a bad query parameter.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "properties": {
                                            "code": {"type": "string"},
                                            "message": {"type": "string"},
                                            "parameter": {"type": "string"},
                                        },
                                        "required": ["code", "message"],
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }
