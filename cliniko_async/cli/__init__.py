"""The ``cliniko`` command (extra ``cliniko-async[cli]``): demo, export, get, list."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    try:
        from ._app import run
    except ImportError as exc:  # click or rich missing
        print(
            f'error: the cliniko command needs {exc.name}: pip install "cliniko-async[cli]"',
            file=sys.stderr,
        )
        return 2
    return run(argv)
