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
from kar98k_operator.kube import Conflict
from kar98k_operator.lifecycle.cleanup import gitops_conflict
from kar98k_operator.schedules import (
    ScheduleSupervisor,
    history,
    new_run,
    ready_condition,
    record,
)
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


class FakeKube:
    """In memory: LoadTests by name; a create of an existing name is a 409, as on a server."""

    def __init__(self, existing: list[dict[str, Any]] | None = None) -> None:
        self.loadtests = {r["metadata"]["name"]: r for r in existing or []}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.status: dict[str, Any] = {}

    async def list(self, url_path: str, *, label_selector: str | None = None) -> dict[str, Any]:
        return {"items": list(self.loadtests.values())}

    async def create(self, url_path: str, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if name in self.loadtests:
            raise Conflict(409, "AlreadyExists", name)
        self.created.append(name)
        self.loadtests[name] = obj
        return obj

    async def get(self, url_path: str) -> dict[str, Any]:
        return self.loadtests[url_path.rsplit("/", 1)[-1]]

    async def delete(self, url_path: str, *, missing_ok: bool = True) -> None:
        name = url_path.rsplit("/", 1)[-1]
        self.deleted.append(name)
        self.loadtests.pop(name, None)

    async def merge_patch(self, url_path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.status = patch["status"]
        return {}


def body_of(policy: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = SPEC.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec.update(schedule="*/10 * * * *", timeZone="UTC", concurrencyPolicy=policy)
    meta = {**SCHEDULE["metadata"], "creationTimestamp": "2026-12-06T09:55:00Z"}
    return {**SCHEDULE, "metadata": meta, "spec": spec, "status": status or {}}


def owned(name: str, slot: str, phase: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "annotations": {names.ANNOTATION_SLOT: slot},
            "ownerReferences": [{"uid": "u-1"}],
        },
        "status": {"phase": phase},
    }


def at(text: str) -> Any:
    return lambda: datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


async def test_a_restart_after_the_run_was_created_but_before_status_was_written_reuses_it() -> (
    None
):
    """The crash window: the 10:00 run exists, status still says nothing. The new supervisor
    finds the slot due, its create is a 409, and it records the slot: one run, not two."""
    kube = FakeKube([owned("nightly-202612061000", "2026-12-06T10:00:00.000Z", "Running")])
    supervisor = ScheduleSupervisor(
        body_of("Allow"),
        kube,
        is_stopped=lambda: False,
        clock=at("2026-12-06 10:00:20"),  # type: ignore[arg-type]
    )
    await supervisor.step()
    assert kube.created == []
    assert kube.status["lastScheduleTime"] == "2026-12-06T10:00:00.000Z"
    assert [a["name"] for a in kube.status["active"]] == ["nightly-202612061000"]
    assert kube.status["activeCount"] == 1
    # The next pass, same slot: nothing more.
    await supervisor.step()
    assert kube.created == []


async def test_replace_deletes_the_active_run_and_forbid_keeps_it() -> None:
    status = {"lastScheduleTime": "2026-12-06T10:00:00.000Z"}
    old = owned("nightly-202612061000", "2026-12-06T10:00:00.000Z", "Running")
    replace = FakeKube([old])
    await ScheduleSupervisor(
        body_of("Replace", status), replace, is_stopped=lambda: False,  # type: ignore[arg-type]
        clock=at("2026-12-06 10:10:01"),
    ).step()  # fmt: skip
    assert replace.deleted == ["nightly-202612061000"]
    assert replace.created == ["nightly-202612061010"]
    forbid = FakeKube([old])
    await ScheduleSupervisor(
        body_of("Forbid", status), forbid, is_stopped=lambda: False,  # type: ignore[arg-type]
        clock=at("2026-12-06 10:10:01"),
    ).step()  # fmt: skip
    assert forbid.created == [] and forbid.deleted == []
    assert forbid.status["lastSkippedTime"] == "2026-12-06T10:10:00.000Z"
    assert forbid.status["lastScheduleTime"] == "2026-12-06T10:00:00.000Z"
