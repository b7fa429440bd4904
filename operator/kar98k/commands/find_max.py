"""`kar98k find-max FILE`: the highest rate the target sustains under the LoadTest's curve."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..local import run_local
from ..spec.model import LoadTest, Search
from . import EXIT_USAGE, Subparsers
from ._manifest import load_or_exit_code
from .run import add_local_arguments, pods_of


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "find-max",
        help="find the highest rate the target sustains (capacity search, no cluster)",
        description=(
            "Raise the LoadTest's base rate step by step (the whole curve scales with it), "
            "judge each step by the LoadTest's thresholds on that step's window, bracket the "
            "knee, bisect to spec.search.resolution and confirm the best passing rate with a "
            "longer window. Settings from spec.search (defaults when absent). Exit 0 when a "
            "rate passed, 1 when not even the first step did, 2 for bad input. See "
            "docs/find-max.md."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="LoadTest manifest (YAML)")
    add_local_arguments(parser)
    parser.set_defaults(handler=run)


def search_problems(manifest: LoadTest) -> list[str]:
    """Why this LoadTest cannot be searched (it needs a ceiling a step can fail)."""
    thresholds = manifest.spec.thresholds
    latency = thresholds.latency
    if thresholds.error_rate is None and all(
        v is None for v in (latency.p50, latency.p95, latency.p99)
    ):
        return [
            "spec.thresholds: a search needs a latency ceiling or an errorRate to judge each "
            "step by"
        ]
    return []


def run(args: argparse.Namespace) -> int:
    manifest = load_or_exit_code(args.file, invalid=EXIT_USAGE)
    if isinstance(manifest, int):
        return manifest
    problems = search_problems(manifest)
    if problems:
        for problem in problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(
        run_local(
            manifest,
            pods=pods_of(args, manifest.spec),
            duration=None,
            reports=[Path(p) for p in args.report],
            seed=args.seed,
            live=False if args.no_live else None,
            search=manifest.spec.search or Search(),
        )
    )
