"""`kar98k find-max` for real: load-pod processes against the capacity demo server (its own
process, on 127.0.0.1), exit codes, reports, bounded time.

Why ±10 % holds. Arrivals are uniform and the server's workers are bookkept exactly, so below
its capacity C a request waits only its 20 ms service time, and past it the queue grows by
(r - C) requests a second: after the 1 s settle and 2 s window, the wait at the window's end
is 3 s · (r/C - 1). With a 250 ms p99 ceiling (230 ms of slack over the service time) a step
passes up to about r = 1.077 C and fails beyond; bisection stops when the first failing rate
is within the 10 % resolution of the best passing one, so the answer lies in about
[C / 1.1, 1.077 C], inside C ± 10 %. Loop stalls on a busy machine (load average 10 on 2
cores has been seen) can only fail a step early, lowering the answer; the 230 ms of slack is
what keeps a stall from failing a step below 0.9 C, where a 100 ms ceiling did not.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from kar98k.cli import main
from kit.capacity import FAST_SEARCH, SEARCH_THRESHOLDS, capacity_server
from kit.manifests import kar98k_command, manifest, write_manifest

pytestmark = pytest.mark.slow

SEARCH = FAST_SEARCH
THRESHOLDS = SEARCH_THRESHOLDS
# Steps at most 10 × (1 + 2 + 1) s, the confirmation 4 s longer, pods starting: ~50 s.
SEARCH_WITHIN = 90.0


def search_manifest(url: str, *, start: float, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pattern": {"baseTPS": start, "maxTPS": start * 20},
        "thresholds": THRESHOLDS,
        "loadPods": {"arrival": "uniform"},
        "search": SEARCH,
    }
    body.update(spec)
    data = manifest(url, name="find-max", **body)
    data["spec"].pop("duration")
    return data


async def find_max(*args: str) -> tuple[int, str, str, float]:
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *kar98k_command(),
        "find-max",
        *args,
        "--no-live",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SEARCH_WITHIN)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - began


@pytest.mark.parametrize(("workers", "pods"), [(6, 1), (16, 2)], ids=["300-per-s", "800-per-s"])
async def test_finds_the_capacity_within_ten_percent(
    tmp_path: Path, workers: int, pods: int
) -> None:
    with capacity_server(workers=workers, service_ms=20) as server:
        capacity = server.capacity
        path = write_manifest(
            tmp_path / "lt.yaml",
            search_manifest(server.url + "/work", start=round(capacity * 0.4)),
        )
        reports = [tmp_path / "out.json", tmp_path / "out.html", tmp_path / "junit.xml"]
        args = [str(path), "--pods", str(pods)]
        for report in reports:
            args += ["--report", str(report)]
        code, out, err, took = await find_max(*args)
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}"
    doc = json.loads(reports[0].read_text(encoding="utf-8"))
    search = doc["search"]
    found = search["maxSustainableTPS"]
    assert abs(found - capacity) <= 0.1 * capacity, (found, capacity, search["steps"])
    assert search["limitedBy"] == "target" and search["confirmed"]
    assert search["lastPassingTPS"] < search["firstFailingTPS"]
    assert search["firstFailure"]["check"] in ("latency.p99", "error_rate")
    steps = search["steps"]
    # Each step is judged on its own window: passing steps delivered their own rate.
    for step in steps:
        if step["passed"]:
            assert step["achievedTPS"] == pytest.approx(step["rate"], rel=0.1)
    assert max(s["rate"] for s in steps) <= doc["search"]["ceilingTPS"]
    assert "chart-knee-latency" in reports[1].read_text(encoding="utf-8")
    assert f"search.step-{len(steps):02d}" in reports[2].read_text(encoding="utf-8")
    assert f"max sustainable {found:.1f}/s" in out
    assert took < SEARCH_WITHIN
    print(f"capacity {capacity:g}/s: found {found:.1f}/s in {took:.1f} s, {len(steps)} steps")


async def test_a_generator_that_cannot_keep_up_is_named(tmp_path: Path) -> None:
    # Two requests in flight at 20 ms each: the one load pod sends 100/s at most, far below
    # the server's 2,500/s. Sends wait in the pod (late), so latency from the intended send
    # time climbs while latency from the actual send (what the target took) stays ~20 ms.
    with capacity_server(workers=50, service_ms=20) as server:
        body = search_manifest(
            server.url + "/work",
            start=30,  # about 0.7 requests in flight: well within the pod's two
            search={**SEARCH, "resolution": 0.25, "maxSteps": 6},
            loadPods={"arrival": "uniform", "maxInFlight": 2},
        )
        path = write_manifest(tmp_path / "lt.yaml", body)
        report = tmp_path / "out.json"
        code, out, err, _ = await find_max(str(path), "--pods", "1", "--report", str(report))
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}"
    search = json.loads(report.read_text(encoding="utf-8"))["search"]
    assert search["limitedBy"] == "generator", search
    assert search["maxSustainableTPS"] < 100
    failing = [s for s in search["steps"] if not s["passed"]]
    assert failing and all(s["limitedBy"] == "generator" for s in failing)
    assert all(s["rawP99Ms"] < 250 for s in failing)  # the target was never the problem
    assert all(s["lateSends"] + s["dropped"] > 0 for s in failing)
    assert "more load pods" in out


async def test_nothing_passing_exits_1(tmp_path: Path) -> None:
    # One worker at 20 ms serves 50/s; the first step asks 200/s. The queue holds the whole
    # step's excess, so the step fails on latency (not on 503s, which would abort it).
    with capacity_server(workers=1, service_ms=20, max_queue=2000) as server:
        body = search_manifest(server.url + "/work", start=200)
        path = write_manifest(tmp_path / "lt.yaml", body)
        report = tmp_path / "out.json"
        code, out, err, took = await find_max(str(path), "--report", str(report), "--pods", "1")
    assert code == 1, f"stdout:\n{out}\nstderr:\n{err}"
    search = json.loads(report.read_text(encoding="utf-8"))["search"]
    assert not search["found"] and search["ended"] == "nothingPassed"
    assert len(search["steps"]) == 1 and search["maxSustainableTPS"] is None
    assert "nothing passed" in out
    assert took < 30


def test_bad_input_exits_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:9/work"
    no_thresholds = search_manifest(url, start=10, thresholds={})
    bad_search = search_manifest(url, start=10, search={"growth": 0.5})
    cases = {
        "missing": ([str(tmp_path / "nope.yaml")], "nope.yaml"),
        "no thresholds": (
            [str(write_manifest(tmp_path / "a.yaml", no_thresholds))],
            "a search needs a latency ceiling or an errorRate",
        ),
        "bad search": (
            [str(write_manifest(tmp_path / "b.yaml", bad_search))],
            "spec.search.growth",
        ),
        "bad report": (
            [
                str(write_manifest(tmp_path / "c.yaml", search_manifest(url, start=10))),
                "--report",
                str(tmp_path / "r.txt"),
            ],
            "use one of .json, .html, .xml",
        ),
        "no pods": (
            [str(tmp_path / "c.yaml"), "--pods", "0"],
            "--pods: must be 1..",
        ),
    }
    for case, (args, says) in cases.items():
        assert main(["find-max", *args]) == 2, case
        err = capsys.readouterr().err
        assert says in err, (case, err)
        assert "Traceback" not in err, case
