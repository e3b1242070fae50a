"""Commands for modules (learn mode, set_total, ...) are queued to the module serving the meter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import config, registry
from gateway.app import Gateway
from gateway.commands import table as command_table
from gateway.engine.commands import CommandSpec, parse_args
from gateway.errors import CommandError
from gateway.model import Command


@pytest.fixture(autouse=True)
def test_adapters() -> Iterator[None]:
    registry.ADAPTERS["echo"] = "tests.support.adapters:CommandEchoAdapter"
    yield
    del registry.ADAPTERS["echo"]


async def test_module_command_reaches_the_module_of_that_meter(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path}"\n[mqtt]\nenabled = false\n[http]\nenabled = false\n'
        '[[meters]]\nid = "a"\n[[meters]]\nid = "b"\n'
        '[[modules]]\ntype = "echo"\nname = "e1"\nmeter = "a"\n'
        '[[modules]]\ntype = "echo"\nname = "e2"\nmeter = "b"\n'
    )
    gateway = Gateway(config.load(path), outputs=lambda _g: ())
    task = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 10)
        async with asyncio.timeout(5):
            while gateway.health["e2"].state != "running":
                await asyncio.sleep(0.01)
        assert "echo_back" in gateway.commands
        result = await gateway.execute(Command("b", "echo_back", "c1", {"text": "hi"}))
        assert result == {"queued": True, "module": "e2"}
        async with asyncio.timeout(5):
            while not gateway.engines["b"].registers.get("echo"):
                await asyncio.sleep(0.02)
        assert gateway.engines["b"].registers["echo"].value == "hi"
        assert "echo" not in gateway.engines["a"].registers
        with pytest.raises(CommandError, match="no command"):
            await gateway.execute(Command("a", "no_such", "c2"))
    finally:
        gateway.request_stop()
        await asyncio.wait_for(task, 10)


def test_every_module_type_declares_its_commands_as_rows_of_the_one_table() -> None:
    table = command_table()
    for kind in registry.ADAPTERS:
        declared = registry.adapter_class(kind).COMMANDS
        assert isinstance(declared, tuple), kind
        for spec in declared:
            assert isinstance(spec, CommandSpec), (kind, spec)
            assert table[spec.name] is spec, f"{kind}'s {spec.name} is not in the table"
    assert {"set_total", "learn_mode", "exclude", "top_up", "echo_back"} <= set(table)


def test_module_command_arguments_are_checked_by_the_table_naming_the_field() -> None:
    table = command_table()
    with pytest.raises(CommandError, match=r"set_total: .*`args\.kwh`"):
        parse_args(table["set_total"], {"kwh": "lots"})
    with pytest.raises(CommandError, match=r"unknown field `colour`"):
        parse_args(table["learn_mode"], {"colour": "blue"})
    assert parse_args(table["set_total"], {"kwh": "12.5", "module": "s0a"}).module == "s0a"
