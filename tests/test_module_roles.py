"""Module roles: what every adapter declares, the sink's subscription, the actuator's requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import registry
from gateway.adapter import StateChanges
from gateway.config import ModuleConfig
from gateway.engine.commands import CommandSpec
from gateway.model import Reading, Sample, utc_now
from tests.support.adapters import ChangeCounter
from tests.support.gateway import offline_text, running, until


def test_every_adapter_declares_its_config_and_commands() -> None:
    for kind in registry.ADAPTERS:
        adapter = registry.adapter_class(kind)
        assert issubclass(adapter.Config, ModuleConfig), kind
        assert isinstance(adapter.COMMANDS, tuple), kind
        assert all(isinstance(spec, CommandSpec) for spec in adapter.COMMANDS), kind
    # Actuators are switched by the engine's breaker only: no client command reaches them.
    for kind in ("relay", "mqtt_switch"):
        assert registry.adapter_class(kind).COMMANDS == ()
    assert [spec.name for spec in registry.adapter_class("s0").COMMANDS] == ["set_total"]


async def test_a_subscription_sees_changes_of_its_meter_once_each() -> None:
    changes = StateChanges("a")
    assert await changes.wait(0.0), "a new subscription counts as a change"
    assert not await changes.wait(0.01)
    changes.notify("b")
    assert not await changes.wait(0.01), "another meter's change is not this one's"
    changes.notify("a")
    changes.notify("a")
    assert await changes.wait(0.0)
    assert not await changes.wait(0.01), "changes faster than the sink looks are one"
    waiter = asyncio.ensure_future(changes.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    changes.notify("a")
    assert await asyncio.wait_for(waiter, 5)
    every = StateChanges(None)
    await every.wait(0.0)
    every.notify("b")
    assert await every.wait(0.0)


def looked_at_least(times: int) -> Callable[[], bool]:
    return lambda: ChangeCounter.seen["sink"] >= times


@pytest.fixture
def change_counter() -> Iterator[None]:
    registry.ADAPTERS["change_counter"] = "tests.support.adapters:ChangeCounter"
    yield
    del registry.ADAPTERS["change_counter"]


@pytest.mark.usefixtures("change_counter")
async def test_a_sink_is_told_of_each_change_of_its_meter(tmp_path: Path) -> None:
    text = offline_text(
        tmp_path,
        '[[meters]]\nid = "a"\n[[meters]]\nid = "b"\n'
        '[[modules]]\ntype = "change_counter"\nname = "sink"\nmeter = "a"\n',
    )
    async with running(text) as gateway:
        await until(lambda: ChangeCounter.seen.get("sink", 0) >= 1, what="the first look")
        start = utc_now()
        for n in range(1, 4):
            gateway.submit(
                "test",
                Sample("b", "test", start + timedelta(seconds=n), (Reading("x", n, None),)),
            )
            await asyncio.sleep(0)
        looks = ChangeCounter.seen["sink"]
        for n in range(1, 4):
            gateway.submit(
                "test",
                Sample(
                    "a",
                    "test",
                    start + timedelta(seconds=n),
                    (Reading("1-0:1.8.0", Decimal(n) / 1000, "kWh"),),
                ),
            )
            # One change at a time: the sink looks at each before the next comes.
            await until(looked_at_least(looks + n), what=f"change {n}")
        assert ChangeCounter.values["sink"][-1] == Decimal("0.003")
