"""`kar98k run` as a subprocess: exit codes, reports, Ctrl-C, and no process left behind."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from kar98k.demo import DemoHttpServer
from kit.manifests import alive, kar98k_command, manifest, pod_pids, write_manifest
from kit.wait import wait_until

pytestmark = pytest.mark.slow


async def spawn_run(
    *args: str, stdout: int = asyncio.subprocess.PIPE
) -> asyncio.subprocess.Process:
    """`kar98k run ARGS...` as a subprocess, its stderr piped."""
    return await asyncio.create_subprocess_exec(
        *kar98k_command(), "run", *args, stdout=stdout, stderr=asyncio.subprocess.PIPE
    )


def collect_stderr(proc: asyncio.subprocess.Process) -> tuple[list[str], asyncio.Task[None]]:
    """The process's stderr lines as they come, and the task reading them."""
    assert proc.stderr is not None
    stream = proc.stderr
    lines: list[str] = []

    async def read() -> None:
        async for line in stream:
            lines.append(line.decode())

    return lines, asyncio.create_task(read())


async def run_cli(*args: str, within: float = 60.0) -> tuple[int, str, str]:
    proc = await spawn_run(*args)
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_passing_run_exits_0_and_its_report_matches_the_server(
    http1_server: DemoHttpServer, tmp_path: Path
) -> None:
    """The acceptance run, shortened from 20 s to 6 s (Poisson arrivals, as by default)."""
    path = write_manifest(
        tmp_path / "lt.yaml",
        manifest(
            http1_server.url + "/fast",
            duration="1h",  # --duration wins
            pattern={"baseTPS": 150},
            thresholds={"latency": {"p99": "2s"}, "errorRate": 0.01, "minAchievedRatio": 0.8},
        ),
    )
    report = tmp_path / "out.json"
    code, out, err = await run_cli(
        str(path), "--pods", "2", "--duration", "6s", "--report", str(report), "--seed", "5"
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    served = http1_server.counter.count("/fast")
    print(f"report {data['requests_total']} server {served} target {data['target_requests']:.0f}")
    assert data["requests_total"] == pytest.approx(served, rel=0.02)
    assert data["verdict"] == "pass"
    assert data["seed"] == 5 and "seed 5 (--seed)" in err
    assert data["duration_s"] == pytest.approx(6.0, abs=0.3)
    assert "PASS" in out and "min_achieved_ratio" in out
    pids = pod_pids(err)
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)


async def test_failing_thresholds_exit_1(http1_server: DemoHttpServer, tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path / "lt.yaml",
        manifest(
            http1_server.url + "/fast",
            duration="2s",
            thresholds={"latency": {"p50": "1us"}},
        ),
    )
    code, out, err = await run_cli(str(path), "--pods", "1", "--no-live")
    assert code == 1, err
    assert "FAIL" in out and "latency.p50" in out and "exceeds the 0.001 ms ceiling" in out
    assert not any(alive(pid) for pid in pod_pids(err))


async def test_invalid_file_exits_2_with_the_error(tmp_path: Path) -> None:
    data = manifest("http://127.0.0.1:9/", pattern={"baseTPS": -5})
    path = write_manifest(tmp_path / "bad.yaml", data)
    code, _, err = await run_cli(str(path))
    assert code == 2
    assert "spec.pattern.baseTPS: must be > 0, got -5" in err
    code, _, err = await run_cli(str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err
    good = write_manifest(tmp_path / "good.yaml", manifest("http://127.0.0.1:9/"))
    code, _, err = await run_cli(str(good), "--report", str(tmp_path / "r.pdf"))
    assert code == 2 and "r.pdf" in err
    assert pod_pids(err) == []


async def test_sigint_drains_writes_every_report_and_leaves_nothing(
    http1_server: DemoHttpServer, tmp_path: Path
) -> None:
    path = write_manifest(
        tmp_path / "lt.yaml",
        manifest(http1_server.url + "/fast", duration="5m", pattern={"baseTPS": 100}),
    )
    reports = [tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.xml"]
    args = [arg for r in reports for arg in ("--report", str(r))]
    proc = await spawn_run(str(path), "--pods", "2", "--no-live", *args)
    err_lines, reader = collect_stderr(proc)
    # Running once the server has seen a second's worth of requests.
    await wait_until(lambda: http1_server.counter.count("/fast") >= 100, 20.0)
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    out = await asyncio.wait_for(proc.stdout.read(), 20.0)
    await asyncio.wait_for(proc.wait(), 5.0)
    await reader
    err = "".join(err_lines)
    assert proc.returncode == 0, err
    assert "SIGINT: stopping" in err
    for report in reports:
        assert report.stat().st_size > 0, report
    data = json.loads(reports[0].read_text())
    assert data["interrupted"] is True and data["verdict"] == "none"
    assert data["requests_total"] == pytest.approx(http1_server.counter.count("/fast"), abs=2)
    assert "<testsuite" in reports[2].read_text()
    pids = pod_pids(err)
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)
    assert "NONE" in out.decode()


async def test_second_sigint_kills_the_pods_at_once(
    http1_server: DemoHttpServer, tmp_path: Path
) -> None:
    """While the graceful stop waits for in-flight requests (a stalled target), Ctrl-C again."""
    data = manifest(http1_server.url + "/fast", duration="5m", pattern={"baseTPS": 50})
    data["spec"]["targets"][0]["timeout"] = "8s"
    path = write_manifest(tmp_path / "lt.yaml", data)
    report = tmp_path / "never.json"
    proc = await spawn_run(
        str(path),
        "--pods",
        "2",
        "--no-live",
        "--report",
        str(report),
        stdout=asyncio.subprocess.DEVNULL,
    )
    err_lines, reader = collect_stderr(proc)
    await wait_until(lambda: http1_server.counter.count("/fast") >= 20, 20.0)
    http1_server.stall(8.0)  # the drain now waits for requests the server holds
    held_from = http1_server.counter.count("/fast")
    await wait_until(lambda: http1_server.counter.count("/fast") >= held_from + 5, 5.0)
    proc.send_signal(signal.SIGINT)
    await wait_until(lambda: any("SIGINT: stopping" in line for line in err_lines), 5.0)
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 5.0)
    await reader
    err = "".join(err_lines)
    assert proc.returncode == 130, err
    assert "hard stop" in err
    assert not report.exists()
    pids = pod_pids(err)
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)
