"""`kar98k`: one entry point; each sub-command lives in its own module under kar98k.commands.

A command module exposes `register(subparsers)`, which adds its parser and sets
`handler=<function(args) -> exit code>`. To add `kar98k NAME`, write kar98k/commands/NAME.py
and list it in COMMANDS.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from . import __version__
from .commands import Subparsers, demo, find_max, run, schedule, simulate, validate

COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    validate.register,
    simulate.register,
    run.register,
    find_max.register,
    demo.register,
    schedule.register,
)


def _plugins() -> list[Callable[[Subparsers], None]]:
    """Commands other distributions or extras register under the `kar98k.commands` entry point
    (`kar98k report`, from the operator side): found at run time, never imported from here."""
    return [entry.load() for entry in entry_points(group="kar98k.commands")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kar98k",
        description="Realistic, irregular load for HTTP/1.1, HTTP/2 and gRPC services.",
    )
    parser.add_argument("--version", action="version", version=f"kar98k {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in (*COMMANDS, *_plugins()):
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, return the exit code (2 for usage errors, as argparse does)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kar98k simulate … | head`: the reader left; stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
