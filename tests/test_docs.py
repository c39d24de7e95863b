"""Every Python example of the documentation site (``docs/``) runs as written.

The same runner as the README's (``tests/test_readme.py``): scripts from their visible
``sandbox()`` prelude, pytest examples in a project of their own. The site itself is built
with warnings as errors by ``python3 -m nox -s docs`` (and in CI).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_readme import ROOT, Example, examples, run_example

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
DOC_EXAMPLES = [example for page in PAGES for example in examples(page)]


def test_the_docs_have_examples_and_every_page_is_in_the_nav() -> None:
    assert len(DOC_EXAMPLES) >= 15
    assert sum(e.is_pytest for e in DOC_EXAMPLES) == 3  # anyio, strict, auto
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        assert str(page.relative_to(DOCS)) in nav, page


def test_the_readme_links_the_docs() -> None:
    assert "(docs/index.md)" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("example", DOC_EXAMPLES, ids=[e.where for e in DOC_EXAMPLES])
def test_docs_example_runs(
    example: Example,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    redis_url = request.getfixturevalue("redis_url") if "REDIS_URL" in example.source else None
    run_example(example, tmp_path, monkeypatch, redis_url)
    capsys.readouterr()


def test_the_reference_pages_name_modules_that_exist() -> None:
    import importlib

    for page in (DOCS / "reference").glob("*.md"):
        for target in re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE):
            module, _, name = target.rpartition(".")
            try:
                importlib.import_module(target)
            except ImportError:
                assert hasattr(importlib.import_module(module), name), target


def test_the_package_metadata_says_what_is_true() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The core runs on asyncio only (trio fails in the limiter): no AnyIO framework claim.
    assert "Framework :: AnyIO" not in project["classifiers"]
    assert "Framework :: AsyncIO" in project["classifiers"]
    assert {"Documentation", "Source", "Changelog"} <= set(project["urls"])
    # The [testing] extra brings what the pytest plugin needs (anyio's runner comes with anyio).
    testing = project["optional-dependencies"]["testing"]
    assert any(req.startswith("pytest") for req in testing)
    assert any(req.startswith("anyio") for req in project["dependencies"])
