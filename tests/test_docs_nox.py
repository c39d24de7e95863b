"""The nox sessions the README and the docs name: ``docs``, ``tests`` and ``tests-3.11``..``3.14``,
and how ``tests-3.X`` finds its interpreter (a pyenv shim for an inactive version is not one)."""

from __future__ import annotations

import functools
import importlib.util
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("project_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers its sessions with nox: once per process
    return module


def load_noxfile() -> ModuleType:
    return _load()  # nox is a test dependency (the tests session installs it)


def test_the_sessions_exist() -> None:
    load_noxfile()
    from nox import registry

    names = set(registry.get())
    assert {"tests", "lint", "typecheck", "docs", "demo", "bench"} <= names
    assert {f"tests-3.{minor}" for minor in (11, 12, 13, 14)} <= names


def script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(sys.platform == "win32", reason="shell scripts as interpreters")
def test_find_python_skips_a_broken_shim_and_takes_pyenvs_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noxfile = load_noxfile()
    shims, pyenv = tmp_path / "shims", tmp_path / "pyenv"
    # What pyenv's shim does for a version that is installed but not active:
    script(shims / "python3.98", 'echo "pyenv: python3.98: command not found" >&2; exit 127')
    for release in ("3.98.1", "3.98.10", "3.98.2"):
        script(pyenv / "versions" / release / "bin" / "python3.98", 'echo "(3, 98)"')
    monkeypatch.setenv("PATH", str(shims))
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    found = noxfile.find_python("3.98")
    assert found == str(pyenv / "versions" / "3.98.10" / "bin" / "python3.98")
    assert noxfile.find_python("3.97") is None  # nothing at all: the session skips
