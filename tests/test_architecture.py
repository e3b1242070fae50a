"""The import graph keeps the codecs a library of their own at the bottom, the outputs on the
typed view instead of the supervisor, and no circle among gateway/ files."""

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
            target = from_target(node, package)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def from_target(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` reads from, a relative one resolved against ``package``."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


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


GATEWAY = ROOT / "gateway"
# The outputs: they read gateway/view.py and never the supervisor.
OUTPUT_PACKAGES = ("gateway.lan", "gateway.mqtt", "gateway.compat")


def gateway_graph() -> dict[str, set[str]]:
    """gateway/ file -> the gateway/ files it imports (a package's __init__ counts as the
    package). Every import is counted: at the top, inside functions, and under TYPE_CHECKING,
    because a circle a type checker walks is still a circle a reader has to untangle."""
    files = {module_name(path): path for path in sorted(GATEWAY.rglob("*.py"))}

    def ours(imported: str) -> str | None:
        # ``from gateway.app import X`` names an attribute of a file: its longest prefix that
        # is a file of ours is what is imported.
        parts = imported.split(".")
        while parts and ".".join(parts) not in files:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(t for alias in node.names if (t := ours(alias.name)))
            elif isinstance(node, ast.ImportFrom):
                base = from_target(node, package)
                for alias in node.names:
                    # ``from gateway.lan import openapi`` imports the file openapi.py, not
                    # (beyond what Python does for every submodule) the package's __init__.
                    module = f"{base}.{alias.name}"
                    targets.update(t for t in (module if module in files else ours(base),) if t)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one file (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_output_imports_the_supervisor() -> None:
    graph = gateway_graph()
    outputs = [n for n in graph if n.startswith(OUTPUT_PACKAGES)]
    assert {"gateway.lan.api", "gateway.mqtt.bridge", "gateway.compat.shelly"} <= set(outputs)
    offenders = sorted(f"{n} imports gateway.app" for n in outputs if "gateway.app" in graph[n])
    assert offenders == []
    # The supervisor is handed its outputs; it does not import them either.
    assert not {t for t in graph["gateway.app"] if t.startswith(OUTPUT_PACKAGES)}


def test_no_import_circle_among_gateway_files() -> None:
    graph = gateway_graph()
    assert "gateway.view" in graph["gateway.lan.api"], "the walk must see the outputs' imports"
    assert cycles(graph) == []


def test_the_circle_finder_finds_circles() -> None:
    # A finder that never reports would pass on any tree.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def probes_in(source: str) -> list[int]:
    """Lines of ``source`` that call getattr or hasattr."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr")
    ]


def test_outputs_do_not_probe_objects_for_what_they_have() -> None:
    # What an output may read is typed in gateway/view.py; a getattr or hasattr on our own
    # objects would hide a missing capability until run time.
    files = [
        path
        for package in OUTPUT_PACKAGES
        for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    ]
    assert len(files) > 15, "the walk must see the outputs"
    found = [f"{p.relative_to(ROOT)}:{n}" for p in files for n in probes_in(p.read_text())]
    assert found == []
    assert probes_in("x = 1\nif hasattr(a, 'b'):\n    getattr(e, 'display', None)\n") == [2, 3]
