"""Issue 12 §4 guardrails through the operator: spec.safety's breaker and the operator-wide
limits (maxTotalTPS, allowedTargets).

The first tests are units (no cluster): the allowlist, the refusals and the TPS budget. The
others run on the session's real control plane with the chart's operator; the guardrail test
`helm upgrade`s the release with the limits set and restores the defaults afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import OPERATOR_NAMESPACE, RELEASE, ClusterUnderTest, Target
from kar98k.controller import Controller
from kar98k.results import RunSummary, SafetyTrip
from kar98k.spec import parse_spec
from kar98k.spec.model import Safety
from kar98k_operator import names
from kar98k_operator.budget import TpsBudget
from kar98k_operator.config import OperatorConfig
from kar98k_operator.guardrails import (
    ABOVE_MAX_TOTAL_TPS,
    TARGET_NOT_ALLOWED,
    TargetAllowlist,
    refusals,
)
from kar98k_operator.kube import JSON, Kube
from kar98k_operator.lifecycle.finishing import outcome
from kar98k_operator.lifecycle.live_status import restore_safety
from kit.fakepods import StaticSource
from kit.wait import holds_for, wait_until
from lt_helpers import (
    apply,
    children,
    condition,
    manifest,
    patch_lt,
    wait_event,
    wait_phase,
    wait_status,
)

# ----------------------------------------------------------------------------- units


def spec(targets: list[str], **pattern: Any) -> Any:
    return parse_spec(
        {
            "targets": [{"name": f"t{i}", "url": url} for i, url in enumerate(targets)],
            "pattern": {"baseTPS": 100, **pattern},
        }
    )


def test_allowlist_matches_globs_and_cidrs_and_never_resolves_names() -> None:
    allow = TargetAllowlist.parse(["*.svc.cluster.local", " 10.0.0.0/8", "fd00::/8", ""])
    assert allow.allows("api.perf.svc.cluster.local")
    assert allow.allows("API.Perf.SVC.cluster.local.")  # case and a trailing dot
    assert not allow.allows("svc.cluster.local.evil.example")
    assert allow.allows("10.1.2.3") and not allow.allows("11.1.2.3")
    assert allow.allows("fd00::1") and not allow.allows("::1")
    assert not allow.allows("localhost")  # a name: no CIDR admits it, whatever it resolves to
    assert TargetAllowlist.parse([]).allows("anything.example")
    with pytest.raises(ValueError, match="not a CIDR"):
        TargetAllowlist.parse(["10.0.0.300/8"])


def test_refusals_name_the_field_at_fault() -> None:
    allow = TargetAllowlist.parse(["127.0.0.1/32"])
    found = refusals(spec(["http://127.0.0.1:9/", "http://[::1]:9/"]), allow, None)
    assert [(r.reason, r.message.split(":")[0]) for r in found] == [
        (TARGET_NOT_ALLOWED, "spec.targets[1].url")
    ]
    assert "'::1'" in found[0].message and "127.0.0.1/32" in found[0].message
    # maxTPS absent: the ceiling is 10 x baseTPS, and the message says so.
    (tps,) = refusals(spec(["http://127.0.0.1:9/"]), allow, 999.0)
    assert tps.reason == ABOVE_MAX_TOTAL_TPS
    assert tps.message.startswith("spec.pattern.maxTPS: 1000 req/s (absent: 10 x baseTPS)")
    assert refusals(spec(["http://127.0.0.1:9/"], maxTPS=999), allow, 999.0) == []


def test_config_reads_the_chart_env_and_refuses_a_bad_ceiling() -> None:
    config = OperatorConfig.from_env(
        {"KAR98K_MAX_TOTAL_TPS": "1e+07", "KAR98K_ALLOWED_TARGETS": "*.svc,10.0.0.0/8"}
    )
    assert config.max_total_tps == 1e7
    assert config.allowed_targets.globs == ("*.svc",)
    none = OperatorConfig.from_env({"KAR98K_MAX_TOTAL_TPS": "0", "KAR98K_ALLOWED_TARGETS": ""})
    assert none.max_total_tps is None and none.allowed_targets.empty
    with pytest.raises(ValueError, match="KAR98K_MAX_TOTAL_TPS"):
        OperatorConfig.from_env({"KAR98K_MAX_TOTAL_TPS": "-5"})


def test_budget_shares_the_ceiling_in_proportion_and_forgets_ended_runs() -> None:
    budget = TpsBudget(300.0)
    assert budget.limit("a", 200.0) == 200.0  # alone and under: untouched
    b = budget.limit("b", 400.0)  # asks sum to 600: everyone gets half
    a = budget.limit("a", 200.0)
    assert (a, b) == (100.0, 200.0) and a + b == 300.0
    budget.release("b")
    assert budget.limit("a", 200.0) == 200.0
    assert TpsBudget(None).limit("x", 1e6) == 1e6


def test_an_aborting_breaker_is_the_completed_reason() -> None:
    summary = RunSummary(name="lt", seed=1, started_at="2026-01-01T00:00:00Z", verdict="fail")
    summary.safety_trips = [
        SafetyTrip(rule="P95Above", action="abort", measured=812.0, limit=500.0,
                   message="p95 812.0 ms above 500.0 ms", at_s=12.0, at_unix=0.0)
    ]  # fmt: skip
    phase, reason, message = outcome(summary, superseded=False)
    assert (phase.value, reason) == ("Failed", "SafetyAborted")
    assert message == "safety breaker (P95Above): p95 812.0 ms above 500.0 ms"
    summary.safety_trips[0].action = "pause"  # a pause that closed is no reason to fail
    summary.verdict = "pass"
    assert outcome(summary, superseded=False)[1] == "Succeeded"


def test_a_resumed_run_keeps_its_breaker_tripped() -> None:
    guarded = spec(["http://127.0.0.1:9/"]).model_copy(
        update={"safety": Safety.model_validate({"errorRateAbove": 0.5})}
    )

    def controller() -> Controller:
        start = datetime.now(UTC)
        return Controller(guarded, StaticSource([]), name="lt", seed=1, start=start)

    tripped = {
        "conditions": [
            {"type": "SafetyTripped", "status": "True", "reason": "ErrorRateAbove",
             "message": "pause: error rate 90.0% above 50.0% (9/10 requests)"}
        ]
    }  # fmt: skip
    held = controller()
    assert restore_safety(tripped, held)
    guard = held.safety
    assert guard is not None and guard.breaker.tripped and guard.breaker.factor == 0.0
    assert guard.breaker.last_breach is not None
    assert guard.breaker.last_breach.message == "error rate 90.0% above 50.0% (9/10 requests)"
    assert guard.trips == []  # the trip was recorded by the run before the restart
    closed = {"conditions": [{**tripped["conditions"][0], "status": "False", "reason": "Closed"}]}
    fresh = controller()
    assert not restore_safety(closed, fresh) and fresh.safety is not None
    assert not fresh.safety.breaker.tripped


# ----------------------------------------------------------------------------- cluster

FLAKY_RATE_OFF = 0.0


async def settled(target: Target, path: str) -> bool:
    """No request reached `path` within 100 ms."""
    before = target.count(path)
    await asyncio.sleep(0.1)
    return target.count(path) == before


async def wait_safety(api: Kube, ns: str, key: str, value: str, *, within: float) -> JSON:
    """The status once the SafetyTripped condition's `key` is `value`."""
    return await wait_status(
        api,
        ns,
        "guarded",
        lambda s: condition(s, "SafetyTripped").get(key) == value,
        within=within,
        what=f"SafetyTripped {key}={value}",
    )


@pytest.mark.slow
async def test_safety_breaker_pauses_the_traffic_says_why_and_resumes(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest
) -> None:
    cluster.require_local()
    assert target.server is not None
    behaviour = target.server.behaviour
    behaviour.flaky_rate = FLAKY_RATE_OFF
    body = manifest(
        "guarded",
        target.base_url + "/flaky",
        pattern={"baseTPS": 60},
        duration="5m",
        loadPods={"replicas": 1, "arrival": "uniform"},
        safety={
            "errorRateAbove": 0.5,
            "sustainedFor": "2s",
            "window": "2s",
            "resumeAfter": "3s",
        },
    )
    await apply(api, ns, body)
    await wait_until(lambda: target.count("/flaky") > 60, within=60.0, what="traffic")
    behaviour.flaky_rate = 1.0  # the target starts failing every request
    failing = time.monotonic()
    # The operator merges stats every 2 s: the 2 s window is past 50 % errors within one
    # merge, the rule holds 2 s judged at merges (<= 2 more s), the next tick pushes rate 0,
    # status is patched at most every 2 s: about 8 s, 20 s allows a busy 2-core machine.
    status = await wait_safety(api, ns, "status", "True", within=20.0)
    tripped = condition(status, "SafetyTripped")
    assert tripped["reason"] == "ErrorRateAbove", tripped
    assert "pause: error rate" in tripped["message"] and "above 50.0%" in tripped["message"]
    assert status["phase"] == "Running"  # Paused is spec.paused's; the message says why
    assert status["message"].startswith("safety breaker tripped (pause)")
    event = await wait_event(api, ns, "guarded", "SafetyTripped")
    assert event["type"] == "Warning" and "safety breaker tripped, paused" in event["message"]
    print(f"tripped about {time.monotonic() - failing:.1f}s after the target failed")
    behaviour.flaky_rate = FLAKY_RATE_OFF  # the target recovers; paused, it sees nothing yet
    await wait_until(lambda: settled(target, "/flaky"), within=3.0, what="traffic stops")
    stopped = target.count("/flaky")
    await holds_for(lambda: target.count("/flaky") == stopped, 1.0, what="no traffic")
    # Clear (empty window) for resumeAfter: the breaker closes by itself and traffic returns.
    await wait_until(lambda: target.count("/flaky") > stopped + 30, within=15.0, what="resume")
    await wait_event(api, ns, "guarded", "SafetyResumed")
    status = await wait_safety(api, ns, "reason", "Closed", within=10.0)
    assert condition(status, "SafetyTripped")["status"] == "False"
    assert status["phase"] == "Running"


@pytest.mark.slow
async def test_a_breaker_without_resume_after_holds_until_the_reset_annotation(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest
) -> None:
    cluster.require_local()
    assert target.server is not None
    behaviour = target.server.behaviour
    behaviour.flaky_rate = 1.0  # fails every request from the start
    name = "held"
    body = manifest(
        name,
        target.base_url + "/flaky",
        pattern={"baseTPS": 60},
        duration="5m",
        loadPods={"replicas": 1, "arrival": "uniform"},
        safety={"errorRateAbove": 0.5, "sustainedFor": "2s", "window": "2s"},
    )
    await apply(api, ns, body)
    # Pods starting (~10 s on a busy machine), then the trip as in the pause test (~8 s).
    await wait_status(
        api, ns, name, lambda s: condition(s, "SafetyTripped").get("status") == "True",
        within=60.0, what="SafetyTripped True",
    )  # fmt: skip
    behaviour.flaky_rate = FLAKY_RATE_OFF  # recovered, but no resumeAfter: held down
    await wait_until(lambda: settled(target, "/flaky"), within=5.0, what="traffic stops")
    stopped = target.count("/flaky")
    await holds_for(lambda: target.count("/flaky") == stopped, 2.0, what="held down")
    reset = {"metadata": {"annotations": {names.ANNOTATION_SAFETY_RESET: "by-oncall-1"}}}
    await patch_lt(api, ns, name, reset)
    await wait_until(lambda: target.count("/flaky") > stopped + 30, within=15.0, what="resume")
    status = await wait_status(
        api, ns, name, lambda s: condition(s, "SafetyTripped").get("reason") == "Closed",
        within=10.0, what="SafetyTripped Closed",
    )  # fmt: skip
    assert "closed by hand" in condition(status, "SafetyTripped")["message"]
    assert status["safetyReset"]["acknowledged"] == "by-oncall-1"
    assert status["safetyReset"]["closed"] is True
    assert status.get("phase") == "Running"
    await wait_event(api, ns, name, "SafetyResumed")


@pytest.mark.slow
async def test_an_aborting_breaker_ends_the_run_failed_and_stops_the_traffic(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest
) -> None:
    cluster.require_local()
    body = manifest(
        "doomed",
        target.base_url + "/status/503",  # fails every request from the start
        pattern={"baseTPS": 40},
        duration="5m",
        loadPods={"replicas": 1, "arrival": "uniform"},
        safety={"errorRateAbove": 0.5, "sustainedFor": "2s", "window": "2s", "action": "abort"},
    )
    await apply(api, ns, body)
    # Pods starting (~10 s on a busy machine), then the trip as in the pause test (~8 s).
    status = await wait_phase(api, ns, "doomed", "Failed", "Succeeded", within=60.0)
    completed = condition(status, "Completed")
    assert status["phase"] == "Failed" and completed["reason"] == "SafetyAborted", status
    assert completed["message"].startswith("safety breaker (ErrorRateAbove): error rate")
    assert condition(status, "SafetyTripped")["status"] == "True"
    assert status["verdict"] == "fail"
    await wait_event(api, ns, "doomed", "SafetyTripped")
    await wait_until(lambda: settled(target, "/status/503"), within=5.0, what="traffic stops")
    stopped = target.count("/status/503")
    await holds_for(lambda: target.count("/status/503") == stopped, 1.0, what="no traffic")


@contextlib.contextmanager
def chart_values(cluster: ClusterUnderTest, values: dict[str, Any]) -> Iterator[None]:
    """`helm upgrade` the session's release with `values`; back to the defaults afterwards."""
    local = cluster.require_local()
    operator = cluster.require_operator()
    local.install_chart(RELEASE, OPERATOR_NAMESPACE, values, action="upgrade")
    operator.wait_healthy(timeout=120.0)
    try:
        yield
    finally:
        local.install_chart(RELEASE, OPERATOR_NAMESPACE, None, action="upgrade")
        operator.wait_healthy(timeout=120.0)


@pytest.mark.slow
async def test_operator_guardrails_refuse_and_share_the_ceiling(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest
) -> None:
    assert target.server is not None
    ceiling = 300.0
    allowed = "127.0.0.1/32"  # the target server; other loopback addresses are outside
    with chart_values(cluster, {"operator": {"maxTotalTPS": ceiling, "allowedTargets": [allowed]}}):
        env = _operator_env(cluster)
        assert env["KAR98K_MAX_TOTAL_TPS"] == "300" and env["KAR98K_ALLOWED_TARGETS"] == allowed
        # A target outside the allowlist: Failed, the field named, no pods. (Its address is
        # loopback with nothing listening: even a broken guardrail would send nowhere else.)
        outside = manifest("outside", target.url, duration="30s")
        outside["spec"]["targets"].append({"name": "other", "url": "http://127.0.0.2:9/"})
        await apply(api, ns, outside)
        status = await wait_phase(api, ns, "outside", "Failed", within=30.0)
        applied = condition(status, "SpecApplied")
        assert applied["reason"] == TARGET_NOT_ALLOWED, applied
        assert applied["message"].startswith("spec.targets[1].url: host '127.0.0.2'")
        assert condition(status, "Completed")["reason"] == "NotAllowed"
        # A ceiling above the operator's total: Failed, spec.pattern.maxTPS named.
        greedy = manifest("greedy", target.url, pattern={"baseTPS": 100, "maxTPS": 400})
        await apply(api, ns, greedy)
        status = await wait_phase(api, ns, "greedy", "Failed", within=30.0)
        applied = condition(status, "SpecApplied")
        assert applied["reason"] == ABOVE_MAX_TOTAL_TPS, applied
        assert applied["message"].startswith("spec.pattern.maxTPS: 400 req/s")
        await wait_event(api, ns, "greedy", "NotAllowed")
        for name in ("outside", "greedy"):
            assert (await children(api, ns, name))["deployments"] == [], name
        # Two allowed runs asking 200 + 200: each gets 300 x 200 / 400 = 150 at the target.
        for name, path in (("one", "/fast"), ("two", "/status/200")):
            run = manifest(
                name,
                target.base_url + path,
                pattern={"baseTPS": 200, "maxTPS": 250},
                duration="2m",
                loadPods={"replicas": 1, "arrival": "uniform"},
            )
            await apply(api, ns, run)
        for name in ("one", "two"):
            await wait_phase(api, ns, name, "Running", within=60.0)
        await wait_until(
            lambda: target.count("/fast") > 150 and target.count("/status/200") > 150,
            within=30.0,
            what="both runs under way",
        )
        await asyncio.sleep(1.0)  # let the second run's first ask reach the shared budget
        before = (target.count("/fast"), target.count("/status/200"))
        began = time.monotonic()
        await asyncio.sleep(4.0)  # a measurement window
        seconds = time.monotonic() - began
        one = (target.count("/fast") - before[0]) / seconds
        two = (target.count("/status/200") - before[1]) / seconds
        print(f"under maxTotalTPS {ceiling:g}: {one:.1f} + {two:.1f} = {one + two:.1f} req/s")
        # Uniform arrivals: a 4 s count is exact to a few requests; 10 % covers the window's
        # edges and a loaded machine's late sends. Without the budget it would be 400.
        assert one + two <= ceiling * 1.1
        assert one + two >= ceiling * 0.8
        assert one == pytest.approx(150.0, rel=0.2) and two == pytest.approx(150.0, rel=0.2)
        # A mid-run edit outside the allowlist is not applied: the run goes on, and says why.
        moved = {"spec": {"targets": [{"name": "fast", "url": "http://127.0.0.3:9/"}]}}
        await patch_lt(api, ns, "one", moved)
        status = await wait_status(
            api,
            ns,
            "one",
            lambda s: condition(s, "SpecApplied").get("reason") == TARGET_NOT_ALLOWED,
            within=10.0,
            what="SpecApplied=False TargetNotAllowed",
        )
        assert (
            "spec.targets[0].url: host '127.0.0.3'" in condition(status, "SpecApplied")["message"]
        )
        assert status["phase"] == "Running"
        assert await target.rate(1.0, "/fast") > 50  # still on its allowed target


def _operator_env(cluster: ClusterUnderTest) -> dict[str, str]:
    """The operator container's env as the chart rendered it (values, never secrets)."""
    pod = cluster.require_operator().pod()
    container = pod["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}
