"""Snapshots of every public contract's JSON schema (``tests/contracts/``).

A change to an HTTP response, a live-stream message or a command's arguments changes a file
there, so it shows in review as a diff of the contract, not only of the code. When the change is
meant, refresh them with ``make contracts`` (``python -m tests.test_contracts --write``) and
commit the files with the change.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from gateway.contracts import http, schema_of
from gateway.engine.commands import COMMANDS

SNAPSHOTS = Path(__file__).parent / "contracts"
CONTRACT_MODULES: tuple[ModuleType, ...] = (http,)


def contracts() -> Iterator[tuple[str, Any]]:
    """(snapshot file under tests/contracts/, contract) for every public contract."""
    for module in CONTRACT_MODULES:
        folder = module.__name__.rsplit(".", 1)[1]
        for name in module.__all__:
            contract = getattr(module, name)
            if isinstance(contract, type) and issubclass(contract, msgspec.Struct):
                yield f"{folder}/{name}.json", contract
    for name, spec in sorted(COMMANDS.items()):
        yield f"commands/{name}.json", spec.args


def render(contract: Any) -> str:
    """The schema as stored: sorted keys, two-space indent, one trailing newline."""
    text = msgspec.json.format(msgspec.json.encode(schema_of(contract), order="sorted"), indent=2)
    return text.decode() + "\n"


def write() -> list[Path]:
    """Rewrite every snapshot and remove those of contracts that are gone."""
    written = []
    for relative, contract in contracts():
        path = SNAPSHOTS / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(contract))
        written.append(path)
    for stale in set(SNAPSHOTS.rglob("*.json")) - set(written):
        stale.unlink()
    return written


@pytest.mark.parametrize(("relative", "contract"), list(contracts()), ids=str)
def test_the_contract_matches_its_snapshot(relative: str, contract: Any) -> None:
    path = SNAPSHOTS / relative
    assert path.exists(), f"{relative} has no snapshot: run `make contracts` and commit it"
    assert render(contract) == path.read_text(), (
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

    assert render(Register) != (SNAPSHOTS / "http/Register.json").read_text()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_contracts --write")
    for path in write():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
