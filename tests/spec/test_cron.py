"""The cron schedule of runs as a pure function of time: DST, macros, deadlines, policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from kar98k.spec.cron import (
    Action,
    Concurrency,
    CronError,
    CronSchedule,
    Start,
    due,
    on_slot,
    run_name,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slots(expression: str, zone: str, after: str, count: int) -> list[str]:
    found = islice(CronSchedule(expression, zone).slots_after(utc(after)), count)
    return [f"{s:%Y-%m-%d %H:%M}" for s in found]


# America/New_York, 2026: clocks jump 02:00 EST -> 03:00 EDT on Mar 8 and fall back
# 02:00 EDT -> 01:00 EST on Nov 1. Europe/Berlin: 02:00 CET -> 03:00 CEST on Mar 29,
# 03:00 CEST -> 02:00 CET on Oct 25.


def test_daily_slot_in_the_spring_gap_fires_just_after_it_and_never_skips_a_day() -> None:
    assert slots("30 2 * * *", "America/New_York", "2026-03-07 00:00", 3) == [
        "2026-03-07 07:30",  # 02:30 EST
        "2026-03-08 07:00",  # 02:30 does not exist: 03:00 EDT, the first minute after the gap
        "2026-03-09 06:30",  # 02:30 EDT
    ]
    assert slots("30 2 * * *", "Europe/Berlin", "2026-03-28 00:00", 3) == [
        "2026-03-28 01:30",  # 02:30 CET
        "2026-03-29 01:00",  # gap: 03:00 CEST
        "2026-03-30 00:30",  # 02:30 CEST
    ]


def test_slots_in_the_gap_collapse_into_one_firing() -> None:
    # 02:00 and 02:30 EST do not exist; both map to 03:00 EDT, which is also a slot of its own.
    assert slots("*/30 * * * *", "America/New_York", "2026-03-08 06:00", 4) == [
        "2026-03-08 06:30",  # 01:30 EST
        "2026-03-08 07:00",  # 03:00 EDT (and the lost 02:00, 02:30): once
        "2026-03-08 07:30",  # 03:30 EDT
        "2026-03-08 08:00",
    ]


def test_a_slot_in_the_fall_back_overlap_fires_once_at_its_first_occurrence() -> None:
    assert slots("30 1 * * *", "America/New_York", "2026-10-31 12:00", 2) == [
        "2026-11-01 05:30",  # 01:30 EDT; the second 01:30 (EST, 06:30Z) does not fire again
        "2026-11-02 06:30",  # 01:30 EST
    ]
    assert slots("30 2 * * *", "Europe/Berlin", "2026-10-24 12:00", 2) == [
        "2026-10-25 00:30",  # 02:30 CEST, first of the two
        "2026-10-26 01:30",  # 02:30 CET
    ]
    # Half-hourly: the repeated wall-clock hour fires only on its first pass.
    assert slots("*/30 * * * *", "America/New_York", "2026-11-01 04:45", 4) == [
        "2026-11-01 05:00",
        "2026-11-01 05:30",
        "2026-11-01 07:00",  # 02:00 EST; 01:00 and 01:30 EST already fired as EDT
        "2026-11-01 07:30",
    ]


def test_slots_are_strictly_after_the_given_instant_even_inside_the_overlap() -> None:
    # 06:15Z is 01:15 EST, the second pass: the 01:30 wall slot already fired (05:30Z).
    assert slots("30 1 * * *", "America/New_York", "2026-11-01 06:15", 1) == ["2026-11-02 06:30"]
    assert slots("0 9 * * *", "UTC", "2026-01-01 09:00", 1) == ["2026-01-02 09:00"]


def test_macros_read_in_the_time_zone() -> None:
    assert slots("@daily", "Asia/Seoul", "2026-12-06 00:00", 2) == [
        "2026-12-06 15:00",  # midnight KST
        "2026-12-07 15:00",
    ]
    assert slots("@midnight", "UTC", "2026-12-06 00:00", 1) == ["2026-12-07 00:00"]
    assert slots("@hourly", "UTC", "2026-12-06 10:20", 2) == [
        "2026-12-06 11:00",
        "2026-12-06 12:00",
    ]
    assert slots("@weekly", "UTC", "2026-12-06 00:00", 1) == ["2026-12-13 00:00"]  # a Sunday
    assert slots("@monthly", "UTC", "2026-12-06 00:00", 1) == ["2027-01-01 00:00"]
    assert slots("@yearly", "UTC", "2026-12-06 00:00", 1) == ["2027-01-01 00:00"]
    assert slots("@annually", "Europe/Berlin", "2026-12-06 00:00", 1) == ["2026-12-31 23:00"]
    assert slots("0 9 * * 1-5", "Asia/Seoul", "2026-12-03 12:00", 3) == [
        "2026-12-04 00:00",  # Fri 09:00 KST
        "2026-12-07 00:00",  # Mon (the weekend skipped)
        "2026-12-08 00:00",
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("@fortnightly", "UTC", "unknown macro"),
        ("0 9 * * 1-5 2026", "UTC", "five fields"),
        ("0 9 * *", "UTC", "five fields"),
        ("61 9 * * *", "UTC", "invalid cron"),
        ("0 9 * * *", "Mars/Olympus", "unknown IANA time zone"),
    ],
)
def test_bad_expressions_and_zones_are_refused(expression: str, zone: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule(expression, zone)


HOURLY = CronSchedule("0 * * * *", "UTC")


def test_a_due_slot_runs_once_and_then_waits() -> None:
    now = utc("2026-12-06 10:00:05")
    first = due(HOURLY, now=now, cursor=utc("2026-12-06 09:30"), starting_deadline=None)
    assert (first.action, first.slot, first.next) == (
        Action.RUN,
        utc("2026-12-06 10:00"),
        utc("2026-12-06 11:00"),
    )
    # The slot is now the cursor (status.lastScheduleTime): a restart re-evaluates, never refires.
    again = due(HOURLY, now=now + timedelta(minutes=5), cursor=first.slot, starting_deadline=None)
    assert again.action is Action.WAIT and again.slot is None


def test_a_new_schedule_does_not_fire_for_slots_before_it_existed() -> None:
    created = utc("2026-12-06 10:20")
    result = due(HOURLY, now=created + timedelta(seconds=3), cursor=created, starting_deadline=None)
    assert result.action is Action.WAIT and result.next == utc("2026-12-06 11:00")


def test_missed_slots_give_one_catch_up_run_never_a_burst() -> None:
    # Operator down from 06:30 to 10:10: four slots missed, only the latest runs.
    result = due(
        HOURLY, now=utc("2026-12-06 10:10"), cursor=utc("2026-12-06 06:00"), starting_deadline=None
    )
    assert (result.action, result.slot) == (Action.RUN, utc("2026-12-06 10:00"))


def test_a_missed_slot_older_than_the_deadline_is_skipped() -> None:
    now = utc("2026-12-06 10:10")
    late = due(HOURLY, now=now, cursor=utc("2026-12-06 06:00"), starting_deadline=300)
    assert (late.action, late.slot) == (Action.MISSED, utc("2026-12-06 10:00"))
    in_time = due(HOURLY, now=now, cursor=utc("2026-12-06 06:00"), starting_deadline=900)
    assert (in_time.action, in_time.slot) == (Action.RUN, utc("2026-12-06 10:00"))
    # Exactly at the deadline still runs; one second later it does not.
    edge = utc("2026-12-06 10:05")
    assert due(HOURLY, now=edge, cursor=utc("2026-12-06 09:00"), starting_deadline=300).action is (
        Action.RUN
    )
    assert (
        due(
            HOURLY, now=edge + timedelta(seconds=1), cursor=utc("2026-12-06 09:00"),
            starting_deadline=300,
        ).action
        is Action.MISSED
    )  # fmt: skip


@pytest.mark.parametrize(
    ("deadline", "caught_up", "skipped_slots"),
    [(600, [], ["10:00"]), (None, ["10:00"], [])],
    ids=["deadline-600s", "no-deadline"],
)
def test_an_operator_loop_on_a_fake_clock_fires_every_slot_exactly_once(
    deadline: int | None, caught_up: list[str], skipped_slots: list[str]
) -> None:
    """Drive `due` as the operator does, every 20 s for three hours, with an outage from 09:05
    to 10:12 (four slots missed): one run per slot, at most one catch-up for the outage."""
    every_15 = CronSchedule("*/15 * * * *", "Europe/Berlin")
    start = utc("2026-12-06 08:02")
    cursor = start
    fired: list[datetime] = []
    skipped: list[datetime] = []
    down = (utc("2026-12-06 09:05"), utc("2026-12-06 10:12"))
    now = start
    while now < start + timedelta(hours=3):
        now += timedelta(seconds=20)
        if down[0] <= now < down[1]:
            continue
        result = due(every_15, now=now, cursor=cursor, starting_deadline=deadline)
        if result.action is Action.RUN and result.slot is not None:
            fired.append(result.slot)
            cursor = result.slot  # what status.lastScheduleTime keeps across restarts
        elif result.action is Action.MISSED and result.slot is not None:
            skipped.append(result.slot)
            cursor = result.slot  # status.lastSkippedTime
    assert len(fired) == len(set(fired))
    # Back at 10:12: the latest missed slot (10:00) runs if the deadline allows, else it is
    # skipped; 09:15..09:45 are never run either way.
    assert [f"{s:%H:%M}" for s in fired] == [
        "08:15", "08:30", "08:45", "09:00", *caught_up, "10:15", "10:30", "10:45", "11:00"
    ]  # fmt: skip
    assert [f"{s:%H:%M}" for s in skipped] == skipped_slots


@pytest.mark.parametrize(
    ("policy", "active", "expected"),
    [
        (Concurrency.ALLOW, 0, Start.START),
        (Concurrency.ALLOW, 2, Start.START),
        (Concurrency.FORBID, 0, Start.START),
        (Concurrency.FORBID, 1, Start.SKIP),
        (Concurrency.REPLACE, 0, Start.START),
        (Concurrency.REPLACE, 1, Start.REPLACE),
    ],
)
def test_concurrency_policy_decisions(policy: Concurrency, active: int, expected: Start) -> None:
    assert on_slot(policy, active) is expected


def test_run_names_are_the_slot_in_utc_and_deterministic() -> None:
    slot = CronSchedule("0 9 * * *", "Asia/Seoul").next_after(utc("2026-12-06 00:00"))
    assert run_name("checkout-nightly", slot) == "checkout-nightly-202612070000"
    assert run_name("checkout-nightly", slot) == run_name("checkout-nightly", slot)
