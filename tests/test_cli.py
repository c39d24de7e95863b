"""The ``cliniko`` command, driven as a subprocess against the fake Cliniko served on loopback."""

from __future__ import annotations

import base64
import csv
import errno
import fcntl
import io
import json
import os
import shlex
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko_async.cli import _app
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


def read_ids(path: Path, fmt: str) -> list[int]:
    if fmt == "jsonl":
        return [int(json.loads(line)["id"]) for line in path.read_text().splitlines()]
    with path.open(newline="") as f:
        return [int(row["id"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_every_record_once(
    fake: FakeCliniko, base_url: str, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"patients.{fmt}"
    done = cliniko("export", "patients", "--format", fmt, "-o", str(out), environ=env(base_url))
    assert done.returncode == 0, done.stderr
    ids = read_ids(out, fmt)
    assert ids == patient_ids(fake)  # every record exactly once, in id order
    assert len(ids) == PATIENTS
    assert f"exported {PATIENTS:,} patients" in done.stderr
    assert f"{PATIENTS}/{PATIENTS}" in done.stderr  # the bar, sized from total_entries
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no .partial left
    assert DEFAULT_API_KEY not in done.stdout + done.stderr


def test_export_jsonl_is_the_wire_format(fake: FakeCliniko, base_url: str, tmp_path: Path) -> None:
    out = tmp_path / "patients.jsonl"
    done = cliniko("export", "patients", "-o", str(out), "--filter", "id<=3",
                   environ=env(base_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"]  # ids as strings, like Cliniko's JSON
    assert rows[0]["first_name"] == fake.data["patients"][1]["first_name"]
    assert rows[0]["created_at"].endswith("Z")


def test_export_of_a_list_without_ids(fake: FakeCliniko, base_url: str, tmp_path: Path) -> None:
    """services has no id to page by: it is exported page by page, still every record once."""
    out = tmp_path / "services.jsonl"
    done = cliniko("export", "services", "-o", str(out), "--per-page", "1", environ=env(base_url))
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == len(fake.data["services"])


def test_csv_keeps_a_lone_carriage_return_inside_its_record(
    fake: FakeCliniko, base_url: str, tmp_path: Path
) -> None:
    # Outside finding G26: a value with a bare "\r" was written unquoted, so a CSV reader (or
    # a spreadsheet) split that record into two rows.
    fake.data["patients"][2]["address_1"] = "12 Main St\rFlat 3"
    fake.data["patients"][3]["notes"] = "line one\r\nline two"
    out = tmp_path / "p.csv"
    done = cliniko("export", "patients", "--format", "csv", "-o", str(out),
                   "--filter", "id<=4", environ=env(base_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[1]["address_1"] == "12 Main St\rFlat 3"
    assert rows[2]["notes"] == "line one\r\nline two"


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
    assert {r["accepted_privacy_policy"] for r in rows} == {"true"}  # not Python's True
    everyone = tmp_path / "all.csv"
    done = cliniko("export", "patients", "--format", "csv", "-o", str(everyone),
                   environ=env(base_url))  # fmt: skip
    with everyone.open(newline="") as f:
        assert {r["accepted_privacy_policy"] for r in csv.DictReader(f)} == {"true", "false"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_resume_after_an_interrupted_export_yields_every_record_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    slow = FakeCliniko(
        patients=2000, appointments=0, rate_limit=None,
        faults=Faults([FaultRule(path="/v1/patients", latency=(0.1, 0.1))]),
    )  # fmt: skip
    out = tmp_path / "all.jsonl"
    partial = tmp_path / "all.jsonl.partial"
    with serve(slow) as url:
        args = [sys.executable, "-m", "cliniko_async", "export", "patients", "-o", str(out),
                "--per-page", "50"]  # fmt: skip
        proc = subprocess.Popen(args, env=env(url), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while (not partial.exists() or partial.stat().st_size < 200_000) and proc.poll() is None:
            assert time.monotonic() < deadline, "the export never got going"
            assert not out.exists()
            time.sleep(0.02)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
        if sig == signal.SIGINT:
            assert proc.returncode == 130
            assert stderr.splitlines()[-1].startswith("error: interrupted")
            assert "--resume" in stderr and "Traceback" not in stderr
        assert not out.exists()  # interrupted: no file that looks complete
        written = len(partial.read_text().splitlines())
        assert 150 <= written < 2000
        requests_before = len(slow.stats().accepted)
        done = cliniko("export", "patients", "-o", str(out), "--per-page", "50", "--resume",
                       environ=env(url))  # fmt: skip
        resumed_requests = len(slow.stats().accepted) - requests_before
    assert done.returncode == 0, done.stderr
    ids = [int(json.loads(line)["id"]) for line in out.read_text().splitlines()]
    assert ids == list(range(1, 2001))  # every record exactly once, in order
    assert "from the interrupted run" in done.stderr
    # continued after the last record written: the first pages were not fetched again
    assert resumed_requests <= (2000 - written) // 50 + 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_resume_never_trusts_a_stale_checkpoint(
    fake: FakeCliniko, base_url: str, tmp_path: Path
) -> None:
    """A checkpoint that does not describe the partial file (an export restarted, then killed
    before its first page) is not resumed from: the export starts over."""
    out = tmp_path / "p.jsonl"
    (tmp_path / "p.jsonl.partial").write_bytes(b"")
    (tmp_path / "p.jsonl.partial.json").write_text(json.dumps({
        "version": 1, "resource": "patients", "format": "jsonl", "filters": [],
        "bytes": 50_000, "records": 100, "last_id": 100,
    }))  # fmt: skip
    done = cliniko("export", "patients", "-o", str(out), "--resume", environ=env(base_url))
    assert done.returncode == 0, done.stderr
    assert read_ids(out, "jsonl") == patient_ids(fake)
    assert b"\0" not in out.read_bytes()


def test_resume_with_other_filters_is_refused(base_url: str, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    (tmp_path / "p.jsonl.partial").write_text('{"id":"1"}\n')
    (tmp_path / "p.jsonl.partial.json").write_text(json.dumps({
        "version": 1, "resource": "patients", "format": "jsonl", "filters": ["id:>=100"],
        "bytes": 11, "records": 1, "last_id": 1,
    }))  # fmt: skip
    done = cliniko("export", "patients", "-o", str(out), "--resume", environ=env(base_url))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "same resource, --format and filters" in done.stderr
    assert not out.exists()


def test_export_to_stdout_with_a_dash(fake: FakeCliniko, base_url: str, tmp_path: Path) -> None:
    """`-o -` is stdout (was: a file named "-"); stdout cannot be resumed."""
    done = cliniko("export", "patients", "-o", "-", environ=env(base_url), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [int(json.loads(line)["id"]) for line in done.stdout.splitlines()] == patient_ids(fake)
    assert f"exported {PATIENTS:,} patients to stdout" in done.stderr
    assert not list(tmp_path.iterdir())
    done = cliniko("export", "patients", "--format", "csv", "--filter", "id<=2", "-o", "-",
                   environ=env(base_url), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [row["id"] for row in csv.DictReader(done.stdout.splitlines())] == ["1", "2"]
    done = cliniko("export", "patients", "-o", "-", "--resume", environ=env(base_url), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "error: -o -: --resume needs a regular file to continue, and this is stdout\n"
    )
    assert not list(tmp_path.iterdir())


def test_export_writes_into_a_fifo_and_through_symlinks(
    fake: FakeCliniko, base_url: str, tmp_path: Path
) -> None:
    """A FIFO is written to, not replaced by a file (its reader got nothing); a symlink's
    target is replaced, not the link (the target stayed empty)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cat = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"
    reader = subprocess.Popen([sys.executable, "-c", cat, str(fifo)], stdout=subprocess.PIPE)
    try:
        done = cliniko("export", "patients", "-o", str(fifo), environ=env(base_url))
        assert done.returncode == 0, done.stderr
        assert stat.S_ISFIFO(fifo.lstat().st_mode)
        received, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
        reader.wait()
    assert [int(json.loads(line)["id"]) for line in received.splitlines()] == patient_ids(fake)
    done = cliniko("export", "patients", "-o", str(fifo), "--resume", environ=env(base_url))
    assert done.returncode == 2 and "--resume needs a regular file" in done.stderr
    assert "this is a FIFO" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no .partial anywhere

    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    target = elsewhere / "real.jsonl"
    target.write_text("")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    dangling = tmp_path / "new.jsonl"
    dangling.symlink_to(elsewhere / "new.jsonl")  # to a file not there yet
    for path in (link, dangling):
        done = cliniko("export", "patients", "--filter", "id<=5", "-o", str(path),
                       environ=env(base_url))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert path.is_symlink()
        assert read_ids(path.resolve(), "jsonl") == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["new.jsonl", "real.jsonl"]


def test_ctrl_c_stops_an_export_blocked_on_a_stalled_fifo(base_url: str, tmp_path: Path) -> None:
    """One Ctrl-C stops an export whose reader stopped reading (was: the write blocked the
    loop, and asyncio's handler only cancelled the task: it took a second Ctrl-C)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read
    args = [sys.executable, "-m", "cliniko_async", "export", "patients", "-o", str(fifo)]
    proc = subprocess.Popen(args, env=env(base_url), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _unread(reader) < 65536:  # the pipe is full: the export is blocked writing
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the export never filled the FIFO"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
        os.close(reader)
    assert proc.returncode == 130
    assert stderr.splitlines()[-1] == f"error: interrupted: part of the records went to {fifo}"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def _unread(fd: int) -> int:
    """Bytes waiting in a pipe."""
    (count,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))
    return int(count)


def test_export_to_a_device_or_a_socket_never_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o /dev/null` must not rename a file over the device. A device is made here without
    root: a file that os.stat says is a character device (its inode must stay the same, its
    records written into it); a Unix socket (made for real) cannot be opened: one error line,
    exit 1, the socket left as it was."""
    device = tmp_path / "mynull"
    device.write_bytes(b"")
    inode = device.stat().st_ino
    real_stat = os.stat

    def fake_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        found = real_stat(path, *args, **kwargs)
        if Path(path) != device:
            return found
        return os.stat_result((stat.S_IFCHR | 0o666, *tuple(found)[1:]))

    monkeypatch.setattr(os, "stat", fake_stat)
    args = ["--sandbox", "export", "patients", "--filter", "id<=3", "-o", str(device)]
    assert _app.run(args) == 0, capsys.readouterr().err
    assert device.stat().st_ino == inode  # written to, not replaced
    assert read_ids(device, "jsonl") == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mynull"]
    capsys.readouterr()
    assert _app.run([*args, "--resume"]) == 2
    assert "--resume needs a regular file to continue, and this is a device" in (
        capsys.readouterr().err
    )
    monkeypatch.undo()

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        done = cliniko("--sandbox", "export", "patients", "-o", str(path), environ=env())
    assert done.returncode == 1
    assert done.stderr == f"error: cannot write to {path}: No such device or address\n"
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_export_write_errors_are_one_line_and_exit_1(
    base_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A closed pipe (`| head -1`) and a full device (`-o /dev/full`): exit 1, one line."""
    args = [sys.executable, "-m", "cliniko_async", "export", "patients", "-o", "-"]
    proc = subprocess.Popen(args, env=env(base_url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith('{"')  # more than the pipe holds follows
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert stderr.splitlines()[-1] == "error: cannot write to stdout: Broken pipe"
    assert stderr.count("error:") == 1 and "Traceback" not in stderr
    assert "Exception ignored" not in stderr

    class Full(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_app, "open_stream", lambda job: Full())
    assert _app.run(["--sandbox", "export", "patients", "-o", "-"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: cannot write to stdout: No space left on device\n"


def as_sent(base_url: str, path: str) -> Any:
    """What the server sends for ``path``, read without the library."""
    answer = httpx.get(
        base_url + path, auth=(DEFAULT_API_KEY, ""), timeout=30,
        headers={"User-Agent": DEFAULT_USER_AGENT, "Accept": "application/json"},
    )  # fmt: skip
    answer.raise_for_status()
    return answer.json()


def test_get_and_list_json_is_what_cliniko_sent(fake: FakeCliniko, base_url: str) -> None:
    done = cliniko("get", "patients", "7", "--json", environ=env(base_url))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == as_sent(base_url, "/patients/7")  # no field added
    done = cliniko("list", "patients", "--filter", "id<=30", "--limit", "25", "--json",
                   environ=env(base_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [int(p["id"]) for p in records] == list(range(1, 26))
    sent = as_sent(base_url, "/patients?per_page=25&q[]=id:<=30")["patients"]
    assert records == sent


def test_get_and_list_print_tables_of_the_fields_with_values(
    fake: FakeCliniko, base_url: str
) -> None:
    record = fake.data["patients"][7]
    done = cliniko("get", "patients", "7", environ=env(base_url))
    assert done.returncode == 0, done.stderr
    assert "{" not in done.stdout.split("\n", 2)[1]  # a table, not JSON
    lines = done.stdout.splitlines()
    assert any(record["last_name"] in line and "last_name" in line for line in lines)
    sent = as_sent(base_url, "/patients/7")
    empty = [k for k, v in sent.items() if v is None]
    assert empty and not any(f" {k} " in done.stdout for k in empty)  # null fields left out
    done = cliniko("list", "patients", "--filter", "id<=30", "--limit", "3",
                   "--columns", "id,last_name", environ=env(base_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 3
    for pid, row in zip((1, 2, 3), rows, strict=True):
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells == [str(pid), fake.data["patients"][pid]["last_name"]]


def test_list_columns_take_fields_the_model_does_not_know(fake: FakeCliniko, base_url: str) -> None:
    """A field Cliniko sends that the model lacks is a column, not an unknown field."""
    fake.data["patients"][2]["brand_new_field"] = "shiny"
    try:
        done = cliniko("list", "patients", "--filter", "id<=3", "--columns", "id,brand_new_field",
                       environ=env(base_url))  # fmt: skip
    finally:
        del fake.data["patients"][2]["brand_new_field"]
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert [[c.strip() for c in row.strip("│").split("│")] for row in rows] == [
        ["1", ""], ["2", "shiny"], ["3", ""],
    ]  # fmt: skip


def test_doubled_operators_are_refused_with_a_hint(base_url: str) -> None:
    done = cliniko("list", "patients", "--filter", "last_name==Turing", environ=env(base_url))
    assert done.returncode == 2 and done.stdout == ""  # was: [] (the value "=Turing")
    assert "== is not an operator (use =: last_name=Turing)" in done.stderr
    done = cliniko("list", "patients", "--filter", "id=>5", environ=env(base_url))
    assert done.returncode == 2 and "use >=: id>=5" in done.stderr
    # a date wildcard is a value, not an operator
    done = cliniko("list", "patients", "--filter", "date_of_birth=****-05-**", "--json",
                   environ=env(base_url))  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("command", "resource"),
    [("get", "individual_appointments"), ("list", "treatment_notes"), ("export", "patients")],
)
def test_help_names_the_resources(command: str, resource: str) -> None:
    done = cliniko(command, "--help", environ=env())
    assert done.returncode == 0, done.stderr
    assert "Resources" in done.stdout and resource in done.stdout


def test_the_fake_server_command_has_help_and_says_what_to_install() -> None:
    done = subprocess.run([sys.executable, "-m", "cliniko_async.testing", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m cliniko_async.testing")
    blocked = (
        "import runpy, sys; sys.modules['starlette'] = None; "
        "sys.argv = ['x', '--port', '0']; "
        "runpy.run_module('cliniko_async.testing', run_name='__main__', alter_sys=True)"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert 'needs starlette: pip install "cliniko-async[testing]"' in done.stderr


def test_sandbox_needs_no_credentials(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLINIKO_")}
    done = cliniko("--sandbox", "list", "practitioners", "--limit", "3", "--json", environ=environ)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3
    done = cliniko("--sandbox", "get", "patients", "5", "--json", environ=environ)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "5"
    out = tmp_path / "a.csv"
    done = cliniko("--sandbox", "export", "individual_appointments", "--format", "csv",
                   "-o", str(out), environ=environ)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exported 5,000 individual_appointments" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "widgets"], "'widgets' is not a resource that can be exported"),
        # unknown fields and operators: the library's own ConfigurationError message
        (["export", "patients", "--filter", "nope=1"], "'nope' is not a filterable field"),
        (["export", "patients", "--filter", "last_name>Smith"], "operator '>' is not valid"),
        (["export", "patients", "--filter", "id>=ten"], "must be an integer"),
        (["export", "patients", "--filter", "archived_at?yes"], "takes no value"),
        (["export", "patients", "--filter", "last_name:^x"], "malformed filter"),
        (["export", "services", "--filter", "id=1"], "this list takes no filters"),
        (["export", "patients", "--since", "2026-01-01"], "has no time zone"),
        (["export", "patients", "--since", "yesterday"], "is not an ISO 8601 datetime"),
        (["export", "patients", "--filter", "created_at>2026-01-01T00:00"], "has no time zone"),
        (["export", "patients", "-o", "missing/p.jsonl"], "does not exist"),
        (["export", "patients", "--format", "xml"], "'xml' is not one of"),
        (["export", "patients", "--per-page", "500"], "500 is not in the range"),
        (["list", "patients", "--filter", "last_name"], "is not FIELD OPERATOR VALUE"),
        (["list", "patients", "--filter", "last_name==Turing"], "== is not an operator"),
        (["get", "patients", "1/../2"], "positive integer id"),
        (["get", "widgets", "1"], "'widgets' has no get"),
        (["list", "patients", "--limit", "0"], "0 is not in the range"),
        # --columns: a field the resource does not have, or none at all (was: an empty column)
        (["list", "patients", "--columns", "nosuch,id"], "'nosuch' is not a field of patients"),
        (["list", "patients", "--columns", "lastname"], "(did you mean last_name?)"),
        (["list", "patients", "--columns", "id,lastname"], "its fields: accepted_email_"),
        (["list", "patients", "--json", "--columns", "nosuch"], "is not a field of patients"),
        (["list", "patients", "--columns", ""], "--columns '' names no field"),
        (["list", "patients", "--columns", " , "], "names no field"),
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
    # a key pasted where a command goes, or malformed: masked in the one error line
    for args in ([bad_key, "get"], ["--api-key", "not-a-cliniko-key-at-all", "list", "patients"]):
        done = cliniko(*args, environ=env(base_url, CLINIKO_API_KEY=bad_key))
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert bad_key not in done.stderr and "not-a-cliniko-key-at-all" not in done.stderr


def test_a_failed_export_is_one_line_and_leaves_no_file(base_url: str, tmp_path: Path) -> None:
    bad_key = "MS0xLWJhZC1rZXktZm9yLXRlc3Rz-au1"
    done = cliniko("export", "patients", environ=env(base_url, CLINIKO_API_KEY=bad_key),
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "401" in done.stderr
    assert bad_key not in done.stderr
    assert not list(tmp_path.iterdir())


def test_api_errors_are_one_line_and_exit_1(base_url: str) -> None:
    done = cliniko("get", "patients", "99999", environ=env(base_url))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "404" in done.stderr
    assert done.stdout == ""


def test_without_the_cli_extra_one_line_says_what_to_install() -> None:
    blocked = (
        "import runpy, sys; sys.modules['click'] = None; "
        "sys.argv = ['cliniko', 'list', 'patients']; "
        "runpy.run_module('cliniko_async', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True,
                          env=env(), timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert 'pip install "cliniko-async[cli]"' in done.stderr


def test_demo_command() -> None:
    done = cliniko("demo", "--patients", "400", "--appointments", "2000", environ=env())
    assert done.returncode == 0, done.stderr
    assert "400/400" in done.stderr  # the export's progress bar, sized from total_entries
    assert "0 refused (429)" in done.stdout and "0 x 429" in done.stdout
    assert "archived" in done.stdout
    assert "50 requests per 2 s: Cliniko's 200 per 60 s, sped up" in done.stderr


def test_debug_shows_the_traceback(base_url: str) -> None:
    done = cliniko("--debug", "get", "patients", "99999", environ=env(base_url))
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "NotFoundError" in done.stderr


def test_debug_tracebacks_mask_the_key_in_every_form() -> None:
    # The key pasted where a URL path goes ends up in the error's URL: --debug masks it too.
    key = DEFAULT_API_KEY
    token = base64.b64encode(f"{key}:".encode()).decode()
    done = cliniko(
        "--debug", "--api-key", key, "--base-url", f"http://127.0.0.1:9/v1/{key}",
        "get", "patients", "1", environ=env(),
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "APIConnectionError" in done.stderr
    assert key not in done.stderr and token not in done.stderr
    assert "***" in done.stderr


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


# A name as a patient could type it in an online booking: set the clipboard (OSC 52), clear
# the screen, colour, carriage return, backspace, an 8-bit CSI (U+009B), DEL; rich markup.
HOSTILE_NAME = "Ann\x1b]52;c;ZWNobyBwd25lZA==\x1b\\\x1b[2J\x1b[31mRED\rX\x08\x07\x9b31m\x7f[red]ok"


@pytest.mark.parametrize(
    "args",
    [
        ("get", "patients", "5"),
        ("list", "patients", "--filter", "id<=5"),
        ("list", "patients", "--filter", "id<=5", "--columns", "id,first_name,last_name"),
    ],
)
def test_tables_show_control_characters_from_records_never_send_them(
    fake: FakeCliniko, base_url: str, args: tuple[str, ...]
) -> None:
    patient = fake.data["patients"][5]
    saved = patient["first_name"], patient["last_name"]
    patient["first_name"], patient["last_name"] = HOSTILE_NAME, "B\x1b[8m"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cliniko_async", *args],
            capture_output=True, env=env(base_url, COLUMNS="250"), timeout=120, check=False,
        )  # fmt: skip
    finally:
        patient["first_name"], patient["last_name"] = saved
    assert done.returncode == 0, done.stderr
    for stream in (done.stdout, done.stderr):
        raw = [c for c in (b"\x1b", b"\xc2\x9b", b"\r", b"\x08", b"\x07", b"\x7f") if c in stream]
        assert raw == []
    shown = done.stdout.decode()
    assert (
        "Ann\\x1b]52;c;ZWNobyBwd25lZA==\\x1b\\\\x1b[2J\\x1b[31mRED\\rX\\x08\\x07\\x9b31m" in shown
    )
    assert "\\x7f[red]ok" in shown  # printed as it is, not read as markup
    assert "B\\x1b[8m" in shown


@pytest.mark.parametrize(
    "args", [("get", "patients", "5"), ("list", "patients", "--filter", "id<=5")]
)
def test_json_escapes_every_control_character_and_keeps_the_data(
    fake: FakeCliniko, base_url: str, args: tuple[str, ...]
) -> None:
    patient = fake.data["patients"][5]
    saved = patient["first_name"]
    patient["first_name"] = HOSTILE_NAME
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cliniko_async", *args, "--json"],
            capture_output=True, env=env(base_url), timeout=120, check=False,
        )  # fmt: skip
        sent = as_sent(base_url, "/patients/5")
    finally:
        patient["first_name"] = saved
    assert done.returncode == 0, done.stderr
    assert not any(c in done.stdout for c in (b"\x1b", b"\xc2\x9b", b"\r", b"\x7f"))
    assert b"\\u009b" in done.stdout and b"\\u001b" in done.stdout
    data = json.loads(done.stdout)
    record = data if isinstance(data, dict) else next(p for p in data if p["id"] == "5")
    assert record == sent and record["first_name"] == HOSTILE_NAME  # the same data


def test_error_lines_show_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    """An error quoting what a server sent (a DecodeError's snippet) sends no escape either."""
    from cliniko_async.cli._console import fail

    assert fail("got \x1b]52;c;eA==\x07 \x9b2J from the server", 1) == 1
    assert capsys.readouterr().err == "error: got \\x1b]52;c;eA==\\x07 \\x9b2J from the server\n"
