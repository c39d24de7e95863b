"""Type checking the API surface: mypy --strict and pyright strict, positive and negative.

``tests/typing/errors_calls.py`` holds wrong calls, each marked with the error codes both
checkers must report on its line (``# E: mypy[code,...] pyright[rule,...]``);
``tests/typing/reveal_calls.py`` the common calls, each marked with the exact type both reveal
(``# R: type``). The positive suites (``check_usage.py``, ``check_every_resource.py``) are in the
project's own mypy and pyright runs (nox ``typecheck``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
BIN = Path(sys.executable).parent
MYPY = BIN / "mypy" if (BIN / "mypy").exists() else shutil.which("mypy")
PYRIGHT = BIN / "pyright" if (BIN / "pyright").exists() else shutil.which("pyright")

pytestmark = pytest.mark.timeout(600)


def _mypy(name: str) -> list[tuple[int, str, str]]:
    """(line, severity, code or revealed type) for each mypy message on ``name``."""
    if MYPY is None:
        pytest.fail(
            "mypy is not installed: the tests session installs it (python3 -m nox -s tests)"
        )
    done = subprocess.run(
        [str(MYPY), "--strict", "--no-incremental", "--show-error-codes", "--no-error-summary",
         "--cache-dir", "/dev/null", f"tests/typing/{name}"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=500,
    )  # fmt: skip
    out: list[tuple[int, str, str]] = []
    for line in done.stdout.splitlines():
        if m := re.match(rf"tests/typing/{name}:(\d+): error: .*\[([\w-]+)\]$", line):
            out.append((int(m[1]), "error", m[2]))
        elif m := re.match(rf'tests/typing/{name}:(\d+): note: Revealed type is "(.*)"$', line):
            out.append((int(m[1]), "reveal", m[2]))
    assert out or done.returncode == 0, done.stdout + done.stderr
    return out


def _pyright(name: str, tmp_path: Path) -> list[tuple[int, str, str]]:
    """(line, severity, rule or revealed type) for each pyright (strict) message on ``name``."""
    if PYRIGHT is None:
        pytest.fail(
            "pyright is not installed: the tests session installs it (python3 -m nox -s tests)"
        )
    shutil.copy(TYPING / name, tmp_path / name)
    config = {
        "include": [name],
        "strict": [name],
        "pythonVersion": "3.11",
        "extraPaths": [str(ROOT)],
    }
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    done = subprocess.run(
        [str(PYRIGHT), "--outputjson", "--pythonpath", sys.executable, "-p", "pyrightconfig.json"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=500,
    )  # fmt: skip
    report = json.loads(done.stdout[done.stdout.index("{") :])
    out: list[tuple[int, str, str]] = []
    for d in report["generalDiagnostics"]:
        line = d["range"]["start"]["line"] + 1
        if d["severity"] == "error":
            out.append((line, "error", d.get("rule", "?")))
        elif m := re.match(r'Type of ".*" is "(.*)"$', d["message"], re.DOTALL):
            out.append((line, "reveal", m[1]))
    return out


def _markers(name: str, tag: str) -> dict[int, str]:
    """Line -> marker text, for the code lines (indented) that carry a ``# <tag>: `` marker."""
    lines = (TYPING / name).read_text().splitlines()
    found = {n: re.match(rf"^    \S.*  # {tag}: (.*)$", line) for n, line in enumerate(lines, 1)}
    return {n: m[1] for n, m in found.items() if m}


def _unqualified(type_: str) -> str:
    """``typing.Coroutine[Any, Any, cliniko_async.models._patients.Patient]`` -> as pyright says."""
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", type_)


def _merged_literals(type_: str) -> str:
    """mypy's ``Literal['a'] | Literal['b']`` -> ``Literal['a', 'b']``, as pyright says it."""
    members = re.split(r" \| (?![^\[]*\])", type_)
    out: list[str] = []
    for member in members:
        m = re.fullmatch(r"Literal\[(.*)\]", member)
        if m and out and out[-1].startswith("Literal["):
            out[-1] = f"{out[-1][:-1]}, {m[1]}]"
        else:
            out.append(member)
    return " | ".join(out)


def _expected(name: str, checker: str) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for line, marker in _markers(name, "E").items():
        m = re.search(rf"\b{checker}\[([\w,-]+)\]", marker)
        assert m, f"{name}:{line}: no {checker}[...] in the marker"
        out[line] = set(m[1].split(","))
    return out


def _errors(found: list[tuple[int, str, str]]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for line, kind, code in found:
        if kind == "error":
            out.setdefault(line, set()).add(code)
    return out


def test_mypy_rejects_each_wrong_call_with_the_marked_codes() -> None:
    expected = _expected("errors_calls.py", "mypy")
    assert len(expected) >= 15
    assert _errors(_mypy("errors_calls.py")) == expected


def test_pyright_rejects_each_wrong_call_with_the_marked_rules(tmp_path: Path) -> None:
    expected = _expected("errors_calls.py", "pyright")
    assert _errors(_pyright("errors_calls.py", tmp_path)) == expected


def test_mypy_reveals_the_exact_types() -> None:
    found = _mypy("reveal_calls.py")
    assert _errors(found) == {}
    revealed = {
        line: _merged_literals(_unqualified(t)) for line, kind, t in found if kind == "reveal"
    }
    assert revealed == _markers("reveal_calls.py", "R")


def test_pyright_reveals_the_exact_types(tmp_path: Path) -> None:
    found = _pyright("reveal_calls.py", tmp_path)
    assert _errors(found) == {}
    revealed = {line: t for line, kind, t in found if kind == "reveal"}
    assert revealed == _markers("reveal_calls.py", "R")
