"""`kar98k`: one entry point; each sub-command lives in its own module under kar98k.commands.

A command module exposes `register(subparsers)`, which adds its parser and sets
`handler=<function(args) -> exit code>`; a module may instead expose `add_arguments(parser)`
and `run(args)`, and gets a parser named after it, with help from its docstring. Modules
listed in COMMANDS that do not exist yet are skipped, so commands can land one at a time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from . import __version__
from .commands import Subparsers

# The extension point: to add `kar98k NAME`, write kar98k/commands/NAME.py and list NAME here.
COMMANDS: tuple[str, ...] = ("validate", "simulate", "run", "demo")


def command_modules(names: Sequence[str] = COMMANDS) -> list[ModuleType]:
    """The command modules that exist; a missing module is skipped, a broken one raises."""
    modules: list[ModuleType] = []
    for name in names:
        qualified = f"{__package__}.commands.{name}"
        try:
            modules.append(importlib.import_module(qualified))
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise  # the module exists but one of its imports is missing: say so
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kar98k",
        description="Realistic, irregular load for HTTP/1.1, HTTP/2 and gRPC services.",
    )
    parser.add_argument("--version", action="version", version=f"kar98k {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in command_modules():
        register(module, subparsers)
    return parser


def register(module: ModuleType, subparsers: Subparsers) -> None:
    """Add one command module's parser, whichever of the two shapes it has."""
    if callable(hook := getattr(module, "register", None)):
        hook(subparsers)
        return
    add_arguments, run = getattr(module, "add_arguments", None), getattr(module, "run", None)
    if not (callable(add_arguments) and callable(run)):
        raise TypeError(
            f"{module.__name__} needs register(subparsers), or add_arguments(parser) and run(args)"
        )
    name = module.__name__.rsplit(".", 1)[-1]
    doc = (module.__doc__ or name).strip()
    summary = doc.splitlines()[0].split(": ", 1)[-1].rstrip(".")
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


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
