"""S(t): priority, ties, time zones and DST, read on the wall clock of the pattern's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from kar98k.pattern.schedule import Schedule, weekly_table
from kar98k.spec.model import ScheduleEntry
from kit.patterns import MONDAY, make_engine

HOUR = 3600.0


def entries(*items: dict[str, object]) -> list[ScheduleEntry]:
    return [ScheduleEntry.model_validate(item) for item in items]


def slot(day: int, hour: int) -> int:
    return day * 24 + hour


def test_no_match_is_one() -> None:
    table = weekly_table(entries({"hours": [9], "multiplier": 2}))
    assert table[slot(0, 9)] == 2
    assert table[slot(0, 10)] == 1.0
    assert weekly_table([]) == (1.0,) * 168


def test_highest_priority_wins_regardless_of_order() -> None:
    table = weekly_table(
        entries(
            {"hours": ["9-17"], "multiplier": 3, "priority": 5},
            {"hours": ["0-23"], "multiplier": 0.5, "priority": 1},
        )
    )
    assert table[slot(2, 12)] == 3
    assert table[slot(2, 20)] == 0.5


def test_a_tie_goes_to_the_later_entry() -> None:
    table = weekly_table(
        entries(
            {"hours": [12], "multiplier": 2, "priority": 1},
            {"hours": [12], "multiplier": 4, "priority": 1},
            {"hours": [12], "multiplier": 9, "priority": 0},
        )
    )
    assert table[slot(0, 12)] == 4


def test_days_restrict_an_entry() -> None:
    table = weekly_table(entries({"hours": [10], "days": ["sat", "sun"], "multiplier": 0.2}))
    assert table[slot(5, 10)] == 0.2 and table[slot(6, 10)] == 0.2
    assert table[slot(4, 10)] == 1.0


def test_engine_reads_the_schedule_in_its_time_zone() -> None:
    schedule = [{"hours": [9], "multiplier": 2}]
    utc = make_engine(schedule=schedule)
    new_york = make_engine(schedule=schedule, timeZone="America/New_York")
    # MONDAY is 00:00 UTC = 19:00 (Sunday) in New York (EST, UTC-5) in January.
    assert utc.at(9 * HOUR).schedule == 2
    assert new_york.at(9 * HOUR).schedule == 1.0
    assert new_york.at(14 * HOUR).schedule == 2  # 14:00 UTC = 09:00 EST
    assert new_york.at(15 * HOUR - 0.001).schedule == 2
    assert new_york.at(15 * HOUR).schedule == 1.0


def test_spring_forward_skips_the_missing_hour() -> None:
    # Europe/Berlin, 2026-03-29: at 01:00 UTC the wall clock jumps from 02:00 to 03:00.
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 local on the 29th
    engine = make_engine(
        start=start,
        timeZone="Europe/Berlin",
        schedule=[{"hours": [2], "multiplier": 5}, {"hours": [3], "multiplier": 3}],
    )
    values = [engine.at(m * 60.0).schedule for m in range(24 * 60)]
    assert 5 not in values  # 02:xx never shows on the wall that day
    assert engine.at(1 * HOUR).schedule == 1.0  # 01:00 local
    assert engine.at(2 * HOUR).schedule == 3  # 01:00 UTC is already 03:00 CEST
    assert engine.at(3 * HOUR - 1).schedule == 3
    assert engine.at(3 * HOUR).schedule == 1.0  # 04:00 CEST
    assert values.count(3) == 60  # a single wall-clock hour of 03:xx


def test_fall_back_repeats_the_hour() -> None:
    # Europe/Berlin, 2026-10-25: at 01:00 UTC the wall clock goes back from 03:00 to 02:00.
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # 00:00 CEST on the 25th
    engine = make_engine(
        start=start, timeZone="Europe/Berlin", schedule=[{"hours": [2], "multiplier": 5}]
    )
    minutes = [engine.at(m * 60.0).schedule for m in range(25 * 60)]
    assert minutes.count(5) == 120  # 02:00-02:59 CEST, then 02:00-02:59 CET again
    assert engine.at(2 * HOUR).schedule == 5
    assert engine.at(4 * HOUR).schedule == 1.0  # 03:00 CET


@pytest.mark.parametrize(
    "zone", ["Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns", "Europe/Berlin", "UTC"]
)
def test_cached_lookup_equals_the_direct_wall_clock(zone: str) -> None:
    """Zones with :30/:45 offsets and a 30-minute DST shift: cache and direct reading agree."""
    table_entries = entries(*({"hours": [h], "multiplier": float(h + 1)} for h in range(24)))
    schedule = Schedule(table_entries, ZoneInfo(zone))
    table = weekly_table(table_entries)
    start = datetime(2026, 3, 27, tzinfo=UTC).timestamp()  # covers March/April DST changes
    for i in range(0, 14 * 24 * 60, 7):
        ts = start + i * 60.0 + 0.5
        local = datetime.fromtimestamp(ts, ZoneInfo(zone))
        assert schedule.multiplier(ts) == table[local.weekday() * 24 + local.hour]


def test_weekday_uses_the_local_date() -> None:
    # Monday 00:00 UTC is still Sunday in Los Angeles.
    engine = make_engine(
        timeZone="America/Los_Angeles",
        schedule=[{"days": ["sun"], "multiplier": 0.25}],
    )
    assert engine.at(0).schedule == 0.25
    assert engine.at(8 * HOUR).schedule == 1.0  # 00:00 Monday in LA
    assert MONDAY.weekday() == 0
