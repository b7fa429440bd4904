"""The Argo CD health checks (docs/argocd/*.lua), run by a real Lua interpreter (lupa) against
LoadTest and LoadTestSchedule objects captured from the real API server in
tests/operator/test_operator_schedule.py (refresh: KAR98K_CAPTURE_STATUS=1)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime

REPO = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).resolve().parent / "captured"
SCRIPTS = {
    "LoadTest": REPO / "docs" / "argocd" / "loadtest.lua",
    "LoadTestSchedule": REPO / "docs" / "argocd" / "loadtestschedule.lua",
}


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """What Argo CD does: the object as the global `obj`, the script's returned table read."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPTS[obj["kind"]].read_text())
    return str(result["status"]), str(result["message"] or "")


def captured(label: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURED / f"{label}.json").read_text())
    return data


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("loadtest-running", "Progressing"),
        ("loadtest-succeeded", "Healthy"),
        ("loadtest-failed", "Degraded"),
        ("schedule-healthy", "Healthy"),
        ("schedule-last-run-failed", "Degraded"),
        ("schedule-invalid", "Degraded"),
        ("schedule-suspended", "Suspended"),
    ],
)
def test_captured_objects_get_the_health_argo_should_show(label: str, expected: str) -> None:
    status, message = health(captured(label))
    assert status == expected, message
    assert message


def test_a_loadtest_the_operator_has_not_seen_is_progressing() -> None:
    fresh = captured("loadtest-succeeded")
    fresh.pop("status")
    assert health(fresh)[0] == "Progressing"
    # A spec edit not yet observed (generation moved past observedGeneration): not Healthy.
    edited = captured("loadtest-succeeded")
    edited["metadata"]["generation"] = edited["status"]["observedGeneration"] + 1
    assert health(edited)[0] == "Progressing"


def test_a_paused_run_is_suspended() -> None:
    paused = copy.deepcopy(captured("loadtest-running"))
    paused["status"]["phase"] = "Paused"
    assert health(paused)[0] == "Suspended"


def test_a_schedule_not_yet_observed_is_progressing() -> None:
    schedule = captured("schedule-healthy")
    schedule["metadata"]["generation"] = schedule["status"]["observedGeneration"] + 1
    assert health(schedule)[0] == "Progressing"
