"""The command line: decode's contract, argument order, tools that parse their own options."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from gateway import cli
from tests.support.processes import GATEWAY

SERIAL_RESPONSE = "403f0201234567e9560d"  # KMP GetSerialNo answer, Kamstrup doc 6.2.2


def decode(*args: str, stdin: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    result = subprocess.run(
        [str(GATEWAY), "decode", *args], input=stdin, capture_output=True, text=True, check=False
    )
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def test_decode_prints_one_object_and_exit_status_follows_ok() -> None:
    status, (result,) = decode("kmp", SERIAL_RESPONSE)
    assert status == 0 and result["ok"] is True and result["error"] is None
    status, (result,) = decode("kmp", "403f0201234567e9570d")
    assert status == 1 and result["ok"] is False
    assert result["error"]["code"] == "bad_crc"


def test_bad_hex_names_the_character() -> None:
    status, (result,) = decode("mbus", "68 0g")
    assert status == 1
    assert result["error"]["code"] == "bad_hex"
    assert "'g'" in result["error"]["message"]


def test_options_may_come_before_the_input_and_stdin_works() -> None:
    status, (result,) = decode("kmp", "--key", "00112233", SERIAL_RESPONSE)
    assert status == 0 and result["ok"]
    status, (result,) = decode("kmp", "-", stdin=SERIAL_RESPONSE + "\n")
    assert status == 0 and result["ok"]


def test_batch_keeps_order_reports_bad_lines_and_exits_zero(tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        json.dumps({"input": SERIAL_RESPONSE, "key": None})
        + "\nnot json\n"
        + json.dumps({"input": "ff"})
        + "\n"
    )
    status, results = decode("kmp", "--batch", str(batch))
    assert status == 0
    assert [r["ok"] for r in results] == [True, False, False]
    assert results[1]["error"]["code"] == "bad_input"


def test_one_bad_batch_line_is_one_error_line_whatever_it_holds(tmp_path: Path) -> None:
    good = json.dumps({"input": SERIAL_RESPONSE}).encode()
    bad_lines = [
        json.dumps({"input": SERIAL_RESPONSE, "key": 1234}).encode(),
        json.dumps({"input": SERIAL_RESPONSE, "auth_key": ["00"]}).encode(),
        json.dumps(["input", SERIAL_RESPONSE]).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"input": "40\xff3f"}',
    ]
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(b"\n".join([good, *bad_lines, good]) + b"\n")
    result = subprocess.run(
        [str(GATEWAY), "decode", "kmp", "--batch", str(batch)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    results = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["ok"] for r in results] == [True, *[False] * len(bad_lines), True]
    assert {r["error"]["code"] for r in results[1:-1]} <= {"bad_input", "bad_hex"}


def test_tools_get_their_arguments_unchanged() -> None:
    status = cli.main(["--log-level", "warning", "scan", "--url", "/nonexistent/tty", "--json"])
    assert status == 2, "scan must see --url (and fail to open the port), not an argparse error"
