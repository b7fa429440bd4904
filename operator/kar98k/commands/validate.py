"""`kar98k validate FILE...`: check manifests without a cluster; every error at once."""

from __future__ import annotations

import argparse
import sys

from ..spec import ManifestReadError
from . import EXIT_INVALID, EXIT_OK, EXIT_USAGE, Subparsers
from ._manifest import check_file, print_errors


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check LoadTest and LoadTestSchedule manifests",
        description=(
            "Validate LoadTest and LoadTestSchedule manifests. Exit 0 when all are valid, "
            "1 when any has errors (each printed as FILE: path: message), "
            "2 when a file is unreadable or not YAML."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="manifest (YAML)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    worst = EXIT_OK
    for path in args.files:
        worst = max(worst, validate_file(path))
    return worst


def validate_file(path: str) -> int:
    try:
        checked = check_file(path)
    except ManifestReadError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    code = EXIT_OK
    for item in checked:
        if item.error is not None:
            print_errors(item.label, item.error, sys.stderr)
            code = EXIT_INVALID
        else:
            print(f"{item.label}: valid")
    return code
