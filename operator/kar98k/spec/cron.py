"""When a LoadTestSchedule fires: its cron schedule of runs, evaluated as a pure function of time.

Not to be confused with `pattern.schedule` (time-of-day rate multipliers inside one run): this
module decides *when runs start*. Everything here takes "now" as an argument, so tests drive it
with any clock and the operator with its own.

Semantics (written down in docs/decisions.md):

- A five-field cron expression (minute hour day-of-month month day-of-week) or a macro
  (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`) is read in
  the schedule's IANA time zone, on the wall clock, as vixie cron does across DST changes:
  a wall-clock slot that does not exist (spring-forward gap) fires at the first minute after
  the gap; a slot that exists twice (fall-back overlap) fires once, at its first occurrence.
  Each slot is one instant in UTC, and no instant is produced twice.
- Missed slots (the operator was down, or the schedule was just created) follow CronJob's
  `startingDeadlineSeconds`: only the most recent missed slot may run, never a burst; it runs
  if it is no older than the deadline (no deadline: any age), else it is skipped.
- A slot at or before the cursor (the last slot acted on, kept in status) never fires again.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from croniter import croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# A gap longer than this is not a DST change but a zone skipping a day (Samoa, 2011).
_MAX_GAP = timedelta(days=2)
# Slots searched before concluding the expression never fires (e.g. "0 0 30 2 *").
_MAX_SEARCH = 10_000
# More than any DST shift: where wall-clock search starts around a given instant.
_MARGIN = timedelta(hours=3)


class CronError(ValueError):
    """The cron expression or the time zone cannot be read."""


def expand(expression: str) -> str:
    """The five-field form of an expression (macros expanded); CronError if it is not one."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronError(f"unknown macro {text!r} (known: {', '.join(sorted(MACROS))})")
        return MACROS[text.lower()]
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"a cron schedule has five fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)} in {expression!r}"
        )
    try:
        croniter(text, datetime(2000, 1, 1))  # a naive wall clock, on purpose
    except (ValueError, KeyError) as exc:
        raise CronError(f"invalid cron schedule {expression!r}: {exc}") from None
    return text


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown IANA time zone {name!r}") from exc


def _exists(wall: datetime, zone: zoneinfo.ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def wall_to_utc(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The instant a naive wall-clock time fires at: its first occurrence when it exists twice,
    the first whole minute after the gap when it does not exist."""
    probe = wall
    while not _exists(probe, zone):
        probe += timedelta(minutes=1)
        if probe - wall > _MAX_GAP:
            raise CronError(f"{wall} never exists in {zone.key}")
    return probe.replace(tzinfo=zone, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class CronSchedule:
    """A cron schedule of runs in one time zone."""

    expression: str
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        expand(self.expression)
        zone_of(self.time_zone)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zone_of(self.time_zone)

    def slots_after(self, after: datetime) -> Iterator[datetime]:
        """Firing instants (aware, UTC) strictly after `after`, in order, each once."""
        zone = self.zone
        after = after.astimezone(UTC)
        # Start a little before the wall time of `after`: the mapping wall -> UTC is monotone
        # (gaps map forward to their end), and slots at or before `after` are filtered out.
        start = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        walls = croniter(expand(self.expression), start - _MARGIN)
        last: datetime | None = None
        for _ in range(_MAX_SEARCH):
            instant = wall_to_utc(walls.get_next(datetime), zone)
            if instant <= after or instant == last:
                continue
            last = instant
            yield instant
        raise CronError(f"{self.expression!r} does not fire within {_MAX_SEARCH} slots")

    def next_after(self, after: datetime) -> datetime:
        return next(self.slots_after(after))

    def latest_at_or_before(self, now: datetime) -> datetime | None:
        """The most recent slot at or before `now` (None if there is none in the search range):
        searched backwards, so its cost does not grow with how long ago the cursor was."""
        zone = self.zone
        now = now.astimezone(UTC)
        start = now.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        walls = croniter(expand(self.expression), start + _MARGIN + timedelta(minutes=1))
        for _ in range(_MAX_SEARCH):
            instant = wall_to_utc(walls.get_prev(datetime), zone)
            if instant <= now:
                return instant
        return None


class Action(StrEnum):
    WAIT = "wait"  # nothing due: sleep until `next`
    RUN = "run"  # start a run for `slot`
    MISSED = "missed"  # `slot` is past its starting deadline: record it as skipped


@dataclass(frozen=True)
class Due:
    action: Action
    slot: datetime | None  # the slot to run or skip
    next: datetime  # the next slot after `now`


def due(
    schedule: CronSchedule,
    *,
    now: datetime,
    cursor: datetime,
    starting_deadline: float | None,
) -> Due:
    """What to do at `now`, given the last slot acted on (`cursor`; the schedule's creation time
    when none was) and `startingDeadlineSeconds`.

    Only the most recent slot in (cursor, now] counts: older missed ones are dropped, so a
    returning operator starts at most one catch-up run, however long it was away.
    """
    now = now.astimezone(UTC)
    upcoming = schedule.next_after(now)
    slot = schedule.latest_at_or_before(now)
    if slot is None or slot <= cursor.astimezone(UTC):
        return Due(Action.WAIT, None, upcoming)
    if starting_deadline is not None and (now - slot).total_seconds() > starting_deadline:
        return Due(Action.MISSED, slot, upcoming)
    return Due(Action.RUN, slot, upcoming)


class Concurrency(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class Start(StrEnum):
    START = "start"  # create the run
    SKIP = "skip"  # Forbid with a run still active: the slot is skipped, not deferred
    REPLACE = "replace"  # delete the active runs, then create the new one


def on_slot(policy: Concurrency, active: int) -> Start:
    """What a due slot does, given how many of the schedule's runs are still active."""
    if active == 0 or policy is Concurrency.ALLOW:
        return Start.START
    if policy is Concurrency.FORBID:
        return Start.SKIP
    return Start.REPLACE


def run_name(schedule_name: str, slot: datetime) -> str:
    """`<schedule>-<yyyymmddhhmm>` of the slot in UTC: deterministic, so creating it twice
    is a conflict, never a second run. Schedule names are limited so this fits in 63."""
    return f"{schedule_name}-{slot.astimezone(UTC):%Y%m%d%H%M}"
