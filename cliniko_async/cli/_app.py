"""The click commands. Output (JSON) goes to stdout; progress, summaries and errors to stderr."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .._client import Cliniko
from .._converter import unstructure
from .._resource import GetOp
from ..errors import ClinikoError, ConfigurationError
from ..resources import RESOURCES
from ._export import ExportJob, export, list_operation
from ._expressions import OPERATORS, parse_datetime, parse_filter

__all__ = ["cli", "run"]

T = TypeVar("T")
stderr = Console(stderr=True)


@attrs.frozen
class Settings:
    api_key: str | None
    user_agent: str | None
    base_url: str | None
    sandbox: bool


@contextlib.asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Cliniko]:
    """A client for the real API, a served fake (``--base-url``) or the embedded fake."""
    if settings.sandbox:
        import httpx

        from ..testing import (
            DEFAULT_API_KEY,
            DEFAULT_USER_AGENT,
            IN_PROCESS_BASE_URL,
            FakeCliniko,
        )

        fake = FakeCliniko(patients=2000, appointments=5000)
        async with (
            httpx.AsyncClient(transport=fake.transport()) as http,
            Cliniko(api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT,
                    base_url=IN_PROCESS_BASE_URL, http_client=http) as cliniko,
        ):  # fmt: skip
            yield cliniko
        return
    api_key, user_agent = check_credentials(settings)
    async with Cliniko(
        api_key=api_key, user_agent=user_agent, base_url=settings.base_url
    ) as cliniko:
        yield cliniko


def check_credentials(settings: Settings) -> tuple[str, str]:
    """The key and User-Agent (checked before any progress bar or file appears)."""
    if settings.sandbox:
        return "", ""
    if not settings.api_key:
        raise ConfigurationError("no API key: set CLINIKO_API_KEY or pass --api-key")
    if not settings.user_agent:
        raise ConfigurationError(
            "no User-Agent: set CLINIKO_USER_AGENT or pass --user-agent, e.g. "
            "'Acme Export (it@acme.example)'"
        )
    return settings.api_key, settings.user_agent


def _run(settings: Settings, work: Callable[[Cliniko], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        async with connect(settings) as cliniko:
            return await work(cliniko)

    return asyncio.run(main())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-key", envvar="CLINIKO_API_KEY", show_envvar=True, help="Your API key.")
@click.option(
    "--user-agent", envvar="CLINIKO_USER_AGENT", show_envvar=True,
    help="Your app's name and a contact email: 'Acme Export (it@acme.example)'.",
)  # fmt: skip
@click.option(
    "--base-url", envvar="CLINIKO_BASE_URL", show_envvar=True,
    help="Another API root, e.g. a fake Cliniko served on 127.0.0.1 (default: from the key).",
)  # fmt: skip
@click.option("--sandbox", is_flag=True, help="Run against the embedded fake Cliniko.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context,
    api_key: str | None,
    user_agent: str | None,
    base_url: str | None,
    sandbox: bool,
    debug: bool,
) -> None:
    """Cliniko from the command line: export, get and list records; `cliniko demo` to try it."""
    ctx.obj = Settings(api_key, user_agent, base_url, sandbox)


@cli.command()
@click.option("--patients", default=3000, show_default=True, help="Patients in the fake.")
@click.option("--appointments", default=20000, show_default=True, help="Appointments in it.")
def demo(patients: int, appointments: int) -> None:
    """The library against the embedded fake Cliniko: export, rate limit, writes, queries."""
    from .._demo import run_demo

    stderr.print("[bold]cliniko-async demo[/]: the client against the embedded fake Cliniko")
    with _progress() as bar:
        task = bar.add_task("exporting patients", total=None)
        summary = asyncio.run(
            run_demo(patients, appointments, lambda done, total: bar.update(
                task, completed=done, total=total))
        )  # fmt: skip
    table = Table(title="demo summary", show_header=False)
    for key, value in summary.items():
        table.add_row(key, value)
    Console().print(table)


@cli.command(name="export")
@click.argument("resource")
@click.option("--filter", "filters", multiple=True, metavar="EXPR",
              help=f"FIELD OPERATOR VALUE, repeatable; operators: {OPERATORS}.")  # fmt: skip
@click.option("--since", metavar="DATETIME", help="Only records updated at or after (ISO 8601).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (default: RESOURCE.FORMAT).")  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue an interrupted export of the same file.")
@click.option("--per-page", default=100, show_default=True, type=click.IntRange(1, 100))
@click.pass_obj
def export_command(
    settings: Settings,
    resource: str,
    filters: tuple[str, ...],
    since: str | None,
    fmt: str,
    output: Path | None,
    resume: bool,
    per_page: int,
) -> None:
    """Every RESOURCE record to a file, in id order, written atomically and resumable."""
    op = list_operation(resource)
    parsed = [parse_filter(expr, op.filters) for expr in filters]
    if since is not None:
        parse_datetime(since, "--since")
        parsed.append(parse_filter(f"updated_at>={since}", op.filters))
    check_credentials(settings)
    job = ExportJob(
        resource=resource, output=output or Path(f"{resource}.{fmt}"), format=fmt,  # type: ignore[arg-type]
        filters=tuple(parsed), resume=resume, per_page=per_page,
    )  # fmt: skip
    if resume and job.output.exists() and not job.partial.exists():
        stderr.print(f"{job.output} is already complete: nothing to resume")
        return
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"exporting {resource}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        count = _run(settings, lambda cliniko: export(cliniko, job, progress))
    elapsed = time.perf_counter() - started
    stderr.print(f"exported {count:,} {resource} to {job.output} in {elapsed:.1f} s")


@cli.command(name="get")
@click.argument("resource")
@click.argument("ids", nargs=-1, required=True)
@click.pass_obj
def get_command(settings: Settings, resource: str, ids: tuple[str, ...]) -> None:
    """One RESOURCE record by id (two ids for signatures: patient form, signature), as JSON."""
    check_credentials(settings)
    cls = RESOURCES.get(resource)
    op = cls.operations().get("get") if cls is not None else None
    if not isinstance(op, GetOp):
        names = sorted(
            n for n, c in RESOURCES.items() if isinstance(c.operations().get("get"), GetOp)
        )
        raise ConfigurationError(f"{resource!r} has no get; one of: {', '.join(names)}")
    record = _run(settings, lambda cliniko: getattr(cliniko, resource).get(*ids))
    click.echo(json.dumps(unstructure(record), indent=2, ensure_ascii=False))


@cli.command(name="list")
@click.argument("resource")
@click.option("--filter", "filters", multiple=True, metavar="EXPR",
              help=f"FIELD OPERATOR VALUE, repeatable; operators: {OPERATORS}.")  # fmt: skip
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, None))
@click.pass_obj
def list_command(settings: Settings, resource: str, filters: tuple[str, ...], limit: int) -> None:
    """The first LIMIT RESOURCE records (matching the filters), as a JSON array."""
    op = list_operation(resource)
    parsed = [parse_filter(expr, op.filters) for expr in filters]
    check_credentials(settings)

    async def first(cliniko: Cliniko) -> list[Any]:
        records: list[Any] = []
        listing = getattr(cliniko, resource).list(q=parsed, per_page=min(limit, 100))
        async with contextlib.aclosing(listing.pages()) as pages:
            async for page in pages:
                records += page.items[: limit - len(records)]
                if len(records) >= limit:
                    break
        return records

    records = _run(settings, first)
    click.echo(json.dumps([unstructure(r) for r in records], indent=2, ensure_ascii=False))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=stderr, transient=False,
    )  # fmt: skip


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr and an exit code (2: bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="cliniko", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        return _fail(exc.format_message(), 2)
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted", 130)
    except ConfigurationError as exc:
        if debug:
            raise
        return _fail(str(exc), 2)
    except ClinikoError as exc:
        if debug:
            raise
        return _fail(str(exc), 1)
    except OSError as exc:
        if debug:
            raise
        return _fail(f"{exc.strerror or exc}: {exc.filename}", 1)
    return 0


def _fail(message: str, code: int) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    click.echo(f"error: {first_line}", err=True)
    return code
