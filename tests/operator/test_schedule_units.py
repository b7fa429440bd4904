"""Pure parts of issue 10 in the operator: history kept, runs built, kstatus conditions, the
GitOps cleanup warning."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kar98k.spec import parse_spec
from kar98k.spec.loadtestschedule import LoadTestScheduleSpec
from kar98k.spec.status import LoadTestStatus, Phase
from kar98k_operator import names
from kar98k_operator.lifecycle.cleanup import gitops_conflict
from kar98k_operator.schedules import history, new_run, ready_condition, record
from kar98k_operator.status import StatusWriter

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


@pytest.mark.parametrize(
    ("phase", "ready", "reconciling", "stalled"),
    [
        (Phase.PENDING, "False", "True", "False"),
        (Phase.RUNNING, "False", "True", "False"),
        (Phase.PAUSED, "False", "True", "False"),
        (Phase.SUCCEEDED, "True", "False", "False"),
        (Phase.FAILED, "False", "False", "True"),
    ],
)
def test_every_phase_sets_the_kstatus_conditions_at_the_observed_generation(
    phase: Phase, ready: str, reconciling: str, stalled: str
) -> None:
    writer = StatusWriter(
        None,  # type: ignore[arg-type]  # never flushed here
        namespace="perf",
        name="shop",
        current=LoadTestStatus(),
    )
    writer.set(LoadTestStatus(phase=phase, observed_generation=7, message="m"))
    conditions = {c["type"]: c for c in writer.view["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Reconciling"]["status"],
            conditions["Stalled"]["status"]) == (ready, reconciling, stalled)  # fmt: skip
    assert {c["observedGeneration"] for c in conditions.values()} == {7}


def test_cleanup_all_on_a_gitops_managed_loadtest_is_named() -> None:
    base = {"targets": [{"name": "a", "url": "http://x/"}], "pattern": {"baseTPS": 5}}
    deletes_itself = parse_spec({**base, "cleanup": {"onSuccess": "all"}})
    argo = {"annotations": {"argocd.argoproj.io/tracking-id": "perf:kar98k.dev/LoadTest:perf/x"}}
    flux = {"labels": {"kustomize.toolkit.fluxcd.io/name": "perf"}}
    assert "argocd.argoproj.io/tracking-id" in (gitops_conflict(argo, deletes_itself) or "")
    assert "kustomize.toolkit.fluxcd.io/name" in (gitops_conflict(flux, deletes_itself) or "")
    assert gitops_conflict({"labels": {"team": "x"}}, deletes_itself) is None
    assert gitops_conflict(argo, parse_spec(base)) is None  # default cleanup: pods
