"""``python -m cliniko_async.testing --port 8123``: serve the fake Cliniko on 127.0.0.1."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from typing import NoReturn

from . import INSTALL_HINT
from ._checks import MAX_RECORDS, check_count, check_rate_limit

PROG = "python -m cliniko_async.testing"


class _Parser(argparse.ArgumentParser):
    """Bad options are one line on stderr and exit code 2 (argparse adds its usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help for the options)\n")


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return check_count("", int(text), low, high)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number from {low:,} to {high:,}"
            ) from None

    return parse


def _rate_limit(text: str) -> tuple[int, float]:
    try:
        n, t = text.split("/")
        limit = check_rate_limit((int(n), float(t)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not N/T, at least 1 request per a number of seconds > 0, e.g. 200/60"
        ) from None
    assert limit is not None
    return limit


def parser() -> argparse.ArgumentParser:
    out = _Parser(
        prog=PROG,
        description="Serve a seeded fake Cliniko on 127.0.0.1 until Ctrl-C. Point a client (or "
        "`cliniko --base-url`) at the URL it prints, with the API key it prints.",
    )
    out.add_argument("--port", type=_whole(0, 65535), default=8123,
                     help="0 to 65535, 0 for any free port (default: %(default)s)")  # fmt: skip
    count = _whole(0, MAX_RECORDS)
    out.add_argument("--patients", type=count, default=1000,
                     help=f"0 to {MAX_RECORDS:,} (default: %(default)s)")  # fmt: skip
    out.add_argument("--appointments", type=count, default=5000,
                     help=f"0 to {MAX_RECORDS:,} (default: %(default)s)")  # fmt: skip
    out.add_argument(
        "--rate-limit", type=_rate_limit, default="200/60", metavar="N/T",
        help="N requests per T seconds for each key, N >= 1, T > 0 (default: %(default)s, "
        "Cliniko's)",
    )  # fmt: skip
    out.add_argument("--window", choices=["rolling", "fixed"], default="rolling")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        from . import DEFAULT_API_KEY, FakeCliniko, serve
    except ImportError as exc:
        missing = (exc.name or "starlette").partition(".")[0]
        print(
            f"error: the fake Cliniko needs {missing}: {INSTALL_HINT}",
            file=sys.stderr,
            flush=True,
        )
        return 2
    fake = FakeCliniko(
        patients=args.patients, appointments=args.appointments,
        rate_limit=args.rate_limit, window=args.window,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(serve(fake, port=args.port))
        except OSError as exc:  # the port is taken, or below 1024 without the right
            print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return 1
        print(f"fake Cliniko at {url} (API key {DEFAULT_API_KEY}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
