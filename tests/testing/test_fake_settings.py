"""Nonsense settings for the fake fail where given: FakeCliniko(...) and its command line."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from cliniko_async.testing import FakeCliniko
from cliniko_async.testing.__main__ import main

BAD_SETTINGS: list[dict[str, Any]] = [
    {"rate_limit": (0, 0)},
    {"rate_limit": (1, -5)},
    {"rate_limit": (10, 0)},
    {"rate_limit": (-1, 1)},
    {"rate_limit": (1.5, 1)},
    {"rate_limit": (True, 1)},
    {"rate_limit": (10, float("nan"))},
    {"rate_limit": (10, float("inf"))},
    {"rate_limit": (10, "60")},
    {"rate_limit": (10,)},
    {"rate_limit": "200/60"},
    {"seed": "x"},
    {"seed": 1.0},
    {"window": "sideways"},
    {"patients": -5},
    {"patients": 1_000_001},
    {"appointments": 10**11},
    {"practitioners": -1},
    {"businesses": 2.0},
    {"appointment_types": None},
    {"records_per_resource": 0},
    {"records_per_resource": 1_000_001},
    {"api_keys": "MS0xLWZha2UtdGVzdC1rZXktMDAwMQ-au1"},  # a key, not a tuple of keys
    {"api_keys": ()},
    {"api_keys": ("",)},
]


@pytest.mark.parametrize("settings", BAD_SETTINGS, ids=repr)
def test_nonsense_settings_are_a_value_error_naming_the_setting(settings: dict[str, Any]) -> None:
    (name,) = settings
    with pytest.raises(ValueError, match=name):
        FakeCliniko(**settings)


@pytest.mark.parametrize(
    "settings",
    [
        {"rate_limit": (1, 0.5), "window": "fixed"},
        {"rate_limit": (200, 60), "seed": 7},
        {"rate_limit": None, "patients": 0, "appointments": 0},
        {"practitioners": 0, "businesses": 0, "appointment_types": 0, "records_per_resource": 1},
        {"api_keys": ["MS0xLWZha2UtdGVzdC1rZXktMDAwMQ-au1", "other-key-au2"]},
    ],
    ids=repr,
)
def test_sensible_edge_settings_are_accepted(settings: dict[str, Any]) -> None:
    fake = FakeCliniko(**settings)
    assert len(fake.data["patients"]) == settings.get("patients", 50)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--port", "99999"], "--port"),
        (["--port", "-1"], "--port"),
        (["--port", "x"], "--port"),
        (["--patients", "-5"], "--patients"),
        (["--patients", "99999999999"], "--patients"),
        (["--patients", "1000001"], "--patients"),
        (["--appointments", "1e3"], "--appointments"),
        (["--rate-limit", "0/0"], "--rate-limit"),
        (["--rate-limit", "1/-5"], "--rate-limit"),
        (["--rate-limit", "10/0"], "--rate-limit"),
        (["--rate-limit", "10/nan"], "--rate-limit"),
        (["--rate-limit", "1.5/1"], "--rate-limit"),
        (["--rate-limit", "200"], "--rate-limit"),
        (["--window", "sideways"], "--window"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"python -m cliniko_async.testing: error: argument {option}: ")


def test_a_bad_option_from_the_command_line_is_one_line_and_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cliniko_async.testing", "--patients", "99999999999"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "from 0 to 1,000,000" in done.stderr


def test_a_port_in_use_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--port", str(port), "--patients", "1", "--appointments", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
