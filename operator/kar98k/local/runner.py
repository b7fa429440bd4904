"""`run_local`: a whole load test on this machine — pods, controller, live view, reports, verdict.

Exit codes: 0 pass (or no thresholds), 1 thresholds failed, 2 invalid input, pods that could
not start, or reports that could not be written. Ctrl-C (or SIGTERM) once: stop gracefully —
drain the pods, judge what ran, write every report. Twice: kill the pods at once, no reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kar98k.controller import Controller, RunSummary
from kar98k.report import check_report_path, write_report
from kar98k.report.wording import delivered_text, unaccounted_text
from kar98k.search.engine import SearchEngine
from kar98k.spec.model import LoadTest, LoadTestSpec, Search

from .live import LiveView
from .processes import LocalPods, PodStartError

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INVALID = 2
EXIT_HARD_STOP = 130
MAX_PODS = 64
LOCAL_STATS_INTERVAL = 1.0  # fresher live figures; a killed pod loses at most ~1 s of counts
LOCAL_START_TIMEOUT = 60.0


def pick_seed(spec: LoadTestSpec, cli_seed: int | None) -> tuple[int, str]:
    """spec.pattern.seed, else --seed, else a fresh random seed; with where it came from."""
    if spec.pattern.seed is not None:
        return spec.pattern.seed, "spec.pattern.seed"
    if cli_seed is not None:
        return cli_seed, "--seed"
    return secrets.randbelow(2**31), "random"


def check_inputs(pods: int, duration: float | None, reports: Sequence[Path]) -> list[str]:
    """Everything wrong with the command-line inputs (the manifest is already validated)."""
    problems: list[str] = []
    if not 1 <= pods <= MAX_PODS:
        problems.append(f"--pods: must be 1..{MAX_PODS}, got {pods}")
    if duration is not None and duration <= 0:
        problems.append(f"--duration: must be > 0, got {duration:g}s")
    for path in reports:
        try:
            check_report_path(Path(path))
        except ValueError as exc:
            problems.append(f"--report {path}: {exc}")
    return problems


def write_reports(summary: RunSummary, reports: Sequence[Path], console: Console) -> bool:
    """Write every report; False when one could not be written (each failure is printed)."""
    ok = True
    for path in reports:
        try:
            write_report(summary, Path(path))
        except (OSError, ValueError) as exc:
            console.print(f"[red]could not write report {path}: {exc}[/red]")
            ok = False
        else:
            console.print(f"report written: {path}")
    return ok


@dataclass
class _Interrupts:
    """First signal: graceful stop; second: hard stop."""

    console: Console
    count: int = 0
    controller: Controller | None = None
    pods: LocalPods | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def __call__(self, sig: signal.Signals) -> None:
        self.count += 1
        if self.count == 1 and self.controller is not None:
            self.console.print(
                f"{sig.name}: stopping — draining pods and writing reports "
                "(press Ctrl-C again to kill the pods at once)"
            )
            self.controller.stop()
            return
        self.console.print(f"{sig.name}: hard stop — killing the load pods")
        if self.pods is not None:
            self.pods.kill_now()
        for task in self.tasks:
            task.cancel()

    @property
    def hard(self) -> bool:
        return self.count >= 2 or (self.count >= 1 and self.controller is None)


async def run_local(
    manifest: LoadTest,
    *,
    pods: int,
    duration: float | None,
    reports: Sequence[Path],
    seed: int | None,
    live: bool | None = None,
    search: Search | None = None,
) -> int:
    """Run `manifest` with `pods` local load pods; returns the exit code (see module doc).

    With `search`, run a capacity search instead of the curve as given: exit 0 when a rate
    passed, 1 when not even the first step did."""
    # Pipes and CI logs get wide lines: wrapped table cells are hard to read and to grep.
    out = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 120)
    err = Console(file=sys.stderr, highlight=False)
    problems = check_inputs(pods, duration, reports)
    if problems:
        for problem in problems:
            err.print(problem, markup=False)
        return EXIT_INVALID
    update: dict[str, Any] = {}
    if duration is not None:
        update["duration"] = duration
    spec = manifest.spec.model_copy(
        update=update | {"load_pods": manifest.spec.load_pods.model_copy(update={"replicas": pods})}
    )
    seed_value, seed_source = pick_seed(spec, seed)
    name = manifest.metadata.name
    total = f"{spec.duration:g}s" if spec.duration else "until Ctrl-C"
    if search is not None:
        total = "capacity search"
    err.print(f"{name}: {pods} load pod(s), {total}, seed {seed_value} ({seed_source})")

    loop = asyncio.get_running_loop()
    interrupts = _Interrupts(err)
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, interrupts, sig)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        handled.append(sig)
    local = LocalPods(pods, start_timeout=min(spec.load_pods.start_timeout, LOCAL_START_TIMEOUT))
    interrupts.pods = local
    try:
        start = asyncio.create_task(local.start())
        interrupts.tasks = [start]
        try:
            await start
        except PodStartError as exc:
            err.print(f"could not start the load pods: {exc}", markup=False)
            return EXIT_INVALID
        except asyncio.CancelledError:
            if not interrupts.hard:
                raise
            err.print("interrupted while starting the load pods")
            return EXIT_INVALID
        for pod in local.pods:
            err.print(f"{pod.name} pid {pod.pid} at {pod.base_url}", markup=False)
        summary = await _drive(
            spec,
            local=local,
            name=name,
            seed=seed_value,
            live=live,
            err=err,
            interrupts=interrupts,
            search=search,
        )
        if summary is None:
            err.print("hard stop: load pods killed, no reports written")
            return EXIT_HARD_STOP
        written = write_reports(summary, reports, err)
        if summary.search is not None:
            print_search(summary, out)
        else:
            print_summary(summary, out)
        if not written:
            return EXIT_INVALID
        return EXIT_FAIL if summary.verdict == "fail" else EXIT_PASS
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await local.stop()
        if local.pods:
            err.print(f"stopped {len(local.pods)} load pod(s)")


async def _drive(
    spec: LoadTestSpec,
    *,
    local: LocalPods,
    name: str,
    seed: int,
    live: bool | None,
    err: Console,
    interrupts: _Interrupts,
    search: Search | None = None,
) -> RunSummary | None:
    """Run the controller (or a search around it) with the live view; None after a hard
    stop."""
    tty = err.is_terminal if live is None else live
    view = LiveView(err, tty=tty, duration=spec.duration)
    controller = Controller(
        spec,
        local,
        name=name,
        seed=seed,
        start=datetime.now(UTC),
        on_event=view.event,
        stats_interval=LOCAL_STATS_INTERVAL,
    )
    view.attach(controller.live)
    interrupts.controller = controller
    work = SearchEngine(controller, search).run() if search is not None else controller.run()
    run = asyncio.create_task(work)
    view_task = asyncio.create_task(view.run())
    interrupts.tasks = [run, view_task]
    try:
        return await run
    except asyncio.CancelledError:
        if not interrupts.hard:
            raise
        return None
    finally:
        view_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await view_task


def print_search(summary: RunSummary, console: Console) -> None:
    """The capacity search's steps and its answer."""
    answer = summary.search
    assert answer is not None
    steps = Table(title="capacity search: steps (each judged on its own window)")
    for column in ("#", "phase", "rate/s", "achieved/s", "p50 ms", "p99 ms", "errors", "result"):
        steps.add_column(column, justify="left" if column in ("phase", "result") else "right")
    for step in answer.steps:
        mark = "[green]pass[/green]" if step.passed else f"[red]FAIL[/red] {step.reason}"
        steps.add_row(
            str(step.index),
            step.phase,
            f"{step.rate:.1f}",
            f"{step.achieved_tps:.1f}",
            f"{step.p50_ms:.1f}",
            f"{step.p99_ms:.1f}",
            f"{step.error_rate:.2%}",
            mark,
        )
    console.print(steps)
    console.print(
        f"{summary.requests_total} requests in {summary.duration_s:.1f}s, seed {summary.seed}, "
        f"late / dropped {summary.late_sends} / {summary.dropped}"
        + (" (interrupted)" if summary.interrupted else "")
    )
    style = "green" if answer.found else "red"
    console.print(f"[{style}]{answer.message}[/{style}]")
    if answer.limited_by is not None:
        console.print(f"limited by: {answer.limited_by}")
    if answer.advice:
        console.print(f"[yellow]{answer.advice}[/yellow]")


def print_summary(summary: RunSummary, console: Console) -> None:
    """The end-of-run tables: headline figures, latency, targets, checks, verdict, trips."""
    style = {"pass": "green", "fail": "red"}.get(summary.verdict, "yellow")
    head = Table(title=f"kar98k run: {summary.name}", show_header=False, box=None)
    head.add_column(style="bold")
    head.add_column()
    at_least = "at least " if summary.unaccounted_max else ""
    rows = [
        (
            "verdict",
            f"[{style}]{summary.verdict.upper()}[/{style}]"
            + (" (interrupted)" if summary.interrupted else ""),
        ),
        ("seed", str(summary.seed)),
        ("duration", f"{summary.duration_s:.1f}s"),
        (
            "requests",
            f"{at_least}{summary.requests_total} of {summary.target_requests:.0f} asked",
        ),
        ("delivered", delivered_text(summary)),
        (
            "rate",
            f"achieved {summary.achieved_tps:.1f}/s, target mean {summary.target_tps_mean:.1f}/s",
        ),
        ("errors", f"{summary.errors_total} ({summary.error_rate:.2%})"),
        ("late / dropped", f"{summary.late_sends} / {summary.dropped}"),
        (
            "tick lag",
            f"max {summary.controller.tick_lag_ms_max:.1f} ms, "
            f"p99 {summary.controller.tick_lag_ms_p99:.1f} ms",
        ),
    ]
    lost = unaccounted_text(summary)
    if lost is not None:
        rows.append(("unaccounted", f"[yellow]{lost}[/yellow]"))
    for key, value in rows:
        head.add_row(key, value)
    console.print(head)
    lat = Table(title="latency (ms)")
    for column in ("", "p50", "p95", "p99", "max", "mean"):
        lat.add_column(column, justify="right")
    for label, figures in (
        ("corrected", summary.latency_ms.corrected),
        ("raw", summary.latency_ms.raw),
    ):
        lat.add_row(
            label, *(f"{getattr(figures, k):.2f}" for k in ("p50", "p95", "p99", "max", "mean"))
        )
    console.print(lat)
    if summary.targets:
        targets = Table(title="targets")
        for column in ("target", "requests", "errors", "p99 corrected", "healthy"):
            targets.add_column(column, justify="left" if column == "target" else "right")
        for tname, target in sorted(summary.targets.items()):
            targets.add_row(
                tname,
                str(target.requests),
                f"{target.errors} ({target.error_rate:.2%})",
                f"{target.latency_ms.corrected.p99:.2f} ms",
                "not checked"
                if target.health_checked is False
                else "yes"
                if target.healthy
                else "no",
            )
        console.print(targets)
    if summary.checks:
        checks = Table(title="thresholds")
        checks.add_column("check")
        checks.add_column("result")
        checks.add_column("detail")
        for check in summary.checks:
            mark = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
            checks.add_row(check.name, mark, check.message)
        console.print(checks)
    else:
        console.print("no thresholds set: verdict none")
    print_safety_trips(summary, console)


def print_safety_trips(summary: RunSummary, console: Console) -> None:
    """spec.safety's trips, one line each (an aborted run says why it failed here)."""
    for trip in summary.safety_trips:
        closed = (
            f", closed at {trip.closed_at_s:.1f}s ({trip.closed_by})"
            if trip.closed_at_s is not None
            else ", not closed"
        )
        console.print(
            f"safety breaker tripped at {trip.at_s:.1f}s ({trip.rule}, {trip.action}): "
            f"{trip.message}{closed}",
            markup=False,
        )
