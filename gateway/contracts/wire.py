"""One JSON encoder for every public payload, and the JSON schemas that describe what it writes.

Decimals are written as JSON numbers with their exact digits (a register of 1234.567 kWh never
becomes 1234.5670000000001); msgspec's own schema calls a Decimal a string, so the schemas are
corrected to say what the encoder really writes. Times are RFC 3339.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "REF_TEMPLATE",
    "BillingValue",
    "Number",
    "ReadingValue",
    "Timestamp",
    "encode",
    "schema_components",
    "schema_of",
]

# Where schemas live in an OpenAPI document.
REF_TEMPLATE = "#/components/schemas/{name}"

# A meter value: a number (exact, from a Decimal, or an int/float) or a text (a serial number,
# a breaker state). msgspec cannot type a union of Decimal and str, so the schema is given here.
ReadingValue = Annotated[
    Any,
    msgspec.Meta(
        extra_json_schema={
            "type": ["number", "string"],
            "description": "A number with the meter's exact digits, or a text value.",
        }
    ),
]
# A value frozen at a debiting stop: a reading, or a peak with the local date and hour it was
# reached.
BillingValue = Annotated[
    Any,
    msgspec.Meta(
        extra_json_schema={
            "anyOf": [
                {"type": ["number", "string"]},
                {
                    "type": "object",
                    "properties": {
                        "value": {"type": ["number", "string"]},
                        "date": {"type": "string"},
                        "hour": {"type": "string"},
                        "at": {"type": "string"},
                    },
                    "required": ["value", "date", "hour", "at"],
                },
            ],
            "description": "A reading, or a peak with the local date and hour it was reached.",
        }
    ),
]
# A time as the encoder writes it: RFC 3339 (UTC times end in Z).
Timestamp = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]
# A number the encoder writes with exact digits (a Decimal or an int/float).
Number = Annotated[Any, msgspec.Meta(extra_json_schema={"type": "number"})]


def _enc_hook(value: Any) -> Any:
    # Event data and module details come from many places; say what a value is, never crash
    # on it halfway through a response or a publish.
    return str(value)


_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=_enc_hook)


def encode(document: Any) -> bytes:
    """Compact JSON: exact decimals as numbers, datetimes as RFC 3339."""
    return _ENCODER.encode(document)


def schema_of(contract: Any) -> dict[str, Any]:
    """The JSON schema (2020-12) of one contract, as the encoder writes it."""
    schema: dict[str, Any] = _numbers(msgspec.json.schema(contract))
    return schema


def schema_components(
    contracts: Iterable[Any], ref_template: str = REF_TEMPLATE
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the schema of each contract, the shared components they refer to)."""
    schemas, components = msgspec.json.schema_components(
        tuple(contracts), ref_template=ref_template
    )
    return [_numbers(s) for s in schemas], _numbers(components)


def _numbers(schema: Any) -> Any:
    """``{"type": "string", "format": "decimal"}`` -> ``{"type": "number"}`` throughout."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and schema.get("format") == "decimal":
            rest = {k: v for k, v in schema.items() if k not in ("type", "format")}
            return {"type": "number", **rest}
        return {key: _numbers(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_numbers(item) for item in schema]
    return schema
