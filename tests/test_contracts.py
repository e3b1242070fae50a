"""Snapshots of every public contract's JSON schema (``tests/contracts/``), and the README's
command list checked against the command table.

A change to an HTTP response, a live-stream message, an MQTT payload or a command's arguments or
result changes a file there, so it shows in review as a diff of the contract, not only of the
code. When the change is meant, refresh them with ``make contracts`` (which runs
``python -m tests.test_contracts --write`` and ``python -m gateway.commands --write README.md``)
and commit the files with the change.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from gateway.commands import readme_section
from gateway.commands import table as command_table
from gateway.contracts import http, mqtt, schema_of

SNAPSHOTS = Path(__file__).parent / "contracts"
README = Path(__file__).parent.parent / "README.md"
CONTRACT_MODULES: tuple[ModuleType, ...] = (http, mqtt)


def contracts() -> Iterator[tuple[str, dict[str, Any]]]:
    """(snapshot file under tests/contracts/, its JSON schema) for every public contract."""
    for module in CONTRACT_MODULES:
        folder = module.__name__.rsplit(".", 1)[1]
        for name in module.__all__:
            contract = getattr(module, name)
            if isinstance(contract, type) and issubclass(contract, msgspec.Struct):
                yield f"{folder}/{name}.json", schema_of(contract)
    for name, spec in command_table().items():
        yield (
            f"commands/{name}.json",
            {
                "senders": sorted(spec.senders),
                "changes_state": spec.changes_state,
                "args": schema_of(spec.args),
                "result": schema_of(spec.result),
            },
        )


def render(schema: dict[str, Any]) -> str:
    """A schema as stored: sorted keys, two-space indent, one trailing newline."""
    text = msgspec.json.format(msgspec.json.encode(schema, order="sorted"), indent=2)
    return text.decode() + "\n"


def write() -> list[Path]:
    """Rewrite every snapshot and remove those of contracts that are gone."""
    written = []
    for relative, schema in contracts():
        path = SNAPSHOTS / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))
        written.append(path)
    for stale in set(SNAPSHOTS.rglob("*.json")) - set(written):
        stale.unlink()
    return written


@pytest.mark.parametrize(("relative", "schema"), list(contracts()), ids=str)
def test_the_contract_matches_its_snapshot(relative: str, schema: dict[str, Any]) -> None:
    path = SNAPSHOTS / relative
    assert path.exists(), f"{relative} has no snapshot: run `make contracts` and commit it"
    assert render(schema) == path.read_text(), (
        f"the public contract {relative} changed: if that is meant, run `make contracts` and"
        " commit the new snapshot with the change (users and Home Assistant read these names)"
    )


def test_every_snapshot_belongs_to_a_contract() -> None:
    known = {relative for relative, _ in contracts()}
    stored = {str(path.relative_to(SNAPSHOTS)) for path in SNAPSHOTS.rglob("*.json")}
    assert stored - known == set(), "snapshots of contracts that are gone: run `make contracts`"


def test_a_renamed_field_changes_the_snapshot() -> None:
    """The comparison sees a one-field change (the snapshot is not a formality)."""

    class Register(msgspec.Struct, frozen=True, kw_only=True):
        value: float
        unit: str | None
        at: str
        changed: str  # was changed_at

    stored = (SNAPSHOTS / "http/Register.json").read_text()
    assert render(schema_of(http.Register)) == stored
    assert render(schema_of(Register)) != stored


def test_the_readme_command_list_is_generated_from_the_command_table() -> None:
    section = readme_section()
    assert section in README.read_text(), (
        "the README's command list differs from the command table: run `make contracts`"
    )
    for name in command_table():
        assert f"| `{name}` |" in section


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_contracts --write")
    for path in write():
        sys.stdout.write(f"{path}\n")
