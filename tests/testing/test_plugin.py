"""The pytest plugin's fixtures, as a user's suite gets them (entry point ``cliniko_async``).

The suites below run in a project of their own (a temporary directory with its own
``pytest.ini``), under each runner the README shows: plain pytest with anyio's plugin, and
pytest-asyncio in strict and in auto mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cliniko_async import Cliniko, q
from cliniko_async.testing import FakeCliniko

ROOT = Path(__file__).resolve().parents[2]


async def test_fixtures_are_connected(cliniko: Cliniko, fake_cliniko: FakeCliniko) -> None:
    patient = await cliniko.patients.get(1)
    assert patient.first_name == fake_cliniko.data["patients"][1]["first_name"]
    adas = await cliniko.patients.list(q=[q("first_name") == patient.first_name]).collect()
    assert patient.id in {p.id for p in adas}
    assert len(fake_cliniko.stats().accepted) == 1 + 1


ANYIO = """
import pytest

@pytest.mark.anyio
async def test_get(cliniko, fake_cliniko):
    patient = await cliniko.patients.get(1)
    assert patient.first_name == fake_cliniko.data["patients"][1]["first_name"]
"""

STRICT = """
import pytest

@pytest.mark.asyncio
async def test_get(cliniko, fake_cliniko):
    patient = await cliniko.patients.get(1)
    assert patient.first_name == fake_cliniko.data["patients"][1]["first_name"]
"""

AUTO = """
async def test_get(cliniko, fake_cliniko):
    patient = await cliniko.patients.get(1)
    assert patient.first_name == fake_cliniko.data["patients"][1]["first_name"]
"""

# Each test spends most of the fake's 200 per 60 s: with one budget for the key across
# tests, the second would wait for most of a minute (and time out here).
BUDGET = """
import pytest

@pytest.mark.anyio
@pytest.mark.parametrize("run", range(3))
async def test_spend(cliniko, fake_cliniko, run):
    for _ in range(150):
        await cliniko.patients.get(1)
    assert fake_cliniko.stats().rejected == 0
"""


def run_user_suite(tmp_path: Path, source: str, ini: str, *plugins: str) -> str:
    """Run ``source`` with only ``plugins`` (entry-point names) and this package's loaded, as
    in a project that installed nothing else (this venv has more: looptime, hypothesis...)."""
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    (tmp_path / "test_user.py").write_text(source)
    loaded = [arg for name in ("cliniko_async", "timeout", *plugins) for arg in ("-p", name)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *loaded],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


def test_plain_pytest_with_anyio_marker(tmp_path: Path) -> None:
    out = run_user_suite(tmp_path, ANYIO, "", "anyio")
    assert "1 passed" in out


def test_anyio_marker_with_pytest_asyncio_installed(tmp_path: Path) -> None:
    ini = "asyncio_default_fixture_loop_scope = function"  # strict mode: pytest-asyncio's default
    assert "1 passed" in run_user_suite(tmp_path, ANYIO, ini, "anyio", "asyncio")


def test_pytest_asyncio_strict_mode(tmp_path: Path) -> None:
    ini = "asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function"
    assert "1 passed" in run_user_suite(tmp_path, STRICT, ini, "asyncio")


def test_pytest_asyncio_auto_mode(tmp_path: Path) -> None:
    ini = "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function"
    assert "1 passed" in run_user_suite(tmp_path, AUTO, ini, "asyncio")


@pytest.mark.timeout(200)
def test_each_test_has_a_full_budget(tmp_path: Path) -> None:
    out = run_user_suite(tmp_path, BUDGET, "timeout = 40", "anyio")
    assert "3 passed" in out


USER_TESTS = """
import pytest


@pytest.mark.anyio
async def test_with_anyio(cliniko, fake_cliniko):
    patient = await cliniko.patients.get(1)
    assert patient.first_name == fake_cliniko.data["patients"][1]["first_name"]
"""

USER_STRICT_TESTS = """
import pytest


@pytest.mark.asyncio
async def test_with_pytest_asyncio_strict(cliniko, fake_cliniko):
    patients = await cliniko.patients.list(per_page=100).collect()
    assert len(patients) == len(fake_cliniko.data["patients"])
"""


@pytest.mark.timeout(600)
def test_a_user_project_outside_the_repository(tmp_path: Path) -> None:
    """A fresh virtualenv, ``pip install "<repo>[testing]"``, plain pytest: the anyio test passes;
    then with pytest-asyncio added (strict mode, its default), the asyncio-marked test too.
    (About 10-20 s: one venv, two pip installs from the configured index.)"""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, *args], cwd=project, env=environ, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (project / "test_mine.py").write_text(USER_TESTS)
    done = run("-m", "pip", "install", "-q", f"{ROOT}[testing]")
    assert done.returncode == 0, done.stderr[-3000:]
    done = run("-m", "pytest", "-p", "no:cacheprovider", "-q")
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]

    (project / "test_strict.py").write_text(USER_STRICT_TESTS)
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nasyncio_default_fixture_loop_scope = "function"\n'
    )
    done = run("-m", "pip", "install", "-q", "pytest-asyncio")
    assert done.returncode == 0, done.stderr[-3000:]
    done = run("-m", "pytest", "-p", "no:cacheprovider", "-q")
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-3000:]
    assert "mode=Mode.STRICT" in run("-m", "pytest", "-p", "no:cacheprovider", "-v").stdout
