"""Every module type is importable, satisfies the adapter contract, and has an example config
that shows every key its Config accepts."""

from __future__ import annotations

import inspect
import re
import tomllib

import pytest

from gateway import registry
from gateway.config import ModuleConfig
from tests.support.processes import ROOT

EXAMPLES = sorted((ROOT / "conf" / "examples").glob("*.toml"))


def examples_using(kind: str) -> list[str]:
    texts = []
    for path in EXAMPLES:
        document = tomllib.loads(path.read_text())
        if any(module.get("type") == kind for module in document.get("modules", [])):
            texts.append(path.read_text())
    return texts


@pytest.mark.parametrize("kind", sorted(registry.ADAPTERS))
def test_adapter_contract(kind: str) -> None:
    adapter = registry.adapter_class(kind)
    assert issubclass(adapter.Config, ModuleConfig)
    assert inspect.iscoroutinefunction(adapter.run)
    assert list(inspect.signature(adapter.run).parameters) == ["self", "ctx"]


@pytest.mark.parametrize("kind", sorted(set(registry.ADAPTERS) - {"sim"}))
def test_every_config_key_is_shown_in_an_example(kind: str) -> None:
    texts = examples_using(kind)
    assert texts, f"no file in conf/examples/ has a [[modules]] of type {kind!r}"
    config_type = registry.adapter_class(kind).Config
    missing = [
        field
        for field in config_type.__struct_fields__
        if not any(re.search(rf"(^|\s|#\s*){field}\s*=|\.{field}\]", text, re.M) for text in texts)
    ]
    assert not missing, f"conf/examples never shows {kind} keys: {', '.join(missing)}"


@pytest.mark.parametrize("tool", sorted(registry.TOOLS))
def test_tools_and_emulators_exist(tool: str) -> None:
    assert callable(registry.load(registry.TOOLS[tool][0]))


@pytest.mark.parametrize("kind", sorted(registry.EMULATORS))
def test_emulators_exist(kind: str) -> None:
    assert callable(registry.load(registry.EMULATORS[kind]))
