"""``python -m cliniko_async.testing --port 8123``: serve the fake Cliniko on 127.0.0.1."""

from __future__ import annotations

import argparse
import sys
import time

from . import INSTALL_HINT

PROG = "python -m cliniko_async.testing"


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a seeded fake Cliniko on 127.0.0.1 until Ctrl-C. Point a client (or "
        "`cliniko --base-url`) at the URL it prints, with the API key it prints.",
    )
    out.add_argument("--port", type=int, default=8123, help="default: %(default)s")
    out.add_argument("--patients", type=int, default=1000, help="default: %(default)s")
    out.add_argument("--appointments", type=int, default=5000, help="default: %(default)s")
    out.add_argument(
        "--rate-limit", default="200/60", metavar="N/T",
        help="N requests per T seconds for each key (default: %(default)s, Cliniko's)",
    )  # fmt: skip
    out.add_argument("--window", choices=["rolling", "fixed"], default="rolling")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        n, t = args.rate_limit.split("/")
        rate_limit = (int(n), float(t))
    except ValueError:
        parser().error(f"--rate-limit {args.rate_limit!r} is not N/T, e.g. 200/60")
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
        rate_limit=rate_limit, window=args.window,
    )  # fmt: skip
    with serve(fake, port=args.port) as url:
        print(f"fake Cliniko at {url} (API key {DEFAULT_API_KEY}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
