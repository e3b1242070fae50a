"""The generated OpenAPI document: a valid OpenAPI 3.1 document, typed answers, every command of
the table, every route served, and real answers of a running gateway that match their schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import aiohttp
import msgspec
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from gateway import __version__
from gateway.commands import table as command_table
from gateway.contracts import encode, schema_of
from gateway.lan import openapi
from gateway.lan.api import Api
from gateway.model import Event, utc_now
from tests.support.gateway import until
from tests.test_lan import TOKEN, _sse, feed, running_gateway, settings_text

DOCUMENT: dict[str, Any] = msgspec.json.decode(encode(openapi.document(__version__)))


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in DOCUMENT["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its top-level ``$ref`` followed."""
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = DOCUMENT["components"]["schemas"][name]
    return schema


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)  # raises OpenAPIValidationError naming the path within the document


def test_a_broken_document_is_refused_by_the_validator() -> None:
    """The validator is not a formality: a response without its description fails."""
    broken = msgspec.json.decode(encode(openapi.document(__version__)))
    del broken["paths"]["/api/v1/info"]["get"]["responses"]["200"]["description"]
    with pytest.raises(Exception, match="description"):
        validate(broken)


def test_every_200_answer_has_a_typed_schema() -> None:
    for path, method, operation in operations():
        content = operation["responses"]["200"]["content"]
        if path.endswith("/stream"):
            assert content == {"text/event-stream": {"schema": {"type": "string"}}}
            continue
        schema = resolve(content["application/json"]["schema"])
        assert schema.get("properties"), f"{method} {path}: untyped answer {schema}"
        assert schema.get("required"), f"{method} {path}: no field is promised"
        assert "additionalProperties" not in schema or schema["additionalProperties"] is False


def test_every_command_of_the_table_the_api_may_send_is_documented_with_its_arguments() -> None:
    documented = {
        path.rsplit("/", 1)[1]: methods["post"]
        for path, methods in DOCUMENT["paths"].items()
        if path.startswith("/api/v1/meters/{meter}/commands/")
    }
    table = command_table()
    assert set(documented) == {name for name, spec in table.items() if "http" in spec.senders}
    assert {"button", "resend_discovery", "set_total", "learn_mode"} <= set(documented)
    for name, operation in documented.items():
        body = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
        assert set(body["properties"]) == {"args", "id"}
        args = body["properties"]["args"]["anyOf"][0]
        expected = schema_of(table[name].args)
        assert resolve(args) == expected["$defs"][expected["$ref"].rsplit("/", 1)[1]]
        answer = resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
        expected = schema_of(table[name].result)
        assert (
            resolve(answer["properties"]["result"])
            == (expected["$defs"][expected["$ref"].rsplit("/", 1)[1]])
        )
        assert operation["security"] == [{"bearer": []}]
    top_up = resolve(
        resolve(documented["top_up"]["requestBody"]["content"]["application/json"]["schema"])[
            "properties"
        ]["args"]["anyOf"][0]
    )
    assert top_up["required"] == ["id", "sequence", "amount"]
    assert top_up["properties"]["amount"] == {"type": "number"}  # written as a number, exactly


def test_every_documented_path_is_served_and_every_served_path_documented() -> None:
    # The route table needs no server behind it until a request comes.
    served = [route.path for route in Api(cast(Any, None)).routes()]
    assert "/api/v1/meters/{meter}/commands/{command}" in served
    patterns = {
        route: re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", route) + "$") for route in served
    }
    for path in DOCUMENT["paths"]:
        matching = [route for route, pattern in patterns.items() if pattern.match(path)]
        assert matching, f"{path} is documented but not served"
    for route in served:
        assert any(patterns[route].match(path) for path in DOCUMENT["paths"]), route


# real answers ----------------------------------------------------------------------------------


def _validator(path: str, method: str, status: str = "200") -> OAS31Validator:
    operation = DOCUMENT["paths"][path][method]
    response = operation["responses"].get(status) or operation["responses"]["4XX"]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"]["Error"]
    schema = response["content"]["application/json"]["schema"]
    return OAS31Validator({**schema, "components": DOCUMENT["components"]})


async def _check(
    http: aiohttp.ClientSession,
    base: str,
    method: str,
    documented: str,
    concrete: str,
    *,
    status: int = 200,
    **kwargs: Any,
) -> Any:
    async with http.request(method.upper(), base + concrete, **kwargs) as response:
        body = await response.json(content_type=None)
        assert response.status == status, body
    errors = sorted(
        _validator(documented, method, str(status)).iter_errors(body), key=lambda e: e.path
    )
    assert not errors, f"{method} {concrete}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )
    return body


async def test_real_answers_of_a_running_gateway_match_their_schemas(tmp_path: Path) -> None:
    async with (
        running_gateway(settings_text(tmp_path)) as (gateway, _, base),
        aiohttp.ClientSession() as http,
    ):
        now = utc_now()
        for minutes in range(0, 40, 5):
            feed(gateway, now - timedelta(minutes=40 - minutes), a_plus=Decimal(1000 + minutes))
        gateway.report(Event("second", now, "test_event", "for the schema", {"n": 1}))
        await until(lambda: gateway.health.get("sim1") and gateway.health["sim1"].frames_ok > 2)
        await until(lambda: len(gateway.meters.published("second")) >= 4)
        since = now - timedelta(hours=2)
        await until(
            lambda: next(gateway.store.profile("second", 900, since, now), None) is not None,
            30,
            "a closed profile interval in the store",
        )
        p = "/api/v1"
        m = f"{p}/meters/{{meter}}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        gets = [
            (p, p),
            (f"{p}/openapi.json", f"{p}/openapi.json"),
            (f"{p}/info", f"{p}/info"),
            (f"{p}/health", f"{p}/health"),
            (f"{p}/events", f"{p}/events?limit=1"),
            (f"{p}/meters", f"{p}/meters"),
            (m, f"{p}/meters/second"),
            (f"{m}/registers", f"{p}/meters/second/registers"),
            (f"{m}/registers/{{obis}}", f"{p}/meters/second/registers/1-0:1.8.0"),
            (f"{m}/display", f"{p}/meters/main/display"),
            (f"{m}/display", f"{p}/meters/second/display"),
            (f"{m}/breaker", f"{p}/meters/main/breaker"),
            (f"{m}/profile", f"{p}/meters/second/profile?since={int(now.timestamp()) - 7200}"),
            (f"{m}/analysis", f"{p}/meters/second/analysis"),
            (f"{m}/billing", f"{p}/meters/second/billing"),
            (f"{m}/commands", f"{p}/meters/second/commands"),
        ]
        answers = {}
        for documented, concrete in gets:
            answers[concrete] = await _check(http, base, "get", documented, concrete)
        assert answers[f"{p}/events?limit=1"]["events"], "the schema was checked on no event"
        assert answers[f"{p}/meters/second"]["registers"], "the schema was checked on no register"
        profile = next(v for k, v in answers.items() if "/profile" in k)
        assert profile["rows"], "the schema was checked on no profile row"
        await _check(
            http, base, "post", f"{m}/display/push", f"{p}/meters/main/display/push", headers=auth
        )
        await _check(
            http,
            base,
            "post",
            f"{m}/commands/set_limits",
            f"{p}/meters/main/commands/set_limits",
            headers=auth,
            json={"args": {"power_w": 5000}, "id": "limits-1"},
        )
        await _check(
            http,
            base,
            "post",
            f"{m}/commands/debiting_stop",
            f"{p}/meters/second/commands/debiting_stop",
            headers=auth,
        )
        billing = await _check(http, base, "get", f"{m}/billing", f"{p}/meters/second/billing")
        assert billing["periods"], "the schema was checked on no billing period"
        # refusals answer the documented error shape, naming the field
        refused = await _check(
            http,
            base,
            "post",
            f"{m}/commands/set_tariff",
            f"{p}/meters/main/commands/set_tariff",
            status=400,
            headers=auth,
            json={"args": {"tariff": 9}},
        )
        assert "args.tariff" in refused["error"]["message"]
        await _check(http, base, "get", f"{m}/registers", f"{p}/meters/nope/registers", status=404)
        await _check(http, base, "get", f"{p}/events", f"{p}/events?limit=0", status=400)


async def test_live_stream_messages_match_their_schemas(tmp_path: Path) -> None:
    async with (
        running_gateway(settings_text(tmp_path)) as (gateway, _, base),
        aiohttp.ClientSession() as http,
        http.get(f"{base}/api/v1/stream?meter=main") as response,
    ):
        gateway.report(Event("main", utc_now(), "test_event", "for the stream", {"n": 1}))
        seen: dict[str, int] = {}
        wanted = {"snapshot", "live", "state", "event", "display"}
        while not wanted <= set(seen):
            name, data = await _sse(response)
            # every message is described in the document, by its event name
            schema = DOCUMENT["paths"]["/api/v1/stream"]["get"]["x-stream-messages"][name]
            validator = OAS31Validator({**schema, "components": DOCUMENT["components"]})
            errors = [e.message for e in validator.iter_errors(data)]
            assert errors == [], (name, errors[:3])
            seen[name] = seen.get(name, 0) + 1
