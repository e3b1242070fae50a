"""Moving a meter between gateways: export-meter from one store, import-meter into another."""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import cli
from gateway.app import STORE_FILE
from gateway.store import Store
from tests.support.processes import gateway

WAIT_S = 60.0


def config(tmp: Path, name: str, meters: tuple[str, ...], *, sim: bool = False) -> Path:
    path = tmp / f"{name}.toml"
    text = f"""
[gateway]
name = "{name}"
data_dir = "{tmp / name}"

[mqtt]
enabled = false

[http]
enabled = false

[zeroconf]
enabled = false
"""
    text += "".join(f'\n[[meters]]\nid = "{meter}"\n' for meter in meters)
    if sim:
        text += '\n[[modules]]\ntype = "sim"\nname = "sim1"\nmeter = "main"\n'
        text += "interval_s = 0.2\nspeed = 600.0\n"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_a_meter_moves_with_its_registers_and_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = config(tmp_path, "old", ("main",), sim=True)
    log = tmp_path / "old.log"
    with gateway(old, log=log) as process:
        deadline = time.monotonic() + WAIT_S
        while log.read_text().count("meter main: 1-0:1.8.0") < 3:
            assert time.monotonic() < deadline, "the sim gateway did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)  # stopping writes the checkpoint
        process.wait(WAIT_S)
    export = tmp_path / "main.json"
    assert cli.main(["export-meter", "main", "--config", str(old), "-o", str(export)]) == 0

    new = config(tmp_path, "new", ("main",))
    (tmp_path / "new").mkdir()
    Store(tmp_path / "new" / STORE_FILE).close()  # a gateway that has run once, without it
    assert cli.main(["import-meter", str(export), "--config", str(new)]) == 0
    assert "meter main from gateway old" in capsys.readouterr().out

    stores = [Store(tmp_path / name / STORE_FILE) for name in ("old", "new")]
    try:
        before, after = (store.load_meter("main") for store in stores)
        assert before is not None
        energy = {r.obis: r.value for r in before.registers}["1-0:1.8.0"]
        assert isinstance(energy, Decimal) and energy > 0
        assert after == before
        assert [e for _, e in stores[1].events("main")] == [e for _, e in stores[0].events("main")]
    finally:
        for store in stores:
            store.close()

    # Twice is refused (it would undo what the new gateway counted since), unless asked.
    assert cli.main(["import-meter", str(export), "--config", str(new)]) == 1
    assert "already has state for 'main'" in capsys.readouterr().err
    assert cli.main(["import-meter", str(export), "--config", str(new), "--replace"]) == 0
    # A gateway whose config lacks the meter says so.
    other = config(tmp_path, "other", ("flat1",))
    (tmp_path / "other").mkdir()
    Store(tmp_path / "other" / STORE_FILE).close()
    assert cli.main(["import-meter", str(export), "--config", str(other)]) == 1
    assert "meter 'main' is not in [[meters]]" in capsys.readouterr().err
