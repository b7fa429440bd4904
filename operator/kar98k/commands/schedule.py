"""`kar98k schedule next FILE`: when a LoadTestSchedule's cron schedule of runs fires next.

Printed in the schedule's own time zone (and UTC), so "every weekday at 09:00 Seoul time" can be
checked before it is committed. Not the time-of-day rate multipliers (`pattern.schedule`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from itertools import islice

from ..spec import ManifestReadError, SpecError, load_schedule
from . import EXIT_INVALID, EXIT_OK, EXIT_USAGE, Subparsers
from ._manifest import print_errors


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "schedule",
        help="inspect a LoadTestSchedule's cron schedule of runs",
        description="Inspect the cron schedule of runs of a LoadTestSchedule manifest.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    nxt = actions.add_parser(
        "next",
        help="print the next firing times",
        description=(
            "Print the next firing times of the cron schedule of runs, in the schedule's "
            "timeZone and in UTC. Exit 1 when the manifest is invalid, 2 on unreadable input."
        ),
    )
    nxt.add_argument("file", metavar="FILE", help="LoadTestSchedule manifest (YAML)")
    nxt.add_argument("--count", type=int, default=5, help="how many (default 5)")
    nxt.add_argument(
        "--from",
        dest="start",
        default=None,
        help="ISO 8601 instant to count from (default now; naive means UTC)",
    )
    nxt.set_defaults(handler=next_runs)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def next_runs(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("--count must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    start = datetime.now(UTC)
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError:
            print(f"--from: not an ISO 8601 time: {args.start!r}", file=sys.stderr)
            return EXIT_USAGE
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    try:
        schedule = load_schedule(args.file)
    except ManifestReadError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SpecError as exc:
        print_errors(args.file, exc, sys.stderr)
        return EXIT_INVALID
    cron = schedule.spec.cron
    print(f"# {schedule.metadata.name}: {cron.expression!r} in {cron.time_zone}")
    for slot in islice(cron.slots_after(start), args.count):
        local = slot.astimezone(cron.zone)
        print(f"{local.isoformat()}  {local:%a}  ({slot:%Y-%m-%dT%H:%M}Z)")
    return EXIT_OK
