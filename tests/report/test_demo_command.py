"""`kar98k demo`: the packaged manifest, URL rewriting, and a real 8 s run in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from kar98k.commands.demo import (
    DEFAULT_PORTS,
    DEFAULT_REPORTS,
    DemoPorts,
    load_demo_manifest,
    retarget,
)
from kar98k.report import report_schema

REPO = Path(__file__).resolve().parents[2]
KAR98K = Path(sys.executable).with_name("kar98k")
COUNTED = re.compile(
    r"demo target counted ([\d,]+) requests: HTTP/1.1 ([\d,]+) · HTTP/2 ([\d,]+) · gRPC ([\d,]+)"
)


def test_packaged_manifest_is_the_example() -> None:
    packaged = REPO / "operator" / "kar98k" / "commands" / "demo.yaml"
    example = REPO / "examples" / "demo.yaml"
    assert packaged.read_bytes() == example.read_bytes()
    manifest = load_demo_manifest()
    protocols = {t.protocol.value for t in manifest.spec.targets}
    assert protocols == {"http", "http2", "grpc"}
    assert manifest.spec.pattern.spikes.enabled
    assert manifest.spec.pattern.noise.enabled
    assert manifest.spec.pattern.schedule
    assert manifest.spec.thresholds.error_rate is not None


def test_packaged_search_manifest_is_the_example() -> None:
    packaged = REPO / "operator" / "kar98k" / "commands" / "demo-find-max.yaml"
    example = REPO / "examples" / "find-max.yaml"
    assert packaged.read_bytes() == example.read_bytes()
    manifest = load_demo_manifest("demo-find-max.yaml")
    assert manifest.spec.search is not None
    assert manifest.spec.targets[0].url == "http://127.0.0.1:18083/work"
    moved = retarget(manifest, DemoPorts(http=1, h2=2, grpc=3, capacity=40004))
    assert moved.spec.targets[0].url == "http://127.0.0.1:40004/work"


@pytest.mark.slow
def test_demo_find_max_finds_the_capacity_target_in_a_short_search(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(KAR98K), "demo", "--find-max", "--no-live", "--seed", "5"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 60, f"demo --find-max took {elapsed:.1f} s"
    doc = json.loads((tmp_path / "kar98k-demo-report.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(report_schema()).validate(doc)
    found = doc["search"]["maxSustainableTPS"]
    # 400/s of capacity; the curve's ±10 % noise must fit under it too, so the base rate that
    # holds is lower, and the 15 % resolution widens the margin below it.
    assert 400 * 0.6 <= found <= 400 * 1.1, doc["search"]["steps"]
    assert doc["search"]["limitedBy"] == "target"
    assert f"max sustainable {found:.1f}/s" in result.stdout
    total, *_ = _counts(result.stdout)
    assert f"capacity {total:,}" in result.stdout  # every request went to the capacity target
    html = (tmp_path / "kar98k-demo-report.html").read_text(encoding="utf-8")
    assert '<svg id="chart-knee-latency"' in html
    _no_demo_children_left(tmp_path)


def test_retarget_rewrites_only_default_demo_ports() -> None:
    manifest = load_demo_manifest()
    extra = manifest.spec.targets[0].model_copy(
        update={"name": "elsewhere", "url": "http://127.0.0.1:9999/x"}
    )
    manifest.spec.targets.append(extra)
    moved = retarget(manifest, DemoPorts(http=40001, h2=40002, grpc=40003))
    urls = {t.name: t.url for t in moved.spec.targets}
    assert urls["web-fast"] == "http://127.0.0.1:40001/fast"
    assert urls["h2c-fast"] == "http://127.0.0.1:40002/fast"
    assert urls["grpc-echo"] == "grpc://127.0.0.1:40003"
    assert urls["elsewhere"] == "http://127.0.0.1:9999/x"
    # the original is untouched
    assert manifest.spec.targets[0].url.endswith(f":{DEFAULT_PORTS.http}/fast")


def test_bad_report_extension_fails_before_starting(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(KAR98K), "demo", "--report", "out.txt"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "out.txt" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _demo_children(cwd: Path) -> set[int]:
    """Pids of demo target processes started in `cwd` (this test's own; other runs on the same
    machine start theirs elsewhere), to prove none outlives its run."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            where = (entry / "cwd").resolve()
        except OSError:
            continue
        if b"kar98k.commands.demo" in cmdline and b"--child" in cmdline and where == cwd.resolve():
            pids.add(int(entry.name))
    return pids


def _no_demo_children_left(cwd: Path, within: float = 5.0) -> None:
    """The demo target exits with its run: none is left after `within` seconds."""
    deadline = time.monotonic() + within
    while left := _demo_children(cwd):
        assert time.monotonic() < deadline, f"demo target processes left behind: {left}"
        time.sleep(0.05)


def _counts(stdout: str) -> tuple[int, int, int, int]:
    match = COUNTED.search(stdout)
    assert match, stdout
    total, http1, h2, grpc = (int(g.replace(",", "")) for g in match.groups())
    return total, http1, h2, grpc


@pytest.mark.slow
def test_demo_runs_all_three_protocols_and_writes_reports(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(KAR98K), "demo", "--duration", "8s", "--no-live", "--seed", "3"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 25, f"demo took {elapsed:.1f} s"
    for name in DEFAULT_REPORTS:
        assert (tmp_path / name).is_file(), name
    doc = json.loads((tmp_path / "kar98k-demo-report.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(report_schema()).validate(doc)
    assert doc["verdict"] == "pass"
    assert set(doc["targets"]) >= {"web-fast", "web-slow", "web-flaky", "h2c-fast", "grpc-echo"}
    total, http1, h2, grpc = _counts(result.stdout)
    assert http1 > 0 and h2 > 0 and grpc > 0
    # the server counted what the pods sent (plus a few health probes)
    assert total >= doc["requests_total"]
    assert total <= doc["requests_total"] * 1.02 + 10
    html = (tmp_path / "kar98k-demo-report.html").read_text(encoding="utf-8")
    assert '<svg id="chart-rate"' in html
    assert "open file://" in result.stdout
    _no_demo_children_left(tmp_path)


@pytest.mark.slow
def test_ctrl_c_drains_while_the_target_keeps_answering(tmp_path: Path) -> None:
    """Ctrl-C reaches the runner, not the target (own session): the drain sees no connect errors."""
    process = subprocess.Popen(
        [str(KAR98K), "demo", "--duration", "60s", "--no-live", "--report", "r.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's Ctrl-C goes to the whole foreground group
    )
    try:
        time.sleep(6)
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode in (0, 1), stdout + stderr
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["interrupted"] is True
    assert "connect_error" not in doc["outcomes"]
    assert _counts(stdout)[0] >= doc["requests_total"]
    _no_demo_children_left(tmp_path)
