"""Bad input, bounded: every codec and the config loader answer junk with their own error only.

`make fuzz` runs the same codecs for minutes under a coverage-guided fuzzer; these are the
quick, deterministic versions that run with every `make test`.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import config, registry
from gateway.errors import ConfigError
from modules.codecs.errors import FrameError
from modules.codecs.records import Decoded
from tests.faults import fuzzing
from tests.support.fuzz import mutated
from tests.support.processes import ROOT

CONFIGS = sorted([ROOT / "conf" / "gateway.toml", *(ROOT / "conf" / "examples").glob("*.toml")])
CONFIG_TEXTS = [path.read_bytes() for path in CONFIGS]


@pytest.mark.parametrize("protocol", sorted(fuzzing.SEED_FILES))
def test_every_codec_refuses_mutated_frames_with_its_own_error(protocol: str) -> None:
    seeds = fuzzing.seeds(protocol)
    assert len(seeds) > 1, "the vectors seed this codec"

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=mutated(seeds, st.binary(min_size=1, max_size=12)))
    def check(data: bytes) -> None:
        decoder = registry.decoder(protocol)
        with contextlib.suppress(FrameError):
            decoder.decode(data, key=fuzzing.wmbus_key(), auth_key=None)

    check()


@pytest.mark.parametrize(
    ("protocol", "data"),
    [
        # Found by `make fuzz` (atheris): encrypted-P1 hex text with an odd digit count.
        ("dsmr", bytes.fromhex("646230383520")),
    ],
)
def test_inputs_the_fuzzer_found_are_refused_with_the_codecs_own_error(
    protocol: str, data: bytes
) -> None:
    with pytest.raises(FrameError):
        registry.decoder(protocol).decode(data, key=None, auth_key=None)


def test_the_fuzz_runner_counts_inputs_and_finds_nothing_foreign_in_a_short_run() -> None:
    report = fuzzing.run_mutation("kmp", seconds=1.0)
    assert report.inputs > 1000
    assert report.foreign == 0, report.foreign_examples
    assert report.slowest_s > 0  # the slowest input may be the empty one


def test_the_fuzz_runner_reports_a_foreign_exception_with_its_input() -> None:
    target = fuzzing.Target("kmp", "mutation")
    target.decoder = _ExplodingDecoder()
    target(b"\x01\x02")
    assert target.report.foreign == 1
    assert target.report.foreign_examples[0]["input_hex"] == "0102"
    assert "KeyError" in target.report.foreign_examples[0]["error"]


class _ExplodingDecoder:
    """A decoder with a bug: it raises an exception that is not the codecs' own."""

    input_kind: ClassVar[Literal["hex", "text"]] = "hex"

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        raise KeyError(data.hex())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(CONFIG_TEXTS, st.sampled_from([b"=", b"[", b"]]", b'"', b"\xff", b"\n[["])))
def test_the_config_loader_refuses_mutated_files_with_a_config_error(data: bytes) -> None:
    try:
        config.loads(data, source="fuzzed.toml")
    except ConfigError as err:
        assert "fuzzed.toml" in str(err)


@settings(max_examples=300, deadline=None)
@given(
    section=st.sampled_from(["gateway", "mqtt", "http", "zeroconf", "meters", "modules"]),
    key=st.text(min_size=1, max_size=20),
    value=st.one_of(
        st.integers(), st.floats(), st.text(max_size=30), st.booleans(), st.lists(st.integers())
    ),
)
def test_the_config_loader_refuses_wrong_keys_and_types_by_name(
    section: str, key: str, value: object
) -> None:
    base = (ROOT / "conf" / "examples" / "sim.toml").read_text()
    quoted = key.replace("\\", "\\\\").replace('"', '\\"')
    literal = repr(value).lower() if isinstance(value, bool) else _toml(value)
    if section in ("meters", "modules"):
        text = base + f'\n[[{section}]]\n"{quoted}" = {literal}\n'
    else:
        text = base + f'\n[{section}x]\n"{quoted}" = {literal}\n'
    with pytest.raises(ConfigError):
        config.loads(text, source="fuzzed.toml")


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, float) and value != value:  # NaN
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def test_non_utf8_config_bytes_are_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[gateway]\nname = "m\xf8ller"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml"):
        config.load(path)


def test_mutations_are_reproducible() -> None:
    rng_a, rng_b = random.Random(3), random.Random(3)
    pool = [b"\x10\x20\x30\x40"]
    assert [fuzzing.mutate(rng_a, pool[0], pool) for _ in range(50)] == [
        fuzzing.mutate(rng_b, pool[0], pool) for _ in range(50)
    ]
