"""The import graph keeps the codecs a library of their own: they sit at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODECS = ROOT / "modules" / "codecs"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against its package."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> set[str]:
    """Every module ``source`` imports when it lives in ``package``."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def test_codecs_import_neither_the_gateway_nor_asyncio_nor_the_adapters() -> None:
    files = sorted(CODECS.rglob("*.py"))
    assert len(files) > 40, "the walk must see the codec tree"
    seen: set[str] = set()
    offenders: list[str] = []
    for path in files:
        for name in imports_of(path):
            seen.add(name)
            top = name.split(".")[0]
            outside_codecs = top == "modules" and not name.startswith("modules.codecs")
            if top in ("gateway", "asyncio") or outside_codecs:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    # The walk reads real imports: these are known to be there.
    assert {"cryptography.hazmat.primitives.ciphers", "modules.codecs.errors"} & seen
    assert offenders == []


def test_the_walk_resolves_relative_imports() -> None:
    # A walk that missed relative or nested imports would pass on a tree that breaks the rule.
    source = "from ...gateway import errors\nfrom .. import crc\ndef f():\n    import asyncio\n"
    found = imports_in(source, "modules.codecs.mbus")
    assert {"modules.gateway", "modules.codecs.crc", "asyncio"} <= found
    assert "modules.codecs.errors" in imports_of(CODECS / "mbus" / "frames.py")
