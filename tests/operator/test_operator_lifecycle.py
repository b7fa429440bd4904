"""The decisions of a LoadTest's life that need no cluster: where a daemon picks up, why a start
timed out, how a finished run is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from kar98k.results import Check, RunSummary
from kar98k.spec import parse_spec
from kar98k.spec.status import LoadTestStatus, Phase
from kar98k_operator.lifecycle.finishing import outcome
from kar98k_operator.lifecycle.resume import Finished, NewRun, Resume, next_step
from kar98k_operator.lifecycle.starting import start_timeout_message

SPEC = parse_spec(
    {"targets": [{"name": "a", "url": "http://svc/"}], "pattern": {"baseTPS": 5}, "runId": "r1"}
)
STARTED = "2024-01-01T00:00:00.000Z"


def status(phase: Phase, **fields: Any) -> LoadTestStatus:
    return LoadTestStatus.model_validate({"phase": phase, "runId": "r1", **fields})


def step(current: LoadTestStatus, *, generation: int = 1, reason: str | None = None) -> object:
    return next_step(SPEC, current, generation=generation, completed_reason=reason)


def test_an_active_run_resumes_its_curve_from_status() -> None:
    running = status(Phase.RUNNING, startTime=STARTED, seed=7, epoch=1234)
    assert step(running) == Resume(seed=7, start_time=STARTED, epoch=1234)
    assert step(status(Phase.PAUSED, startTime=STARTED, seed=7)) == Resume(7, STARTED, 0)


def test_a_run_without_its_start_or_of_another_run_id_starts_anew() -> None:
    assert step(status(Phase.STARTING, seed=7, epoch=5)) == NewRun(epoch=5)
    assert step(LoadTestStatus()) == NewRun(epoch=0)
    other = status(Phase.RUNNING, startTime=STARTED, seed=7, runId="r0", epoch=9)
    assert step(other) == NewRun(epoch=9)
    assert step(status(Phase.SUCCEEDED, runId="r0")) == NewRun(epoch=0)


def test_a_finished_run_stays_finished_unless_its_spec_failure_was_edited() -> None:
    assert step(status(Phase.SUCCEEDED)) == Finished()
    assert step(status(Phase.FAILED, observedGeneration=1), reason="ThresholdsFailed",
                generation=2) == Finished()  # fmt: skip
    invalid = status(Phase.FAILED, observedGeneration=1)
    assert step(invalid, reason="InvalidSpec", generation=1) == Finished()
    assert step(invalid, reason="InvalidSpec", generation=2) == NewRun(epoch=0)
    assert step(invalid, reason="ChildrenRejected", generation=2) == NewRun(epoch=0)


def test_start_timeout_names_each_unready_pod_and_the_missing_ones() -> None:
    message = start_timeout_message(
        [("lt-a", "ImagePullBackOff (nope)")], known=1, ready=0, need=2, replicas=3, waited=5
    )
    assert message == (
        "0/2 load pods ready after 5s (startTimeout): lt-a: ImagePullBackOff (nope); "
        "2 pod(s) not created (check the Deployment's events)"
    )
    assert start_timeout_message([], known=0, ready=0, need=1, replicas=0, waited=1).endswith(
        ": no pods"
    )


def summary(**fields: Any) -> RunSummary:
    return RunSummary(name="x", seed=1, started_at=STARTED, **fields)


@pytest.mark.parametrize(
    ("fields", "superseded", "expected"),
    [
        ({"verdict": "pass", "requests_total": 10, "achieved_tps": 2.0}, False,
         (Phase.SUCCEEDED, "Succeeded", "10 requests, 2.0 req/s, verdict pass")),
        ({"verdict": "none", "interrupted": True}, False,
         (Phase.SUCCEEDED, "Stopped", "ended before spec.duration")),
        ({"verdict": "fail", "checks": [
            Check(name="a", threshold=1, observed=2, passed=False, message="a broke"),
            Check(name="b", threshold=1, observed=0, passed=True, message="b held")]}, False,
         (Phase.FAILED, "ThresholdsFailed", "a broke")),
        ({"verdict": "fail"}, True,
         (Phase.FAILED, "Superseded", "ended early: spec.runId changed")),
    ],
)  # fmt: skip
def test_outcome_of_a_finished_run(
    fields: dict[str, Any], superseded: bool, expected: tuple[Phase, str, str]
) -> None:
    assert outcome(summary(**fields), superseded=superseded) == expected
