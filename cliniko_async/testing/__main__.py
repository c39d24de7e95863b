"""``python -m cliniko_async.testing --port 8123``: serve the fake Cliniko on 127.0.0.1."""

from __future__ import annotations

import argparse
import time

from . import DEFAULT_API_KEY, FakeCliniko, serve


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Cliniko on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--appointments", type=int, default=5000)
    parser.add_argument("--rate-limit", default="200/60", help="N/T: N requests per T seconds")
    parser.add_argument("--window", choices=["rolling", "fixed"], default="rolling")
    args = parser.parse_args()
    n, t = args.rate_limit.split("/")
    fake = FakeCliniko(
        patients=args.patients, appointments=args.appointments,
        rate_limit=(int(n), float(t)), window=args.window,
    )  # fmt: skip
    with serve(fake, port=args.port) as url:
        print(f"fake Cliniko at {url} (API key {DEFAULT_API_KEY}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
