"""The LoadTestSchedule (kar98k.dev/v1alpha1): a cron schedule of runs, each a LoadTest.

`spec.schedule` here is a cron schedule of *runs*; `spec.template.spec.pattern.schedule` inside
the LoadTest it creates is the time-of-day *rate multipliers* of one run. The descriptions say
which is which, so `kubectl explain` does too. Status is modelled beside the spec (the CRD's
status schema is generated from both).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from kar98k_loadpod.model_base import WireModel
from pydantic import Field, field_validator

from .cron import MACROS, Concurrency, CronSchedule, expand, zone_of
from .model import LoadTestSpec, Metadata
from .status import Condition, StatusModel, parse_time

SCHEDULE_KIND = "LoadTestSchedule"
# A run is named `<schedule>-<yyyymmddhhmm>` and that name is a label value (<= 63).
MAX_SCHEDULE_NAME = 50
# Loose on purpose (five fields or a macro): the model parses the fields themselves.
CRON_PATTERN = r"^\s*(@(" + "|".join(m[1:] for m in MACROS) + r")|(\S+\s+){4}\S+)\s*$"


class TemplateMetadata(WireModel):
    """Labels and annotations copied onto every LoadTest the schedule creates."""

    labels: dict[str, str] = Field(default_factory=dict, description="Labels of each run.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of each run."
    )


class LoadTestTemplate(WireModel):
    """The LoadTest each firing creates: the same spec, the same rules as a LoadTest's."""

    metadata: TemplateMetadata = Field(
        default_factory=TemplateMetadata, description="Labels and annotations of each run."
    )
    spec: LoadTestSpec = Field(description="The LoadTest spec of each run.")


class LoadTestScheduleSpec(WireModel):
    """When to run a LoadTest (a cron schedule of runs) and how many finished runs to keep."""

    schedule: str = Field(
        pattern=CRON_PATTERN,
        description=(
            "Cron schedule of runs: five fields (minute hour day-of-month month day-of-week) "
            "or @yearly/@monthly/@weekly/@daily/@hourly, in timeZone. Not the time-of-day rate "
            "multipliers of a run (those are template.spec.pattern.schedule)."
        ),
    )
    time_zone: str = Field(
        default="UTC",
        description=(
            "IANA time zone the cron schedule of runs is read in (DST-aware: a slot in a "
            "spring-forward gap fires just after it, one in a fall-back overlap fires once)."
        ),
    )
    concurrency_policy: Concurrency = Field(
        default=Concurrency.FORBID,
        description=(
            "When a run is due while an earlier one is still active: Allow (both run), Forbid "
            "(skip the new slot) or Replace (stop and delete the active run, start the new one)."
        ),
    )
    suspend: bool = Field(
        default=False, description="No new runs while true (active runs continue)."
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        description=(
            "A missed slot (operator down, Forbid) may still start this long after its time; "
            "older ones are skipped. At most one missed slot ever runs. Absent: no limit."
        ),
    )
    successful_runs_history_limit: int = Field(
        default=3, ge=0, le=100, description="Finished runs that passed to keep."
    )
    failed_runs_history_limit: int = Field(
        default=1, ge=0, le=100, description="Finished runs that failed to keep."
    )
    template: LoadTestTemplate = Field(description="The LoadTest each firing creates.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        expand(value)  # CronError is a ValueError: pydantic reports it at the field
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @property
    def cron(self) -> CronSchedule:
        return CronSchedule(self.schedule, self.time_zone)


class ScheduleMetadata(Metadata):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=MAX_SCHEDULE_NAME)


class LoadTestSchedule(WireModel):
    """A whole LoadTestSchedule manifest (status is ignored on input)."""

    api_version: Literal["kar98k.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["LoadTestSchedule"]
    metadata: ScheduleMetadata
    spec: LoadTestScheduleSpec
    status: dict[str, Any] | None = Field(default=None, exclude=True)


class RunRef(StatusModel):
    """A run (LoadTest) of this schedule that has not finished."""

    name: str = Field(description="LoadTest name.")
    scheduled_time: str = Field(description="The slot it was created for (RFC 3339).")


class RunRecord(StatusModel):
    """A finished run of this schedule, with its headline figures."""

    name: str = Field(description="LoadTest name.")
    scheduled_time: str = Field(description="The slot it was created for (RFC 3339).")
    phase: str = Field(description="Succeeded or Failed.")
    verdict: str | None = Field(default=None, description="pass, fail or none.")
    achieved_tps: float | None = Field(
        default=None, alias="achievedTPS", description="Rate achieved at the end, req/s."
    )
    p99_ms: float | None = Field(default=None, description="99th percentile latency, ms.")
    error_rate: float | None = Field(default=None, description="errors / requests.")
    start_time: str | None = Field(default=None, description="When the run started (RFC 3339).")
    completion_time: str | None = Field(default=None, description="When the run ended (RFC 3339).")
    result: str | None = Field(
        default=None, description="ConfigMap holding the run's stored result, if any."
    )


class LoadTestScheduleStatus(StatusModel):
    """Observed state of a LoadTestSchedule."""

    observed_generation: int = Field(
        default=0, description="Last metadata.generation the operator acted on."
    )
    last_schedule_time: str | None = Field(
        default=None, description="Slot of the last run created (RFC 3339)."
    )
    last_skipped_time: str | None = Field(
        default=None,
        description="Last slot skipped (Forbid with a run active, or past its deadline).",
    )
    last_successful_time: str | None = Field(
        default=None, description="When the last run that passed finished (RFC 3339)."
    )
    next_schedule_time: str | None = Field(
        default=None, description="Next slot of the cron schedule of runs (RFC 3339)."
    )
    last_verdict: str | None = Field(
        default=None, description="Verdict of the last finished run: pass, fail or none."
    )
    active: list[RunRef] = Field(default_factory=list, description="Runs not finished yet.")
    active_count: int = Field(default=0, description="len(active), for kubectl get.")
    runs: list[RunRecord] = Field(
        default_factory=list, description="Finished runs kept by the history limits, newest first."
    )
    message: str = Field(default="", description="One-line summary of the current state.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions (Ready).")

    def cursor(self) -> datetime | None:
        """The last slot acted on (a run created or a slot skipped): never fired again."""
        times = [parse_time(t) for t in (self.last_schedule_time, self.last_skipped_time) if t]
        return max(times) if times else None
