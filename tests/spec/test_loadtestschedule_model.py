"""The LoadTestSchedule model: the cron schedule of runs, its zone and name, and the template."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kar98k.spec.cron import Concurrency
from kar98k.spec.loadtestschedule import LoadTestSchedule
from pydantic import ValidationError

DOC: dict[str, Any] = {
    "apiVersion": "kar98k.dev/v1alpha1",
    "kind": "LoadTestSchedule",
    "metadata": {"name": "nightly"},
    "spec": {
        "schedule": "0 9 * * 1-5",
        "timeZone": "Asia/Seoul",
        "template": {
            "spec": {"targets": [{"name": "a", "url": "http://svc/"}], "pattern": {"baseTPS": 5}}
        },
    },
}


def with_spec(**change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    doc["spec"].update(change)
    return doc


def test_defaults_are_the_safe_ones() -> None:
    spec = LoadTestSchedule.model_validate(DOC).spec
    assert spec.concurrency_policy is Concurrency.FORBID
    assert (spec.successful_runs_history_limit, spec.failed_runs_history_limit) == (3, 1)
    assert spec.suspend is False and spec.starting_deadline_seconds is None
    assert spec.cron.time_zone == "Asia/Seoul"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "0 25 * * *"}, "schedule"),
        ({"schedule": "@fortnightly"}, "schedule"),
        ({"timeZone": "Asia/Atlantis"}, "timeZone"),
        ({"concurrencyPolicy": "Queue"}, "concurrencyPolicy"),
        ({"successfulRunsHistoryLimit": -1}, "successfulRunsHistoryLimit"),
        # The template is a full LoadTest spec, with the LoadTest's rules.
        ({"template": {"spec": {"targets": [], "pattern": {"baseTPS": 5}}}}, "targets"),
        (
            {"template": {"spec": {"targets": [{"name": "a", "url": "http://s/"}],
                                   "pattern": {"baseTPS": 50, "maxTPS": 5}}}},
            "maxTPS",
        ),
    ],
)  # fmt: skip
def test_mistakes_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LoadTestSchedule.model_validate(with_spec(**change))
    assert field in str(caught.value)


def test_names_leave_room_for_the_run_suffix() -> None:
    doc = copy.deepcopy(DOC)
    doc["metadata"]["name"] = "x" * 51
    with pytest.raises(ValidationError, match="50"):
        LoadTestSchedule.model_validate(doc)
    doc["metadata"]["name"] = "x" * 50
    assert LoadTestSchedule.model_validate(doc).metadata.name == "x" * 50
