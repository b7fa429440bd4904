"""LoadTestSchedule: one supervisor per schedule that creates a LoadTest at each due slot.

The decisions are pure (`kar98k.spec.cron`: which slot is due; `history` below: which runs to
keep); this module reads the cluster, acts, and reports. Restart safety comes from two things:
the cursor (the last slot acted on) lives in status, and a run's name is its slot, so creating it
again is a 409 that is taken as "already created", never a second run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kar98k.spec.cron import Action, Start, due, on_slot, run_name
from kar98k.spec.loadtestschedule import (
    LoadTestScheduleSpec,
    LoadTestScheduleStatus,
    RunRecord,
    RunRef,
)
from kar98k.spec.status import FINISHED_PHASES, Condition, Phase, format_time, parse_time
from pydantic import ValidationError

from . import events, names
from .children import owner_reference
from .kube import JSON, Conflict, Kube, KubeError, path

log = logging.getLogger(__name__)

# While runs are active the supervisor looks at them this often (their phase, for history).
ACTIVE_POLL = 2.0
# With nothing active it still re-reads at least this often (a missed watch costs no more).
IDLE_POLL = 30.0


def loadtests_path(namespace: str, name: str | None = None) -> str:
    return path(names.API_VERSION, names.PLURAL, namespace=namespace, name=name)


def schedule_status_path(namespace: str, name: str) -> str:
    base = path(names.API_VERSION, names.SCHEDULE_PLURAL, namespace=namespace, name=name)
    return f"{base}/status"


def slot_of(run: Mapping[str, Any]) -> str:
    annotations = (run.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(names.ANNOTATION_SLOT, ""))


def phase_of(run: Mapping[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase") or Phase.PENDING.value)


def is_finished(run: Mapping[str, Any]) -> bool:
    return phase_of(run) in {p.value for p in FINISHED_PHASES}


@dataclass(frozen=True)
class History:
    """Finished runs split into those kept (newest first) and those to delete."""

    kept: list[JSON]
    pruned: list[JSON]


def history(finished: list[JSON], *, successful: int, failed: int) -> History:
    """Keep the newest `successful` Succeeded runs and the newest `failed` Failed runs."""
    newest_first = sorted(finished, key=slot_of, reverse=True)
    kept: list[JSON] = []
    pruned: list[JSON] = []
    counts = {Phase.SUCCEEDED.value: 0, Phase.FAILED.value: 0}
    limits = {Phase.SUCCEEDED.value: successful, Phase.FAILED.value: failed}
    for run in newest_first:
        phase = phase_of(run)
        if counts[phase] < limits[phase]:
            counts[phase] += 1
            kept.append(run)
        else:
            pruned.append(run)
    return History(kept, pruned)


def record(run: Mapping[str, Any]) -> RunRecord:
    """The headline figures of a finished run, for the schedule's status."""
    status = run.get("status") or {}
    latency = status.get("latencyMs") or {}
    return RunRecord(
        name=str(run["metadata"]["name"]),
        scheduled_time=slot_of(run),
        phase=phase_of(run),
        verdict=status.get("verdict"),
        achieved_tps=status.get("achievedTPS"),
        p99_ms=latency.get("p99"),
        error_rate=status.get("errorRate"),
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime"),
        result=status.get("result"),
    )


def new_run(schedule: Mapping[str, Any], spec: LoadTestScheduleSpec, slot: datetime) -> JSON:
    """The LoadTest for one slot: the template, named for the slot, owned by the schedule."""
    meta = schedule["metadata"]
    template = spec.template
    labels = {**template.metadata.labels, names.LABEL_SCHEDULE: meta["name"]}
    annotations = {**template.metadata.annotations, names.ANNOTATION_SLOT: format_time(slot)}
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": run_name(meta["name"], slot),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference({**schedule, "kind": names.SCHEDULE_KIND})],
        },
        "spec": template.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def ready_condition(
    old: list[Condition], status: bool, reason: str, message: str, generation: int
) -> list[Condition]:
    """kstatus: Ready with observedGeneration; lastTransitionTime moves only on a flip."""
    text = "True" if status else "False"
    previous = next((c for c in old if c.type == "Ready"), None)
    moved = previous is None or previous.status != text
    stamp = format_time(datetime.now(UTC)) if moved or previous is None else None
    ready = Condition(
        type="Ready",
        status=text,
        reason=reason,
        message=message,
        last_transition_time=stamp or (previous.last_transition_time if previous else ""),
        observed_generation=generation,
    )
    return [*(c for c in old if c.type != "Ready"), ready]


class ScheduleSupervisor:
    """Creates, replaces, skips and prunes the runs of one LoadTestSchedule."""

    def __init__(
        self,
        body: Mapping[str, Any],
        kube: Kube,
        *,
        is_stopped: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.body = body
        self.kube = kube
        self.is_stopped = is_stopped
        self.clock = clock
        self._wake = asyncio.Event()
        self._written: JSON | None = None
        # What this supervisor last wrote: the body kopf hands over may lag our own patches,
        # and a stale cursor read back would be a slot fired twice.
        self._status: LoadTestScheduleStatus | None = None

    def wake(self) -> None:
        self._wake.set()

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.body.get("metadata") or {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def serve(self) -> None:
        """Until stopped: one pass, then sleep until the next slot or a change."""
        while not self.is_stopped():
            try:
                pause = await self.step()
            except (KubeError, OSError, TimeoutError) as exc:
                log.warning("schedule %s: %s; retrying", self.meta.get("name"), exc)
                pause = ACTIVE_POLL
            self._wake.clear()
            if self.is_stopped():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=pause)

    async def step(self) -> float:
        """One pass over the schedule; returns how long to sleep."""
        namespace, name = self.meta["namespace"], self.meta["name"]
        generation = int(self.meta.get("generation") or 0)
        status = (self._status or _read_status(self.body.get("status"))).model_copy(deep=True)
        try:
            spec = LoadTestScheduleSpec.model_validate(self.body.get("spec") or {})
        except ValidationError as exc:
            problem = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            status.conditions = ready_condition(
                status.conditions, False, "InvalidSpec", problem[:500], generation
            )
            status.observed_generation = generation
            status.message = f"invalid spec: {problem}"[:500]
            await self._write(namespace, name, status)
            return IDLE_POLL

        runs = await self._runs(namespace, name)
        active = [r for r in runs if not is_finished(r)]
        finished = [r for r in runs if is_finished(r)]
        kept = history(
            finished,
            successful=spec.successful_runs_history_limit,
            failed=spec.failed_runs_history_limit,
        )
        for run in kept.pruned:
            await self.kube.delete(loadtests_path(namespace, run["metadata"]["name"]))
            events.post(self.body, "RunPruned", f"deleted {run['metadata']['name']} (history)")

        now = self.now()
        created_at = self.meta.get("creationTimestamp")
        cursor = status.cursor() or (parse_time(created_at) if created_at else now)
        decision = due(
            spec.cron, now=now, cursor=cursor, starting_deadline=spec.starting_deadline_seconds
        )
        if not spec.suspend and decision.slot is not None:
            active = await self._act(spec, decision.action, decision.slot, active, status)

        newest = sorted(finished, key=slot_of, reverse=True)
        kept_records = [record(r) for r in kept.kept]
        status.runs = kept_records
        status.active = [
            RunRef(name=r["metadata"]["name"], scheduled_time=slot_of(r)) for r in active
        ]
        status.active_count = len(active)
        if newest:
            last = record(newest[0])
            status.last_verdict = last.verdict or (
                "fail" if last.phase == Phase.FAILED.value else "none"
            )
        passed = [r for r in newest if phase_of(r) == Phase.SUCCEEDED.value]
        if passed:
            status.last_successful_time = record(passed[0]).completion_time
        status.next_schedule_time = None if spec.suspend else format_time(decision.next)
        status.observed_generation = generation
        status.message = (
            "suspended"
            if spec.suspend
            else f"{len(active)} active; next run {format_time(decision.next)}"
        )
        status.conditions = ready_condition(
            status.conditions,
            True,
            "Suspended" if spec.suspend else "Scheduled",
            status.message,
            generation,
        )
        await self._write(namespace, name, status)
        until_next = (decision.next - self.now()).total_seconds() + 0.05
        return max(0.05, min(until_next, ACTIVE_POLL if active else IDLE_POLL))

    async def _runs(self, namespace: str, name: str) -> list[JSON]:
        selector = names.selector({names.LABEL_SCHEDULE: name})
        listing = await self.kube.list(loadtests_path(namespace), label_selector=selector)
        uid = self.meta.get("uid")
        return [
            item
            for item in listing.get("items") or []
            if any(o.get("uid") == uid for o in item["metadata"].get("ownerReferences") or [])
            and not item["metadata"].get("deletionTimestamp")  # being deleted: gone for us
        ]

    async def _act(
        self,
        spec: LoadTestScheduleSpec,
        action: Action,
        slot: datetime,
        active: list[JSON],
        status: LoadTestScheduleStatus,
    ) -> list[JSON]:
        namespace = self.meta["namespace"]
        when = format_time(slot)
        if action is Action.MISSED:
            status.last_skipped_time = when
            events.post(
                self.body,
                "MissedSchedule",
                f"slot {when} is past startingDeadlineSeconds "
                f"({spec.starting_deadline_seconds}s): skipped",
                warning=True,
            )
            return active
        decision = on_slot(spec.concurrency_policy, len(active))
        if decision is Start.SKIP:
            status.last_skipped_time = when
            running = ", ".join(r["metadata"]["name"] for r in active)
            events.post(self.body, "RunSkipped", f"slot {when}: Forbid, still active: {running}")
            return active
        if decision is Start.REPLACE:
            for run in active:
                await self.kube.delete(loadtests_path(namespace, run["metadata"]["name"]))
                events.post(self.body, "RunReplaced", f"deleted {run['metadata']['name']}")
            active = []
        body = new_run(self.body, spec, slot)
        try:
            created = await self.kube.create(loadtests_path(namespace), body)
            events.post(self.body, "RunCreated", f"created {body['metadata']['name']} for {when}")
        except Conflict:
            # Created before a restart, its slot not yet in status: the same run, not a new one.
            created = await self.kube.get(loadtests_path(namespace, body["metadata"]["name"]))
        status.last_schedule_time = when
        name = body["metadata"]["name"]
        # After a 409 the run may already be among the active ones: listed once.
        return [*(r for r in active if r["metadata"]["name"] != name), created]

    async def _write(self, namespace: str, name: str, status: LoadTestScheduleStatus) -> None:
        payload = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if payload == self._written:
            return
        # Top-level fields now absent are deleted (JSON merge patch null), e.g. Next when
        # suspended; nested None values were dropped above (a null in a list is invalid).
        patch = {key: None for key in (self._written or {}) if key not in payload} | payload
        await self.kube.merge_patch(schedule_status_path(namespace, name), {"status": patch})
        self._written = payload
        self._status = status


def _read_status(raw: Any) -> LoadTestScheduleStatus:
    try:
        return LoadTestScheduleStatus.model_validate(dict(raw or {}))
    except ValidationError:
        log.warning("ignoring an unreadable LoadTestSchedule status")
        return LoadTestScheduleStatus()
