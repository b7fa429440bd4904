"""Property-based tests of the LoadTest spec model (hypothesis): whatever value lands in any
field, validation ends in a model or a SpecError naming paths, never another exception; what is
accepted is finite, bounded and strictly typed; mistakes are reported all in one pass."""

from __future__ import annotations

import copy
import math
from typing import Any

from hostile_values import JSON_VALUES, numbers_in, plant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kar98k.spec import LoadTest, SpecError, parse_manifest
from kar98k_loadpod.durations import MAX_DURATION_S, parse_duration
from kar98k_loadpod.targets import MAX_TARGETS

BASE: dict[str, Any] = {
    "apiVersion": "kar98k.dev/v1alpha1",
    "kind": "LoadTest",
    "metadata": {"name": "prop"},
    "spec": {
        "duration": "1m",
        "pattern": {
            "baseTPS": 100,
            "maxTPS": 300,
            "timeZone": "Europe/Paris",
            "rampUp": "10s",
            "schedule": [{"hours": ["9-17"], "days": ["mon"], "multiplier": 1.5}],
            "spikes": {"enabled": True, "meanInterval": "1m", "factor": 2},
            "noise": {"enabled": True, "amplitude": 0.1},
            "seed": 7,
        },
        "targets": [
            {
                "name": "api",
                "url": "http://127.0.0.1:9/ping",
                "weight": 2,
                "timeout": "2s",
                "headers": {"X-A": "v"},
                "healthCheck": {"interval": "5s", "timeout": "1s"},
            },
            {"name": "grpc", "protocol": "grpc", "url": "grpc://127.0.0.1:9", "weight": 1},
        ],
        "thresholds": {"errorRate": 0.01, "latency": {"p99": "500ms"}},
        "loadPods": {"replicas": 2, "maxInFlight": 64},
        "cleanup": {"ttlSecondsAfterFinished": 60},
    },
}

# Every leaf of BASE worth attacking, as a path of keys and indices.
PATHS: list[tuple[str | int, ...]] = [
    ("spec", "duration"),
    ("spec", "pattern", "baseTPS"),
    ("spec", "pattern", "maxTPS"),
    ("spec", "pattern", "timeZone"),
    ("spec", "pattern", "rampUp"),
    ("spec", "pattern", "seed"),
    ("spec", "pattern", "schedule", 0, "hours"),
    ("spec", "pattern", "schedule", 0, "multiplier"),
    ("spec", "pattern", "spikes", "meanInterval"),
    ("spec", "pattern", "spikes", "factor"),
    ("spec", "pattern", "spikes", "enabled"),
    ("spec", "pattern", "noise", "amplitude"),
    ("spec", "targets", 0, "name"),
    ("spec", "targets", 0, "url"),
    ("spec", "targets", 0, "weight"),
    ("spec", "targets", 0, "timeout"),
    ("spec", "targets", 0, "headers"),
    ("spec", "targets", 0, "healthCheck", "interval"),
    ("spec", "targets", 0, "healthCheck", "timeout"),
    ("spec", "targets", 1, "protocol"),
    ("spec", "targets", 1, "url"),
    ("spec", "thresholds", "errorRate"),
    ("spec", "thresholds", "latency", "p99"),
    ("spec", "loadPods", "replicas"),
    ("spec", "loadPods", "maxInFlight"),
    ("spec", "cleanup", "ttlSecondsAfterFinished"),
    ("spec", "targets"),
    ("spec", "pattern"),
]
NUMERIC = [
    ("spec", "pattern", "baseTPS"),
    ("spec", "pattern", "maxTPS"),
    ("spec", "pattern", "seed"),
    ("spec", "pattern", "schedule", 0, "multiplier"),
    ("spec", "pattern", "spikes", "factor"),
    ("spec", "pattern", "noise", "amplitude"),
    ("spec", "targets", 0, "weight"),
    ("spec", "thresholds", "errorRate"),
    ("spec", "loadPods", "replicas"),
    ("spec", "loadPods", "maxInFlight"),
    ("spec", "cleanup", "ttlSecondsAfterFinished"),
]


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def test_base_is_valid() -> None:
    assert isinstance(parse_manifest(copy.deepcopy(BASE)), LoadTest)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES), min_size=1, max_size=4))
def test_any_value_anywhere_is_a_model_or_a_spec_error(
    mutations: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    doc = copy.deepcopy(BASE)
    for path, value in mutations:
        try:
            plant(doc, [(path, value)])
        except (TypeError, KeyError, IndexError):
            continue  # an earlier mutation replaced a parent: nothing to attach to
    try:
        loadtest = parse_manifest(doc)
    except SpecError as exc:
        assert exc.errors
        assert all(e.path == "" or e.path.split(".")[0] in ("spec", "metadata") for e in exc.errors)
        return
    spec = loadtest.spec
    assert 1 <= len(spec.targets) <= MAX_TARGETS
    assert all(math.isfinite(f) for f in numbers_in(loadtest.model_dump()))


@settings(max_examples=100, deadline=None)
@given(path=st.sampled_from(NUMERIC), value=st.sampled_from([True, False, math.nan, math.inf, "1"]))
def test_numbers_are_strict_and_finite(path: tuple[str | int, ...], value: Any) -> None:
    doc = copy.deepcopy(BASE)
    plant(doc, [(path, value)])
    try:
        parse_manifest(doc)
    except SpecError as exc:
        assert dotted(path) in {e.path for e in exc.errors}, exc.errors
    else:
        raise AssertionError(f"{dotted(path)} = {value!r} was accepted")


# Independent mistakes, each at its own path: together they must all be reported at once.
MISTAKES: list[tuple[tuple[str | int, ...], Any, str]] = [
    (("spec", "duration"), "0s", "spec.duration"),
    (("spec", "pattern", "timeZone"), "Nowhere/Special", "spec.pattern.timeZone"),
    (("spec", "pattern", "maxTPS"), 50, "spec.pattern.maxTPS"),
    (("spec", "targets", 0, "url"), "ftp://x/", "spec.targets[0].url"),
    (("spec", "targets", 0, "timeout"), "0s", "spec.targets[0].timeout"),
    (("spec", "targets", 1, "name"), "api", "spec.targets"),
    (
        ("spec", "targets", 0, "healthCheck", "interval"),
        "0s",
        "spec.targets[0].healthCheck.interval",
    ),
    (("spec", "pattern", "spikes", "factor"), 0.5, "spec.pattern.spikes.factor"),
    (("spec", "loadPods", "replicas"), 0, "spec.loadPods.replicas"),
    (("spec", "thresholds", "errorRate"), 2, "spec.thresholds.errorRate"),
    (("spec", "targets", 0, "headers"), {"X-A": "a\nb"}, "spec.targets[0].headers"),
]


@settings(max_examples=60, deadline=None)
@given(chosen=st.lists(st.sampled_from(MISTAKES), min_size=1, max_size=6, unique_by=lambda m: m[2]))
def test_independent_mistakes_are_all_reported_in_one_pass(
    chosen: list[tuple[tuple[str | int, ...], Any, str]],
) -> None:
    doc = copy.deepcopy(BASE)
    for path, value, _ in chosen:
        plant(doc, [(path, value)])
    try:
        parse_manifest(doc)
    except SpecError as exc:
        reported = {e.path for e in exc.errors}
        assert {where for _, _, where in chosen} <= reported, exc.errors
    else:
        raise AssertionError("accepted")


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=80), st.from_regex(r"\A[0-9.]{1,400}(ns|us|ms|s|m|h)\Z")))
def test_duration_text_is_a_bounded_number_or_a_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(seconds)
    assert 0 <= seconds <= MAX_DURATION_S
