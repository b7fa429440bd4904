"""Property-based tests of the control API's plan parsing (hypothesis): any body ends in a Plan or
a 400-style BadBody naming fields, never another exception; what is accepted is strict, finite
and bounded; and a refused plan never changes the plan in force."""

from __future__ import annotations

import asyncio
import copy
import json
import math
from typing import Any

from hostile_values import JSON_VALUES, numbers_in, plant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kar98k_loadpod.api import BadBody, parse_plan
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.runtime import Draining, PlanRejected, PodRuntime, StaleEpoch
from kar98k_loadpod.targets import MAX_TARGETS

BASE: dict[str, Any] = {
    "epoch": 3,
    "rate": 10.0,
    "leaseSeconds": 5,
    "maxInFlight": 8,
    "arrival": "uniform",
    "seed": 1,
    "labels": {"loadtest": "prop"},
    "targets": [
        {
            "name": "a",
            "url": "http://127.0.0.1:9/x",
            "weight": 1,
            "timeout": "1s",
            "headers": {"X-A": "v"},
            "healthCheck": {"interval": "5s", "timeout": "1s"},
        },
        {"name": "g", "protocol": "grpc", "url": "grpc://127.0.0.1:9", "grpc": {"message": {}}},
    ],
}
FIELDS: list[tuple[str | int, ...]] = [
    ("epoch",),
    ("rate",),
    ("leaseSeconds",),
    ("maxInFlight",),
    ("arrival",),
    ("seed",),
    ("labels",),
    ("targets",),
    ("targets", 0),
    ("targets", 0, "name"),
    ("targets", 0, "url"),
    ("targets", 0, "weight"),
    ("targets", 0, "timeout"),
    ("targets", 0, "headers"),
    ("targets", 0, "method"),
    ("targets", 0, "healthCheck"),
    ("targets", 0, "healthCheck", "interval"),
    ("targets", 0, "tlsInsecureSkipVerify"),
    ("targets", 1, "grpc", "message"),
]
NUMBERS = [
    (("epoch",), "epoch"),
    (("rate",), "rate"),
    (("leaseSeconds",), "leaseSeconds"),
    (("maxInFlight",), "maxInFlight"),
    (("seed",), "seed"),
    (("targets", 0, "weight"), "targets[0].weight"),
    (("targets", 0, "timeout"), "targets[0].timeout"),
    (("targets", 0, "healthCheck", "interval"), "targets[0].healthCheck.interval"),
    (("targets", 0, "healthCheck", "timeout"), "targets[0].healthCheck.timeout"),
]


def parse(body: bytes) -> Plan | BadBody:
    async def run() -> Plan | BadBody:
        try:
            return await parse_plan(body)
        except BadBody as exc:
            return exc

    return asyncio.run(run())


def test_base_is_valid() -> None:
    assert isinstance(parse(json.dumps(BASE).encode()), Plan)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(FIELDS), JSON_VALUES), min_size=1, max_size=3))
def test_any_plan_body_is_a_plan_or_a_400(
    mutations: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    doc = copy.deepcopy(BASE)
    plant(doc, mutations)
    result = parse(json.dumps(doc).encode())
    if isinstance(result, BadBody):
        assert result.message in ("invalid plan", "malformed JSON")
        assert result.details and all(isinstance(d, str) and d for d in result.details)
        assert "\r" not in json.dumps(result.details)  # a refused header value is never echoed raw
        return
    assert len(result.targets) <= MAX_TARGETS
    # gRPC messages are the target's payload (bounded in depth and size), not our numbers.
    ours = result.model_dump(exclude={"targets": {"__all__": {"grpc"}}})
    assert all(math.isfinite(n) for n in numbers_in(ours))
    assert not isinstance(result.epoch, bool)
    for t in result.targets:
        assert all("\r" not in v and "\n" not in v for v in t.headers.values())


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_are_a_plan_or_a_400(data: bytes) -> None:
    result = parse(data)
    assert isinstance(result, Plan | BadBody)


@settings(max_examples=40, deadline=None)
@given(depth=st.integers(min_value=990, max_value=50_000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_a_400(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    result = parse((opener * depth + "1" + closer * depth).encode())
    # Either the parser's own limit ("nested too deeply") or, below it, a body that parses
    # and is not a plan: a 400 either way, never a RecursionError and a 500.
    assert isinstance(result, BadBody)
    assert result.message in ("malformed JSON", "invalid plan")


@settings(max_examples=100, deadline=None)
@given(
    field=st.sampled_from(NUMBERS),
    value=st.sampled_from([True, False, math.nan, math.inf, -math.inf, "1", 10**400]),
)
def test_numbers_are_strict_and_finite(
    field: tuple[tuple[str | int, ...], str], value: Any
) -> None:
    path, wire = field
    doc = copy.deepcopy(BASE)
    plant(doc, [(path, value)])
    result = parse(json.dumps(doc).encode())
    assert isinstance(result, BadBody), f"{wire} = {value!r} accepted"
    assert any(d.startswith((f"{wire}: ", f"{wire}.")) for d in result.details), result.details


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(FIELDS), JSON_VALUES), min_size=1, max_size=3))
def test_a_refused_plan_never_changes_the_plan_in_force(
    mutations: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    async def run() -> None:
        runtime = PodRuntime("prop")
        runtime.start()
        try:
            good = Plan.model_validate({**BASE, "rate": 0})
            runtime.apply(good)
            doc = copy.deepcopy(BASE)
            doc["epoch"] = 4
            plant(doc, mutations)
            try:
                plan = await parse_plan(json.dumps(doc).encode())
            except BadBody:
                assert runtime.plan is good and runtime.epoch == 3
                return
            try:
                await runtime.apply_plan(plan.model_copy(update={"rate": 0.0}))
            except (StaleEpoch, PlanRejected, Draining):
                assert runtime.plan is good and runtime.epoch == 3
        finally:
            await runtime.close()

    asyncio.run(run())
