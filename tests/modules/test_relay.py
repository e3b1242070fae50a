"""The GPIO relay actuator through the software GPIO chip: the real code path, simulated lines."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.app import Gateway
from gateway.errors import ConfigError
from gateway.model import Command
from modules.relay.adapter import RelayConfig
from modules.s0.software import SoftwareChip
from tests.support import gateway as support
from tests.support.gateway import until

LINES = ("relay", "aux", "button", "spare")
_CHIPS = itertools.count()


@pytest.fixture
def chip() -> Iterator[SoftwareChip]:
    instance = SoftwareChip(f"relay-test-{next(_CHIPS)}", LINES)
    try:
        yield instance
    finally:
        instance.close()


def gateway_config(
    tmp_path: Path, chip: SoftwareChip, *, module: str = "", breaker: str = ""
) -> str:
    return f"""
[gateway]
data_dir = "{tmp_path / "data"}"
persist_interval_s = 0.2
[mqtt]
enabled = false
[http]
enabled = false
[zeroconf]
enabled = false

[[meters]]
id = "main"
[meters.breaker]
enabled = true
actuator = "relay1"
confirm_timeout_s = 1.5
{breaker}

[[modules]]
type = "relay"
name = "relay1"
meter = "main"
chip = "{chip.path}"
line = "relay"
{module}
"""


WIRED = 'feedback_line = "aux"\nbutton_line = "button"\n'


@asynccontextmanager
async def running(text: str, *, wait: bool = True) -> AsyncIterator[Gateway]:
    async with support.running(text) as gateway:
        if wait:
            await until(lambda: gateway.health["relay1"].frames_ok > 0)
        yield gateway


def breaker(gateway: Gateway) -> tuple[str, str]:
    state = gateway.engines["main"].state.breaker
    return state.state, state.actuator


def events(gateway: Gateway, kind: str) -> list[dict[str, Any]]:
    return [
        {"detail": event.detail, **event.data}
        for _, event in gateway.store.events("main", kind=kind, limit=1000)
    ]


async def command(gateway: Gateway, name: str) -> dict[str, Any]:
    return dict(await gateway.execute(Command("main", name, f"test-{name}")))


class Button:
    """A push button to ground on a pulled-up line, pressed at explicit kernel times."""

    def __init__(self, chip: SoftwareChip, line: str = "button") -> None:
        self.chip = chip
        self.line = line
        self.at_ns = 10**12
        chip.set_level(line, True)

    def press(self, *, gap_s: float = 1.0) -> None:
        self.at_ns += int(gap_s * 1e9)
        self.chip.set_level(self.line, False, at_ns=self.at_ns)
        self.chip.set_level(self.line, True, at_ns=self.at_ns + 80_000_000)


# config ----------------------------------------------------------------------------------------


def test_one_line_cannot_serve_two_roles(tmp_path: Path) -> None:
    text = (
        f'[gateway]\ndata_dir = "{tmp_path}"\n[[meters]]\nid = "main"\n'
        '[[modules]]\ntype = "relay"\nname = "r"\nmeter = "main"\nline = 17\nbutton_line = 17\n'
    )
    with pytest.raises(ConfigError, match="different lines"):
        config.loads(text)


def test_the_example_config_shows_every_key() -> None:
    text = (Path(__file__).parents[2] / "conf" / "examples" / "relay.toml").read_text()
    for key in RelayConfig.__struct_fields__:
        assert f"\n{key} = " in text or f"\n# {key} = " in text, key


# switching, read-back, button ---------------------------------------------------------------------


async def test_switches_reads_back_and_the_button_reconnects(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    chip.wire("relay", "aux")  # the contactor's auxiliary contact follows its coil
    button = Button(chip)
    async with running(gateway_config(tmp_path, chip, module=WIRED)) as gateway:
        # A new breaker is connected: the relay rests (active = "open": energized opens).
        assert chip.level("relay") is False
        assert gateway.engines["main"].registers["breaker_feedback"].value == "closed"
        result = await command(gateway, "disconnect")
        assert (result["state"], result["actuator"]) == ("disconnected", "pending")
        await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
        assert chip.level("relay") is True
        assert gateway.engines["main"].registers["breaker_feedback"].value == "open"
        # remote_reconnect = "arm": ready for reconnection; the local button closes it.
        await command(gateway, "reconnect")
        assert breaker(gateway) == ("ready_for_reconnection", "confirmed")
        assert chip.level("relay") is True, "arming does not switch"
        button.press()
        await until(lambda: breaker(gateway) == ("connected", "confirmed"))
        assert chip.level("relay") is False
        # The button may also open it (button_disconnect), ready for reconnection at once.
        button.press()
        await until(lambda: breaker(gateway) == ("ready_for_reconnection", "confirmed"))
        assert chip.level("relay") is True
        # Bounce or a double tap inside the guard time is one press.
        button.press()
        button.press(gap_s=0.1)
        await until(lambda: breaker(gateway) == ("connected", "confirmed"))
        await asyncio.sleep(0.2)
        assert breaker(gateway) == ("connected", "confirmed")
        kinds = [event.kind for _, event in gateway.store.events("main", limit=1000)]
        assert kinds.count("breaker_confirmed") >= 3
        assert not events(gateway, "breaker_actuator_failed")
        levels = [high for _, high in chip.history("relay")]
        assert levels[-5:] == [False, True, False, True, False], "each switch, once"


async def test_a_refused_press_is_an_event_that_says_why(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    chip.wire("relay", "aux")
    button = Button(chip)
    text = gateway_config(tmp_path, chip, module=WIRED)
    async with running(text) as gateway:
        await command(gateway, "disconnect")  # remote: only a remote reconnect may undo it
        await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
        button.press()
        await until(lambda: events(gateway, "button_refused"))
        refusal = events(gateway, "button_refused")[0]
        assert refusal["code"] == "blocked" and "remote reconnect" in refusal["detail"]
        assert refusal["module"] == "relay1"
        assert breaker(gateway) == ("disconnected", "confirmed")


async def test_a_stuck_contactor_and_a_hand_on_it_are_not_silent(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    # Not wired: the test plays the auxiliary contact, low = closed (as_is: the software chip
    # would let a pull-up win over the level the test holds).
    chip.set_level("aux", False)
    module = 'feedback_line = "aux"\nfeedback_bias = "as_is"\n'
    async with running(gateway_config(tmp_path, chip, module=module)) as gw:
        await until(lambda: breaker(gw) == ("connected", "confirmed"))
        await command(gw, "disconnect")
        await until(lambda: chip.level("relay") is True)
        await until(lambda: events(gw, "breaker_actuator_failed"), 3)
        failure = events(gw, "breaker_actuator_failed")[0]
        assert (failure["target"], failure["reported"]) == ("open", "closed")
        assert failure["module"] == "relay1"
        # The engine's confirmation timeout (1.5 s) then says the state may be wrong.
        await until(lambda: breaker(gw) == ("disconnected", "failed"), 4)
        assert gw.engines["main"].registers["breaker_actuator"].value == "failed"
        # The contactor finally drops out: the late read-back confirms.
        chip.set_level("aux", True)
        await until(lambda: breaker(gw) == ("disconnected", "confirmed"))
        # Someone closes it by hand while it should be open.
        chip.set_level("aux", False)
        await until(lambda: breaker(gw) == ("disconnected", "failed"))
        assert events(gw, "breaker_actuator_mismatch")


async def test_without_read_back_a_written_level_confirms(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    module = 'active_low = true\nactive = "closed"\n'  # energize to close, board switches on low
    async with running(gateway_config(tmp_path, chip, module=module)) as gateway:
        # Connected = energized = active = a low level on an active-low board.
        assert chip.level("relay") is False
        await command(gateway, "disconnect")
        await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
        assert chip.level("relay") is True


@pytest.mark.parametrize(
    ("setup", "expected_state", "relay_high"),
    [
        ([], "connected", False),
        (["disconnect"], "disconnected", True),
        (["disconnect", "reconnect"], "ready_for_reconnection", True),
    ],
)
async def test_a_restart_holds_the_same_position(
    tmp_path: Path,
    chip: SoftwareChip,
    setup: list[str],
    expected_state: str,
    relay_high: bool,
) -> None:
    chip.wire("relay", "aux")
    text = gateway_config(tmp_path, chip, module=WIRED)
    async with running(text) as gateway:
        for name in setup:
            await command(gateway, name)
        await until(lambda: breaker(gateway) == (expected_state, "confirmed"))
    # Stopped: the line is released and rests inactive.
    assert chip.level("relay") is False
    async with running(text) as gateway:
        await until(lambda: chip.level("relay") is relay_high)
        await until(lambda: breaker(gateway) == (expected_state, "confirmed"))
        assert not events(gateway, "breaker_actuator_mismatch")


async def test_a_line_held_by_another_process_recovers_when_released(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    chip.hold("relay", "someone-else")
    async with running(gateway_config(tmp_path, chip), wait=False) as gateway:
        await until(lambda: gateway.health["relay1"].restarts >= 1)
        assert "held by 'someone-else'" in (gateway.health["relay1"].last_error or "")
        chip.release("relay")
        await until(lambda: gateway.health["relay1"].frames_ok > 0, 10)
        await command(gateway, "disconnect")
        await until(lambda: breaker(gateway) == ("disconnected", "confirmed"))
        assert chip.level("relay") is True
