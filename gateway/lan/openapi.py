"""The OpenAPI 3.1 description served at ``/api/v1/openapi.json``, generated.

Every response schema comes from the Structs the handlers answer with (``gateway.contracts.http``)
and every command, with its argument and result schemas, from the command table
(``gateway.commands``): a field added to a response or an argument shows here by itself, and
``tests/test_openapi.py`` validates the document and checks real answers against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from gateway.commands import describe, module_commands
from gateway.commands import table as command_table
from gateway.contracts import http, schema_components
from gateway.engine.commands import CommandSpec

__all__ = ["API_PATH", "OPERATIONS", "Operation", "document", "paths"]

API_PATH = "/api/v1"
_ERROR = {"$ref": "#/components/responses/Error"}
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


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


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented route: its method, path, answer and parameters."""

    method: str
    path: str
    summary: str
    response: type[msgspec.Struct] | None  # None: not JSON (the event stream)
    parameters: tuple[dict[str, Any], ...] = ()
    csv: bool = False
    auth: bool = False
    command: CommandSpec | None = None  # a command: its arguments are the request body


OPERATIONS: tuple[Operation, ...] = (
    Operation("get", API_PATH, "Links to everything below.", http.ApiIndex),
    Operation("get", f"{API_PATH}/openapi.json", "This document.", http.OpenApiDocument),
    Operation(
        "get",
        f"{API_PATH}/info",
        "Gateway name, version, meters, commands, zeroconf state.",
        http.InfoResponse,
    ),
    Operation(
        "get",
        f"{API_PATH}/health",
        "Modules (state, frames, last frame, last error, restarts) and outputs (MQTT, outbox).",
        http.HealthResponse,
    ),
    Operation(
        "get",
        f"{API_PATH}/stream",
        "Server-sent events: snapshot, then live, state, event and health.",
        None,
        (_param("meter", "query", "Only this meter's messages.", {"type": "string"}),),
    ),
    Operation(
        "get",
        f"{API_PATH}/events",
        "The non-volatile event log in id order; page with after_id = next_after_id.",
        http.EventsPage,
        (
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
                "after_id",
                "query",
                "Return events after this id.",
                {"type": "integer", "minimum": 0},
            ),
            _FORMAT,
        ),
        csv=True,
    ),
    Operation("get", f"{API_PATH}/meters", "Configured meters.", http.MeterList),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}",
        "One meter with its current registers.",
        http.MeterDetail,
        (_METER,),
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/registers",
        "Current registers by OBIS code.",
        http.RegistersResponse,
        (_METER,),
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/registers/{{obis}}",
        "One register.",
        http.RegisterResponse,
        (_METER, _param("obis", "path", "OBIS code such as 1-0:1.8.0.", {"type": "string"})),
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/display",
        "The 382L display: auto/manual/battery lists, scroll timing, current state.",
        http.DisplayResponse,
        (_METER,),
    ),
    Operation(
        "post",
        f"{API_PATH}/meters/{{meter}}/display/push",
        "Press the display push button (the display_push command).",
        http.DisplayPushResponse,
        (_METER,),
        auth=True,
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/breaker",
        "Breaker state, causes, actuator confirmation, control modes, prepayment credit and"
        " their recent history. The breaker is never a safety function.",
        http.BreakerResponse,
        (_METER,),
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/profile",
        "Load profile intervals (energy per interval by OBIS code, status flags).",
        http.ProfileResponse,
        (
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
        ),
        csv=True,
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/analysis",
        "Analysis logger entries (default: the last 24 h).",
        http.AnalysisResponse,
        (_METER, _SINCE, _UNTIL, _FORMAT),
        csv=True,
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/billing",
        "Billing history: values frozen at each debiting stop, newest first.",
        http.BillingResponse,
        (
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
        ),
        csv=True,
    ),
    Operation(
        "get",
        f"{API_PATH}/meters/{{meter}}/commands",
        "Commands the gateway can execute.",
        http.CommandListResponse,
        (_METER,),
    ),
)


def command_operations(specs: Iterable[CommandSpec]) -> list[Operation]:
    """One ``POST .../commands/<name>`` per command the API may send, from the command table."""
    modules = module_commands()
    operations = []
    for spec in sorted(specs, key=lambda s: s.name):
        if "http" not in spec.senders:
            continue
        operations.append(
            Operation(
                "post",
                f"{API_PATH}/meters/{{meter}}/commands/{spec.name}",
                describe(spec, modules) + " Nothing changes when refused.",
                http.CommandResponse,
                (_METER,),
                auth=True,
                command=spec,
            )
        )
    return operations


def _operations() -> list[Operation]:
    return [*OPERATIONS, *command_operations(command_table().values())]


def paths() -> set[str]:
    """Every documented path (imports every module type, for their commands)."""
    return {operation.path for operation in _operations()}


def document(version: str) -> http.OpenApiDocument:
    """The whole OpenAPI document."""
    operations = _operations()
    contracts: list[Any] = [http.ErrorResponse, *http.STREAM_MESSAGES.values()]
    for operation in operations:
        if operation.command is not None:
            contracts += [_request_body(operation.command), _response(operation.command)]
        elif operation.response is not None:
            contracts.append(operation.response)
    schemas, components = schema_components(contracts)
    by_contract = dict(zip(contracts, schemas, strict=True))
    built: dict[str, dict[str, Any]] = {}
    for operation in operations:
        body = schema = None
        if operation.command is not None:
            body = by_contract[_request_body(operation.command)]
            schema = by_contract[_response(operation.command)]
        elif operation.response is not None:
            schema = by_contract[operation.response]
        built.setdefault(operation.path, {})[operation.method] = _operation(operation, schema, body)
    built[f"{API_PATH}/stream"]["get"]["x-stream-messages"] = {
        event: by_contract[contract] for event, contract in http.STREAM_MESSAGES.items()
    }
    return http.OpenApiDocument(
        openapi="3.1.0",
        info=http.OpenApiInfo(
            title="meter-gateway",
            version=version,
            description="The LAN API of a Kamstrup 382L meter gateway. Reads are open; state"
            " changes need 'Authorization: Bearer <token>' (http.token_file).",
        ),
        paths=dict(sorted(built.items())),
        components={
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Refused; error.parameter names a bad query parameter or"
                    " argument.",
                    "content": {"application/json": {"schema": by_contract[http.ErrorResponse]}},
                }
            },
        },
    )


# A client's own id for a command, echoed in the reply.
CommandId = Annotated[str, msgspec.Meta(max_length=128)]
_BODIES: dict[str, type[msgspec.Struct]] = {}


def _request_body(spec: CommandSpec) -> type[msgspec.Struct]:
    """The body of ``POST .../commands/<name>``: ``{"args": <the command's arguments>, "id"}``
    (one class per command, made once, so the schema is named after the command)."""
    name, args = spec.name, spec.args
    body = _BODIES.get(name)
    if body is None:
        title = "".join(part.title() for part in name.split("_")) + "Request"
        body = msgspec.defstruct(
            title,
            [("args", args | None, None), ("id", CommandId | None, None)],
            frozen=True,
            forbid_unknown_fields=True,
            module=__name__,
        )
        body.__doc__ = f"``{name}``: its arguments and an optional id echoed in the answer."
        _BODIES[name] = body
    return body


_RESPONSES: dict[str, type[msgspec.Struct]] = {}


def _response(spec: CommandSpec) -> type[msgspec.Struct]:
    """``CommandResponse`` with the command's own result type (named after the command)."""
    response = _RESPONSES.get(spec.name)
    if response is None:
        title = "".join(part.title() for part in spec.name.split("_")) + "Response"
        response = msgspec.defstruct(
            title,
            [
                (field.name, field.type)
                for field in msgspec.structs.fields(http.CommandResponse)
                if field.name != "result"
            ]
            + [("result", spec.result)],
            bases=None,
            frozen=True,
            kw_only=True,
            module=__name__,
        )
        response.__doc__ = f"``{spec.name}`` carried out, with its result."
        _RESPONSES[spec.name] = response
    return response


def _operation(
    operation: Operation, schema: dict[str, Any] | None, body: dict[str, Any] | None
) -> dict[str, Any]:
    content: dict[str, Any]
    if schema is None:
        content = {"text/event-stream": {"schema": {"type": "string"}}}
        description = (
            "An endless text/event-stream; each message's data is the JSON of the schema"
            " x-stream-messages names for its event"
        )
    else:
        content = {"application/json": {"schema": schema}}
        description = "OK"
        if operation.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
    built: dict[str, Any] = {
        "summary": operation.summary,
        "parameters": list(operation.parameters),
        "responses": {"200": {"description": description, "content": content}, "4XX": _ERROR},
    }
    if operation.auth:
        built["security"] = _AUTH
        built["responses"] = {
            "200": built["responses"]["200"],
            "401": _ERROR,
            "403": _ERROR,
            "4XX": _ERROR,
        }
    if body is not None:
        built["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    return built
