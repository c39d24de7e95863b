"""Every Python example of the README runs as written, from its own visible prelude.

Examples are run exactly as shown: scripts in this process (each starts its own served fake
with ``cliniko_async.testing.sandbox()``), pytest examples in a project of their own (a temporary
directory, with the TOML block shown just before them as its ``pyproject.toml``). An example
that defines a function must call it. ``tests/test_docs.py`` runs the documentation's examples
the same way.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

import cliniko_async.testing
from cliniko_async.testing import Sandbox, stop_sandboxes

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


@attrs.frozen
class Example:
    source: str
    where: str
    config: str | None  # a TOML block shown just before it (for pytest examples)

    @property
    def is_pytest(self) -> bool:
        return bool(re.search(r"^(async )?def test_", self.source, re.MULTILINE))


def examples(path: Path) -> list[Example]:
    """The ``python`` blocks of a Markdown file, with the TOML block just before each."""
    text = path.read_text()
    found: list[Example] = []
    previous: tuple[str, str] | None = None
    for match in FENCE.finditer(text):
        lang, body = match.group(1), match.group(2)
        if lang == "python":
            line = text.count("\n", 0, match.start()) + 1
            config = previous[1] if previous and previous[0] == "toml" else None
            found.append(Example(body, f"{path.relative_to(ROOT)}:{line}", config))
        previous = (lang, body)
    return found


def uncalled_functions(source: str) -> list[str]:
    """Top-level functions the example defines and never uses: not called, not passed on
    (``Depends(f)``), not registered by a decorator (``@app.get``); pytest tests excepted."""
    tree = ast.parse(source)
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith("test_")
        and not node.decorator_list
    ]
    used = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    return [name for name in defined if name not in used]


def run_example(
    example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str | None
) -> None:
    assert not uncalled_functions(example.source), f"{example.where}: define it, call it"
    if example.is_pytest:
        run_pytest_example(example, tmp_path)
        return
    if redis_url is not None:
        monkeypatch.setenv("REDIS_URL", redis_url)
    started: list[Sandbox] = []
    real = cliniko_async.testing.sandbox

    def spy(*args: Any, **kwargs: Any) -> Sandbox:
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(cliniko_async.testing, "sandbox", spy)
    library_log = logging.getLogger("cliniko_async")
    monkeypatch.setattr(library_log, "level", library_log.level)  # an example may set it
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        code = compile(example.source, example.where, "exec")
        exec(code, namespace)  # noqa: S102
    finally:
        for value in namespace.values():  # SyncCliniko examples may leave a client open
            close = getattr(value, "close", None)
            if type(value).__name__ == "SyncCliniko" and callable(close):
                close()
        stop_sandboxes()
    # (an example may bring its own fake, in-process: then it asserts on it itself)
    for box in started:
        assert box.fake.stats().rejected == 0
        assert box.fake.requests > 0, f"{example.where}: sent nothing"


def run_pytest_example(example: Example, tmp_path: Path) -> None:
    """The example as a user's test module, in a project with only pytest and the plugins a
    user would have: this package's, anyio's and pytest-asyncio's (strict unless configured)."""
    if example.config is not None:
        (tmp_path / "pyproject.toml").write_text(example.config)
    else:
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_example.py").write_text(example.source)
    plugins = [a for name in ("cliniko_async", "anyio", "asyncio") for a in ("-p", name)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins,
         "-W", "ignore::DeprecationWarning"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )  # fmt: skip
    assert done.returncode == 0, f"{example.where}\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    assert re.search(r"\b[1-9]\d* passed", done.stdout), done.stdout


README_EXAMPLES = examples(README)


def test_readme_has_examples() -> None:
    assert len(README_EXAMPLES) >= 8
    assert sum(e.is_pytest for e in README_EXAMPLES) == 3  # anyio, strict, auto


@pytest.mark.parametrize("example", README_EXAMPLES, ids=[e.where for e in README_EXAMPLES])
def test_readme_example_runs(
    example: Example,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Only the Redis example needs a server (and only it starts one).
    redis_url = request.getfixturevalue("redis_url") if "REDIS_URL" in example.source else None
    run_example(example, tmp_path, monkeypatch, redis_url)
    capsys.readouterr()


def test_the_coverage_table_is_rendered_from_the_code() -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "tools" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    sys.modules["generate"] = generate  # its dataclasses look themselves up there
    spec.loader.exec_module(generate)
    readme = README.read_text()
    assert generate.render_readme(readme) == readme
    assert "| `cliniko.treatment_notes` |" in readme and "231 operations" in readme
