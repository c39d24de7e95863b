"""``python -m cliniko_async ...``: the ``cliniko`` command (``demo``, ``export``, ``get``, ...)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError:
        if argv[:1] == ["demo"]:  # the demo also runs without the [cli] extra, in plain text
            from ._demo import main as demo

            return demo()
    from .cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
