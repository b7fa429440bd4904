"""`kar98k simulate FILE`: the target-rate curve a LoadTest would follow, without sending anything.

Output is identical across runs: the seed is spec.pattern.seed, else --seed, else 0, and the
curve starts at --start, else DEFAULT_START (a fixed Monday midnight UTC, not "now").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from kar98k_loadpod.durations import format_duration

from ..pattern import PatternEngine, row_count
from ..spec import LoadTest
from . import EXIT_INVALID, EXIT_OK, EXIT_USAGE, Subparsers, _args
from ._curve import Simulation, records, summarize, write_csv, write_json
from ._manifest import load_or_exit_code
from ._table import render_table

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # Monday 00:00 UTC
DEFAULT_SEED = 0
MAX_ROWS = 10_000_000
FORMATS = ("table", "csv", "json", "png")


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be ISO 8601 like 2026-01-05T09:00:00+01:00, got {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


_seed = _args.non_negative_int("an integer >= 0")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="print the target-rate curve of a LoadTest",
        description=(
            "Compute the target rate a LoadTest asks for, one row per step, without sending "
            "traffic. Same file and options, same output."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="LoadTest manifest (YAML)")
    parser.add_argument(
        "--duration",
        type=_args.duration,
        metavar="D",
        help="length, e.g. 1h or 7d-as-168h (default: spec.duration)",
    )
    parser.add_argument(
        "--step", type=_args.duration, default=1.0, metavar="S", help="row interval (default 1s)"
    )
    parser.add_argument(
        "--start",
        type=_instant,
        metavar="ISO8601",
        help="wall time of t = 0 (default 2026-01-05T00:00:00Z, a Monday; no offset means UTC)",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        metavar="N",
        help="seed when spec.pattern.seed is absent (default 0)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: from --output's extension, else table)",
    )
    parser.add_argument(
        "--output", metavar="PATH", help="write here instead of stdout (required for png)"
    )
    parser.set_defaults(handler=run)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
    return suffix if suffix in FORMATS else "table"


def _seed_for(loadtest: LoadTest, flag: int | None) -> int:
    spec_seed = loadtest.spec.pattern.seed
    if spec_seed is None:
        return DEFAULT_SEED if flag is None else flag
    if flag is not None and flag != spec_seed:
        print(
            f"kar98k simulate: --seed {flag} ignored: the spec sets pattern.seed {spec_seed}",
            file=sys.stderr,
        )
    return spec_seed


@contextmanager
def _opened(output: str | None) -> Iterator[TextIO]:
    if output is None or output == "-":
        yield sys.stdout
        return
    with open(output, "w", encoding="utf-8", newline="") as stream:
        yield stream


def _usage(message: str) -> int:
    print(f"kar98k simulate: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    fmt = _format(args)
    if fmt == "png" and (args.output is None or args.output == "-"):
        return _usage("--format png needs --output PATH")
    loadtest = load_or_exit_code(args.file, invalid=EXIT_INVALID)
    if isinstance(loadtest, int):
        return loadtest
    duration = args.duration if args.duration is not None else loadtest.spec.duration
    if duration is None:
        return _usage("--duration is required when the spec has no duration")
    step: float = args.step
    rows = row_count(duration, step)
    if rows == 0:
        return _usage(f"--step {format_duration(step)} is longer than --duration")
    if rows > MAX_ROWS:
        return _usage(f"{rows} rows is more than {MAX_ROWS}; use a larger --step")
    seed = _seed_for(loadtest, args.seed)
    start = args.start if args.start is not None else DEFAULT_START
    engine = PatternEngine(loadtest.spec.pattern, seed=seed, start=start)
    title = f"{loadtest.metadata.name}: target rate, seed {seed}"
    try:
        return _emit(engine, fmt=fmt, duration=duration, step=step, title=title, output=args.output)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): kar98k.cli ends quietly
    except OSError as exc:
        return _usage(f"cannot write {args.output or 'stdout'}: {exc.strerror or exc}")


def _emit(
    engine: PatternEngine, *, fmt: str, duration: float, step: float, title: str, output: str | None
) -> int:
    if fmt in ("csv", "json"):
        rows = records(engine, engine.series(duration, step), step)
        with _opened(output) as stream:
            (write_csv if fmt == "csv" else write_json)(rows, stream)
        return EXIT_OK
    points = list(engine.series(duration, step))
    sim = Simulation(engine, points, step, summarize(points, step), title)
    if fmt == "png":
        from ._plot import PlotUnavailable, write_png  # noqa: PLC0415 - matplotlib is optional

        try:
            write_png(sim, Path(str(output)))
        except PlotUnavailable as exc:
            return _usage(str(exc))
        print(f"wrote {output}", file=sys.stderr)
        return EXIT_OK
    with _opened(output) as stream:
        render_table(sim, stream)
    return EXIT_OK
