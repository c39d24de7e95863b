"""The ``cliniko`` command, driven as a subprocess against the fake Cliniko served on loopback."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    FakeCliniko,
    FaultRule,
    Faults,
    serve,
)

PATIENTS = 1234


@pytest.fixture(scope="module")
def fake() -> FakeCliniko:
    return FakeCliniko(patients=PATIENTS, appointments=300, rate_limit=None)


@pytest.fixture(scope="module")
def base_url(fake: FakeCliniko) -> Iterator[str]:
    with serve(fake) as url:
        yield url


def env(base_url: str | None = None, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CLINIKO_")}
    out |= {"CLINIKO_API_KEY": DEFAULT_API_KEY, "CLINIKO_USER_AGENT": DEFAULT_USER_AGENT}
    if base_url is not None:
        out["CLINIKO_BASE_URL"] = base_url
    return out | extra


def cliniko(
    *args: str, environ: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cliniko_async", *args],
        capture_output=True, text=True, env=environ, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


def patient_ids(fake: FakeCliniko) -> list[int]:
    return sorted(pid for pid, p in fake.data["patients"].items() if not p.get("archived_at"))


def test_export_jsonl_every_record_once(fake: FakeCliniko, base_url: str, tmp_path: Path) -> None:
    out = tmp_path / "patients.jsonl"
    done = cliniko("export", "patients", "-o", str(out), environ=env(base_url))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [int(r["id"]) for r in rows] == patient_ids(fake)
    assert rows[0]["first_name"] == fake.data["patients"][1]["first_name"]
    assert f"exported {len(rows):,} patients" in done.stderr
    assert not list(tmp_path.glob("*.partial*"))
    assert DEFAULT_API_KEY not in done.stdout + done.stderr


def test_export_csv_with_filters(fake: FakeCliniko, base_url: str, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    done = cliniko(
        "export", "patients", "--format", "csv", "-o", str(out),
        "--filter", "id>=100", "--filter", "accepted_privacy_policy=true",
        "--since", "2000-01-01T00:00:00Z", environ=env(base_url),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    expected = [i for i in patient_ids(fake)
                if i >= 100 and fake.data["patients"][i]["accepted_privacy_policy"]]  # fmt: skip
    assert [int(r["id"]) for r in rows] == expected
    assert rows[0]["links"].endswith(f"/patients/{expected[0]}")  # references as URLs
    assert json.loads(rows[0]["patient_phone_numbers"])[0]["phone_type"] == "Mobile"


def test_resume_after_a_killed_export_yields_every_record_once(tmp_path: Path) -> None:
    slow = FakeCliniko(
        patients=3000, appointments=0, rate_limit=None,
        faults=Faults([FaultRule(path="/v1/patients", latency=(0.15, 0.15))]),
    )  # fmt: skip
    out = tmp_path / "all.jsonl"
    partial = tmp_path / "all.jsonl.partial"
    with serve(slow) as url:
        args = [sys.executable, "-m", "cliniko_async", "export", "patients", "-o", str(out),
                "--per-page", "50"]  # fmt: skip
        proc = subprocess.Popen(args, env=env(url), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while (not partial.exists() or partial.stat().st_size < 20_000) and proc.poll() is None:
            assert time.monotonic() < deadline, "the export never got going"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists()  # killed: no file that looks complete
        assert partial.exists()
        done = cliniko("export", "patients", "-o", str(out), "--per-page", "50", "--resume",
                       environ=env(url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    ids = [int(json.loads(line)["id"]) for line in out.read_text().splitlines()]
    assert ids == list(range(1, 3001))  # every record exactly once, in order
    assert not partial.exists()


def test_get_and_list_print_json(fake: FakeCliniko, base_url: str) -> None:
    done = cliniko("get", "patients", "7", environ=env(base_url))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["last_name"] == fake.data["patients"][7]["last_name"]
    done = cliniko("list", "patients", "--filter", "id<=30", "--limit", "25", environ=env(base_url))
    assert done.returncode == 0, done.stderr
    assert [int(p["id"]) for p in json.loads(done.stdout)] == list(range(1, 26))


def test_sandbox_needs_no_credentials(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLINIKO_")}
    done = cliniko("--sandbox", "list", "practitioners", "--limit", "3", environ=environ)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "widgets"], "'widgets' is not a resource that can be exported"),
        (["export", "patients", "--filter", "nope=1"], "'nope' is not filterable here"),
        (["export", "patients", "--filter", "id>=ten"], "must be an integer"),
        (["export", "patients", "--since", "2026-01-01"], "has no time zone"),
        (["export", "patients", "--per-page", "500"], "500 is not in the range"),
        (["list", "patients", "--filter", "last_name"], "is not FIELD OPERATOR VALUE"),
        (["get", "patients", "1/../2"], "positive integer id"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    base_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    done = cliniko(*args, environ=env(base_url), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_credentials_errors_never_print_the_key(base_url: str) -> None:
    bad_key = "MS0xLWJhZC1rZXktZm9yLXRlc3Rz-au1"
    done = cliniko("get", "patients", "1", environ=env(base_url, CLINIKO_API_KEY=bad_key))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "401" in done.stderr
    assert bad_key not in done.stderr + done.stdout
    missing = {k: v for k, v in env(base_url).items() if k != "CLINIKO_API_KEY"}
    done = cliniko("get", "patients", "1", environ=missing)
    assert done.returncode == 2 and "set CLINIKO_API_KEY" in done.stderr


def test_debug_shows_the_traceback(base_url: str) -> None:
    done = cliniko("--debug", "get", "patients", "99999", environ=env(base_url))
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "NotFoundError" in done.stderr


def test_the_readme_commands_run_in_the_sandbox(tmp_path: Path) -> None:
    """Every `cliniko ...` line of the README's command-line section, with --sandbox."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(c, comments=True) for c in section.replace("\\\n", " ").splitlines()]
    commands = [c for c in commands if c and c[0] == "cliniko"]
    assert len(commands) >= 6
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLINIKO_")}
    for command in commands:
        args = command[1:] if command[1] == "--sandbox" else ["--sandbox", *command[1:]]
        done = cliniko(*args, environ=environ, cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr)
    assert (tmp_path / "patients.jsonl").exists() and (tmp_path / "appts.csv").exists()
