"""Live progress of a local run: a compact rich display in a terminal, log lines otherwise.

Why two forms: a redrawn display is what a person at a terminal wants; in CI logs or a pipe
the same redraws would be noise, so there one plain line per interval tells the story.
Redraws happen on the event loop (rich's refresh thread is off), at most a few per second.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kar98k.controller import ControllerEvent, LiveStatus

TTY_REFRESH = 0.5  # seconds between redraws in a terminal (>= 1/s as promised)
LINE_INTERVAL = 2.0  # seconds between progress lines without a terminal
KEEP_EVENTS = 5


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def progress_line(status: LiveStatus, duration: float | None) -> str:
    """One log line: where the run is and how it is doing."""
    total = f"/{duration:g}s" if duration else "s"
    spike = " SPIKE" if status.spike_active else ""
    paused = " PAUSED" if status.paused else ""
    summary = status.summary
    return (
        f"[{status.elapsed_s:7.1f}{total}] target {status.target_tps:8.1f}/s "
        f"achieved {status.achieved_tps:8.1f}/s{spike}{paused} "
        f"p99 {_ms(status.rolling_p99_ms)} errors {_pct(status.rolling_error_rate)} "
        f"requests {summary.requests_total} pods {status.ready_pods}/{status.desired_pods} "
        f"lag {status.tick_lag_ms:.1f} ms"
    )


def render(
    status: LiveStatus, *, duration: float | None, events: list[ControllerEvent]
) -> RenderableType:
    """The terminal display: headline figures, one row per pod, the latest events."""
    summary = status.summary
    head = Table.grid(padding=(0, 2))
    for _ in range(4):
        head.add_column()
    total = f" / {duration:g}s" if duration else ""
    spike = Text("SPIKE", style="bold magenta") if status.spike_active else Text("")
    if status.paused:
        spike = Text("PAUSED", style="bold yellow")
    head.add_row(
        Text(f"{summary.name}", style="bold"),
        Text(f"t = {status.elapsed_s:.1f}s{total}"),
        Text(f"seed {summary.seed}"),
        spike,
    )
    head.add_row(
        Text(f"target {status.target_tps:.1f}/s"),
        Text(f"achieved {status.achieved_tps:.1f}/s", style="green"),
        Text(f"p99 {_ms(status.rolling_p99_ms)}"),
        Text(f"errors {_pct(status.rolling_error_rate)}"),
    )
    head.add_row(
        Text(f"requests {summary.requests_total}"),
        Text(f"pods {status.ready_pods}/{status.desired_pods} ready"),
        Text(f"tick lag {status.tick_lag_ms:.1f} ms"),
        Text(f"push errors {status.push_errors}"),
    )
    pods = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("pod", "share/s", "achieved/s", "requests", "errors", "health"):
        pods.add_column(column, justify="left" if column in ("pod", "health") else "right")
    for pod in summary.pods:
        health = Text("ready", style="green") if pod.ready else Text("lost", style="red")
        pods.add_row(
            pod.name,
            f"{pod.share_tps:.1f}",
            f"{pod.achieved_tps:.1f}",
            str(pod.requests),
            str(pod.errors),
            health,
        )
    parts: list[RenderableType] = [head, pods]
    if events:
        parts.append(
            Text("\n".join(f"{e.elapsed_s:6.1f}s {e.message}" for e in events), style="dim")
        )
    return Group(*parts)


class LiveView:
    """Shows a running controller; `event` is the controller's on_event callback."""

    def __init__(
        self,
        console: Console,
        *,
        tty: bool,
        duration: float | None,
        interval: float | None = None,
    ) -> None:
        self.console = console
        self.tty = tty
        self.duration = duration
        self.interval = interval or (TTY_REFRESH if tty else LINE_INTERVAL)
        self._status: Callable[[], LiveStatus] | None = None
        self._events: deque[ControllerEvent] = deque(maxlen=KEEP_EVENTS)

    def attach(self, status: Callable[[], LiveStatus]) -> None:
        self._status = status

    def event(self, event: ControllerEvent) -> None:
        self._events.append(event)
        if not self.tty:
            line = f"[{event.elapsed_s:7.1f}s] {event.message}"
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    async def run(self) -> None:
        """Redraw until cancelled."""
        if self.tty:
            await self._run_tty()
        else:
            await self._run_lines()

    async def _run_tty(self) -> None:
        with Live(
            Text("starting..."), console=self.console, auto_refresh=False, transient=False
        ) as live:
            try:
                while True:
                    if self._status is not None:
                        live.update(self._render(), refresh=True)
                    await asyncio.sleep(self.interval)
            finally:
                if self._status is not None:
                    live.update(self._render(), refresh=True)

    async def _run_lines(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._status is not None:
                line = progress_line(self._status(), self.duration)
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _render(self) -> RenderableType:
        assert self._status is not None
        return render(self._status(), duration=self.duration, events=list(self._events))
