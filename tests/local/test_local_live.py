"""The live view: what a terminal shows and what a log line says."""

from __future__ import annotations

import asyncio
import contextlib
import io

import pytest
from kar98k.controller import ControllerEvent, LiveStatus, RunSummary
from kar98k.local.live import LiveView, progress_line, render
from kar98k.results import PodSummary
from rich.console import Console


def status(**kwargs: object) -> LiveStatus:
    summary = RunSummary(
        name="checkout",
        seed=42,
        started_at="2026-01-01T00:00:00Z",
        requests_total=1234,
        pods=[
            PodSummary(name="pod-0", share_tps=150.0, achieved_tps=149.0, requests=700),
            PodSummary(name="pod-1", ready=False, share_tps=0.0, requests=534, errors=3),
        ],
    )
    data: dict[str, object] = {
        "elapsed_s": 12.3,
        "target_tps": 300.0,
        "achieved_tps": 296.5,
        "spike_active": True,
        "paused": False,
        "ready_pods": 1,
        "desired_pods": 2,
        "tick_lag_ms": 1.5,
        "push_errors": 3,
        "rolling_p99_ms": 8.25,
        "rolling_error_rate": 0.0125,
        "summary": summary,
    }
    data.update(kwargs)
    return LiveStatus.model_validate(data)


def text_of(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_terminal_view_shows_rates_spike_latency_errors_and_pods() -> None:
    events = [ControllerEvent("pod-lost", "pod-1 left the pod pool", 11.0)]
    out = text_of(render(status(), duration=60.0, events=events))
    for expected in (
        "checkout",
        "t = 12.3s / 60s",
        "seed 42",
        "SPIKE",
        "target 300.0/s",
        "achieved 296.5/s",
        "p99 8.2 ms",
        "errors 1.25%",
        "pods 1/2 ready",
        "tick lag 1.5 ms",
        "pod-0",
        "150.0",
        "ready",
        "lost",
        "pod-1 left the pod pool",
    ):
        assert expected in out, expected


def test_paused_replaces_the_spike_marker() -> None:
    out = text_of(render(status(paused=True), duration=None, events=[]))
    assert "PAUSED" in out and "SPIKE" not in out


def test_log_line() -> None:
    line = progress_line(status(), 60.0)
    assert line.startswith("[   12.3/60s] target    300.0/s achieved    296.5/s SPIKE")
    assert "p99 8.2 ms errors 1.25% requests 1234 pods 1/2 lag 1.5 ms" in line
    assert "p99 - errors -" in progress_line(
        status(rolling_p99_ms=None, rolling_error_rate=None, spike_active=False), None
    )


@pytest.mark.looptime
async def test_view_without_a_terminal_prints_lines_and_events() -> None:
    buffer = io.StringIO()
    view = LiveView(Console(file=buffer, width=80), tty=False, duration=10.0, interval=0.05)
    view.attach(status)
    view.event(ControllerEvent("spike-begin", "spike begins (rate 300/s and rising)", 2.0))
    task = asyncio.create_task(view.run())
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "[    2.0s] spike begins (rate 300/s and rising)"
    assert len(lines) >= 3
    assert all(line.startswith("[   12.3/10s]") for line in lines[1:])  # long lines unwrapped


@pytest.mark.looptime
async def test_view_in_a_terminal_redraws() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, color_system=None)
    view = LiveView(console, tty=True, duration=10.0, interval=0.05)
    view.attach(status)
    task = asyncio.create_task(view.run())
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    out = buffer.getvalue()
    assert out.count("achieved 296.5/s") >= 2
