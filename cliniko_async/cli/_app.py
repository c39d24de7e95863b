"""The click commands. Output (JSON) goes to stdout; progress, summaries and errors to stderr."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, TypeVar

import attrs
import click
from rich.console import Console
from rich.table import Table

from .._client import Cliniko
from .._resource import GetOp, ListOp
from ..errors import ClinikoError, ConfigurationError
from ..resources import RESOURCES
from ._console import ProgressBar, fail, json_text, plain, stderr
from ._export import (
    ExportJob,
    OutputError,
    check_output,
    export,
    keyed,
    list_operation,
    open_stream,
)
from ._expressions import OPERATORS, parse_filter, since_filter
from ._mirror import mirror_command
from ._show import (
    check_columns,
    fetch_list,
    parse_columns,
    print_table,
    record_table,
    records_table,
)

__all__ = ["cli", "run"]

T = TypeVar("T")
SANDBOX_PATIENTS = 2000
SANDBOX_APPOINTMENTS = 5000


@attrs.frozen
class Settings:
    api_key: str | None = attrs.field(repr=False)
    user_agent: str | None
    base_url: str | None
    sandbox: bool


class Interrupted(Exception):
    """Ctrl-C, with what to do next."""


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

        fake = FakeCliniko(patients=SANDBOX_PATIENTS, appointments=SANDBOX_APPOINTMENTS)
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


def _gettable() -> list[str]:
    return sorted(n for n, c in RESOURCES.items() if isinstance(c.operations().get("get"), GetOp))


def _listable() -> list[str]:
    return sorted(
        name for name, c in RESOURCES.items()
        if isinstance(o := c.operations().get("list"), ListOp) and not o.path_params
    )  # fmt: skip


class ResourceCommand(click.Command):
    """A command taking a RESOURCE: its help ends with the resource names it accepts."""

    def __init__(self, *args: Any, resources: Callable[[], list[str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resources = resources

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        with formatter.section("Resources"):
            formatter.write_text(", ".join(self.resources()))


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
@click.version_option(package_name="cliniko-async", prog_name="cliniko")
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
@click.option("--patients", default=3000, show_default=True, type=click.IntRange(1, 100_000),
              help="Patients in the fake.")  # fmt: skip
@click.option("--appointments", default=20000, show_default=True,
              type=click.IntRange(0, 1_000_000), help="Appointments in it.")  # fmt: skip
def demo(patients: int, appointments: int) -> None:
    """The library against the embedded fake Cliniko: export, rate limit, writes, queries.

    The fake allows 50 requests per 2 s, Cliniko's 200 per 60 s sped up (7.5x the rate, a
    window of 2 s instead of 60) so that the demo shows the limiter at work in seconds.
    """
    from .._demo import run_demo

    stderr.print("[bold]cliniko-async demo[/]: the client against the embedded fake Cliniko")
    stderr.print(
        "Its rate limit is 50 requests per 2 s: Cliniko's 200 per 60 s, sped up 7.5x so the "
        "limiter's work shows in seconds (the client is set to the same limit)."
    )
    with ProgressBar("exporting patients") as bar:
        summary = asyncio.run(run_demo(patients, appointments, bar))
    table = Table(title="cliniko-async demo", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in summary.items():
        table.add_row(key, value)
    Console().print(table)


@cli.command(name="export", cls=ResourceCommand, resources=_listable)
@click.argument("resource")
@click.option("--filter", "filters", multiple=True, metavar="EXPR",
              help=f"FIELD OPERATOR VALUE, repeatable; operators: {OPERATORS}.")  # fmt: skip
@click.option("--since", metavar="DATETIME",
              help="Only records updated at or after (ISO 8601 with a time zone).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Output file (default: RESOURCE.FORMAT); - for stdout.")  # fmt: skip
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
    """Every RESOURCE record to a file, in id order, written atomically and resumable.

    Records go to FILE.partial, renamed to FILE when the export is complete; after a crash
    or Ctrl-C, run the same command with --resume to continue where it stopped. Stdout (-o -),
    a FIFO or a device (/dev/stdout) is written straight to, and cannot be resumed; a symlink's
    target is replaced, not the link.
    """
    op = list_operation(resource)
    parsed = [parse_filter(expr, op.filters) for expr in filters]
    if since is not None:
        parsed.append(since_filter(since, op.filters))
    check_credentials(settings)
    job = ExportJob(
        resource=resource, output=output or Path(f"{resource}.{fmt}"), format=fmt,  # type: ignore[arg-type]
        filters=tuple(parsed), resume=resume, per_page=per_page,
    )  # fmt: skip
    job = check_output(job)
    if resume and job.output.exists() and not job.partial.exists():
        stderr.print(f"{job.output} is already complete: nothing to resume")
        return
    if resume and not keyed(op) and job.partial.exists():
        stderr.print(f"{resource} cannot be paged by id: starting the export over")
    started = time.perf_counter()
    out: BinaryIO | None = None
    try:
        # A FIFO is opened before the loop starts, as `cat > FIFO` opens it: Ctrl-C while it
        # waits for a reader interrupts at once.
        out = open_stream(job) if job.stream else None
        with (
            _interrupt_at_once() if job.stream else contextlib.nullcontext(),
            ProgressBar(f"exporting {resource}") as bar,
        ):
            result = _run(settings, lambda cliniko: export(cliniko, job, bar, out))
    except KeyboardInterrupt:
        if job.stream:
            raise Interrupted(f"interrupted: part of the records went to {job.shown}") from None
        raise Interrupted(
            f"interrupted: {job.partial} holds what was written; add --resume to continue"
        ) from None
    finally:
        if out is not None:
            with contextlib.suppress(OSError):  # closed by the export; after an error, again
                out.close()
    elapsed = time.perf_counter() - started
    resumed = f" ({result.resumed:,} from the interrupted run)" if result.resumed else ""
    stderr.print(
        f"exported {result.records:,} {resource}{resumed} to {job.shown} in {elapsed:.1f} s"
    )


@contextlib.contextmanager
def _interrupt_at_once() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt wherever the export is, as before Python 3.11.

    asyncio.run's own handler only cancels the task, and a write to a pipe or FIFO whose
    reader has stopped reading blocks the loop: the cancellation would wait for the reader. A
    stream has no checkpoint to keep consistent, so it stops at once.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # Ctrl-C ignored (a background job) or handled by the caller: left as it is
        return
    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


JSON_HELP = "JSON for machines: exactly the fields Cliniko sent (the table leaves out empty ones)."


@cli.command(name="get", cls=ResourceCommand, resources=_gettable)
@click.argument("resource")
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def get_command(settings: Settings, resource: str, ids: tuple[str, ...], as_json: bool) -> None:
    """One RESOURCE record by id (two ids for signatures: patient form, signature).

    A table of the fields that have a value; --json for the record as Cliniko sent it.
    """
    cls = RESOURCES.get(resource)
    op = cls.operations().get("get") if cls is not None else None
    if not isinstance(op, GetOp):
        raise ConfigurationError(f"{resource!r} has no get; one of: {', '.join(_gettable())}")
    path = op.render_path(ids)  # the ids are checked before anything is sent
    check_credentials(settings)
    record = _run(settings, lambda cliniko: cliniko.request("GET", path))
    if as_json:
        click.echo(json_text(record))
    elif isinstance(record, dict):
        print_table(record_table(record, f"{resource} {'/'.join(ids)}"))
    else:
        click.echo(json_text(record))


@cli.command(name="list", cls=ResourceCommand, resources=_listable)
@click.argument("resource")
@click.option("--filter", "filters", multiple=True, metavar="EXPR",
              help=f"FIELD OPERATOR VALUE, repeatable; operators: {OPERATORS}.")  # fmt: skip
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, None))
@click.option(
    "--columns",
    metavar="A,B,...",
    help="Table columns, fields of the resource (default: id, then fields with values).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def list_command(
    settings: Settings,
    resource: str,
    filters: tuple[str, ...],
    limit: int,
    columns: str | None,
    as_json: bool,
) -> None:
    """The first LIMIT RESOURCE records (matching the filters).

    A table, one row per record; --json for a JSON array of the records as Cliniko sent them.
    """
    op = list_operation(resource)
    parsed = [parse_filter(expr, op.filters) for expr in filters]
    chosen = parse_columns(columns)
    check_credentials(settings)
    records = _run(settings, lambda cliniko: fetch_list(cliniko, op, parsed, limit))
    check_columns(chosen, op, records, resource)  # after: Cliniko may send fields the model lacks
    if as_json:
        click.echo(json_text(records))
        return
    table, left_out = records_table(records, chosen, f"{resource} ({len(records)})")
    print_table(table)
    if left_out:
        stderr.print(
            plain(
                f"{len(left_out)} more fields with values ({', '.join(left_out[:6])}"
                f"{', ...' if len(left_out) > 6 else ''}): --columns to pick, --json for all"
            )
        )


cli.add_command(mirror_command)


def _secrets(args: list[str]) -> list[str]:
    """API keys the user gave, masked in every error line."""
    found = [os.environ.get("CLINIKO_API_KEY", "")]
    for i, arg in enumerate(args):
        if arg == "--api-key" and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith("--api-key="):
            found.append(arg.partition("=")[2])
    found = [s for s in found if len(s) >= 8]
    # The Basic token too: a traceback could show an Authorization header.
    return found + [base64.b64encode(f"{s}:".encode()).decode() for s in found]


def _debug(exc: BaseException, code: int, secrets: list[str]) -> int:
    """``--debug``: the whole traceback on stderr, with every form of the key masked."""
    text = "".join(traceback.format_exception(exc))
    for secret in secrets:
        text = text.replace(secret, "***")
    sys.stderr.write(text)
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr and an exit code (2: bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["--help"]
    debug = "--debug" in args
    secrets = _secrets(args)
    try:
        cli.main(args=args, prog_name="cliniko", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        return fail(exc.format_message(), 2, secrets)
    except click.Abort:
        return fail("interrupted", 130)
    except Interrupted as exc:
        return fail(str(exc), 130)
    except KeyboardInterrupt as exc:
        if debug:
            return _debug(exc, 130, secrets)
        return fail("interrupted", 130)
    except ConfigurationError as exc:
        if debug:
            return _debug(exc, 2, secrets)
        return fail(str(exc), 2, secrets)
    except (ClinikoError, OutputError) as exc:
        if debug:
            return _debug(exc, 1, secrets)
        return fail(str(exc), 1, secrets)
    except OSError as exc:
        if debug:
            return _debug(exc, 1, secrets)
        return fail(f"{exc.strerror or exc}: {exc.filename}", 1, secrets)
    except Exception as exc:
        if debug:
            return _debug(exc, 1, secrets)
        detail = f"{type(exc).__name__}: {exc}"
        return fail(f"unexpected {detail} (run with --debug for the traceback)", 1, secrets)
    return 0
