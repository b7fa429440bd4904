"""The LoadTestSchedule supervisor's pure parts: history kept, runs built, Ready judged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kar98k.spec.loadtestschedule import LoadTestScheduleSpec
from kar98k_operator import names
from kar98k_operator.schedules import history, new_run, ready_condition, record

SCHEDULE = {
    "apiVersion": names.API_VERSION,
    "kind": names.SCHEDULE_KIND,
    "metadata": {"name": "nightly", "namespace": "perf", "uid": "u-1", "generation": 4},
}
SPEC = LoadTestScheduleSpec.model_validate(
    {
        "schedule": "@daily",
        "template": {
            "metadata": {"labels": {"team": "perf"}, "annotations": {"note": "x"}},
            "spec": {"targets": [{"name": "a", "url": "http://svc/"}], "pattern": {"baseTPS": 5}},
        },
    }
)


def run(minute: int, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"nightly-2026120600{minute:02d}",
            "annotations": {names.ANNOTATION_SLOT: f"2026-12-06T00:{minute:02d}:00.000Z"},
        },
        "status": {"phase": phase, **status},
    }


def test_history_keeps_exactly_the_newest_of_each_outcome() -> None:
    finished = [
        run(1, "Succeeded"), run(2, "Failed"), run(3, "Succeeded"), run(4, "Succeeded"),
        run(5, "Failed"), run(6, "Succeeded"),
    ]  # fmt: skip
    kept = history(finished, successful=2, failed=1)
    assert [r["metadata"]["name"][-2:] for r in kept.kept] == ["06", "05", "04"]
    assert sorted(r["metadata"]["name"][-2:] for r in kept.pruned) == ["01", "02", "03"]
    nothing = history(finished, successful=0, failed=0)
    assert not nothing.kept and len(nothing.pruned) == 6


def test_a_run_is_the_template_named_for_its_slot_and_owned_by_the_schedule() -> None:
    body = new_run(SCHEDULE, SPEC, datetime(2026, 12, 6, 15, 0, tzinfo=UTC))
    meta = body["metadata"]
    assert meta["name"] == "nightly-202612061500" and meta["namespace"] == "perf"
    assert meta["labels"] == {"team": "perf", names.LABEL_SCHEDULE: "nightly"}
    assert meta["annotations"][names.ANNOTATION_SLOT] == "2026-12-06T15:00:00.000Z"
    assert meta["annotations"]["note"] == "x"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "LoadTestSchedule", "nightly", "u-1", True
    )  # fmt: skip
    assert body["spec"]["pattern"]["baseTPS"] == 5
    assert body["kind"] == "LoadTest"


def test_record_copies_the_headline_figures() -> None:
    done = run(7, "Succeeded", verdict="pass", achievedTPS=9.5, latencyMs={"p99": 3.2},
               errorRate=0.01, result="nightly-202612060007-result")  # fmt: skip
    rec = record(done)
    assert (rec.verdict, rec.achieved_tps, rec.p99_ms, rec.error_rate) == ("pass", 9.5, 3.2, 0.01)
    assert rec.result == "nightly-202612060007-result"


def test_ready_moves_its_transition_time_only_when_it_flips() -> None:
    first = ready_condition([], True, "Scheduled", "ok", 4)
    again = ready_condition(first, True, "Scheduled", "still ok", 5)
    assert again[0].last_transition_time == first[0].last_transition_time
    assert again[0].observed_generation == 5 and again[0].message == "still ok"
    flipped = ready_condition(again, False, "InvalidSpec", "bad", 6)
    assert flipped[0].status == "False" and len(flipped) == 1
