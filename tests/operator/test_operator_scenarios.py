"""End to end on a real control plane: the chart's operator, real load pods, a real target server.

Every wait polls with a deadline; `target.rate(s)` sleeps only to measure a window of traffic.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from dataclasses import dataclass
from datetime import datetime

import pytest
from cluster.operator_pod import InClusterOperator
from conftest import ClusterUnderTest, Target
from kar98k.pattern import PatternEngine
from kar98k.spec import parse_spec
from kar98k_operator import names
from kar98k_operator.kube import JSON, Kube, KubeError, NotFound, path
from lt_helpers import (
    apply,
    children,
    condition,
    delete_and_wait,
    events_of,
    get_lt,
    manifest,
    patch_lt,
    running_with,
    status_of,
    wait_event,
    wait_for,
    wait_phase,
    wait_status,
)

pytestmark = pytest.mark.slow


def status_writes(cluster: ClusterUnderTest, ns: str, name: str) -> list[float]:
    """When the operator's status writes to this LoadTest reached the API server (audit log)."""
    events = cluster.require_local().audit(
        lambda e: (
            e.get("stage") == "ResponseComplete"
            and e.get("verb") in ("patch", "update")
            and (e.get("objectRef") or {}).get("resource") == "loadtests"
            and (e.get("objectRef") or {}).get("subresource") == "status"
            and (e.get("objectRef") or {}).get("namespace") == ns
            and (e.get("objectRef") or {}).get("name") == name
            and (e.get("responseStatus") or {}).get("code", 500) < 300
        )
    )
    return [datetime.fromisoformat(e["stageTimestamp"]).timestamp() for e in events]


START = 30.0  # generous deadline for pods to start on a busy 2-core machine


@dataclass(frozen=True)
class Watched:
    """The LoadTest whose status stands in for server-side counts on real clusters."""

    api: Kube
    ns: str
    name: str


async def expect_rate(
    lt: Watched,
    target: Target,
    low: float,
    high: float,
    *,
    seconds: float = 2.0,
    what: str = "rate",
) -> None:
    """Measured at our target server when we have one; else the status figure (real clusters)."""
    if target.server is not None:
        rate = await target.rate(seconds)
        print(f"\n{what}: {rate:.1f} req/s at the target over {seconds:g} s")
        assert low <= rate <= high, (
            f"{what}: the target saw {rate:.1f} req/s, not {low:g}..{high:g}"
        )
        return
    await wait_status(
        lt.api,
        lt.ns,
        lt.name,
        lambda s: low <= float(s.get("achievedTPS") or 0) <= high,
        within=15,
        what=f"{what}: achievedTPS in {low:g}..{high:g}",
    )


async def expect_rate_after(
    lt: Watched, target: Target, change: JSON, rate: float, *, what: str
) -> None:
    """Apply `change` to the LoadTest; half a second later the rate is within 25 % of `rate`."""
    await patch_lt(lt.api, lt.ns, lt.name, change)
    await asyncio.sleep(0.5)
    await expect_rate(lt, target, rate * 0.75, rate * 1.25, what=what)


async def eventually_rate(
    lt: Watched,
    target: Target,
    low: float,
    high: float,
    *,
    within: float,
    what: str,
) -> None:
    """Poll (0.5 s windows) until the rate is in range."""
    if target.server is None:
        await expect_rate(lt, target, low, high, what=what)
        return

    async def in_range() -> bool:
        return low <= await target.rate(0.5) <= high

    began = time.monotonic()
    await wait_for(in_range, within=within, what=what)
    print(f"\n{what}: in {low:g}..{high:g} req/s after {time.monotonic() - began:.1f} s")


async def test_apply_runs_at_target_rate_with_owned_children(
    api: Kube,
    ns: str,
    target: Target,
    operator: InClusterOperator | None,
    cluster: ClusterUnderTest,
) -> None:
    body = await apply(
        api, ns, manifest("steady", target.url, pattern={"baseTPS": 150}, loadPods={"replicas": 2})
    )
    uid = body["metadata"]["uid"]
    status = await wait_status(
        api, ns, "steady", running_with(2), within=START, what="Running with 2 ready pods"
    )
    assert status["desiredPods"] == 2 and status["seed"] is not None and status["startTime"]

    await expect_rate(Watched(api, ns, "steady"), target, 150 * 0.8, 150 * 1.2, seconds=3.0)
    status = await wait_status(
        api,
        ns,
        "steady",
        # The merged counters (pulled every 2 s) may trail the per-second rate by one pull.
        lambda s: (
            s.get("targetTPS") == 150
            and 150 * 0.75 <= s.get("achievedTPS", 0) <= 150 * 1.25
            and s.get("requests", 0) > 0
        ),
        within=10,
        what="status figures near 150 req/s",
    )
    assert status["requests"] > 0 and status["latencyMs"]["p99"] > 0
    assert condition(status, "PodsReady")["status"] == "True"
    assert status["targets"][0]["name"] == "fast"

    kids = await children(api, ns, "steady")
    assert len(kids["deployments"]) == 1 and len(kids["secrets"]) == 1 and len(kids["pods"]) == 2
    for child in kids["deployments"] + kids["secrets"]:
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref["uid"] == uid and ref["kind"] == "LoadTest" and ref["controller"] is True
    deploy = kids["deployments"][0]
    assert deploy["spec"]["replicas"] == 2
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The API server adds its defaults (scheme: HTTP) to what the operator asked for.
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"], probe.get("scheme", "HTTP")) == (
        "/readyz",
        "control",
        "HTTP",
    )
    token = base64.b64decode(kids["secrets"][0]["data"]["token"]).decode()
    assert len(token) >= 32

    reasons = {e["reason"] for e in await events_of(api, ns, "steady")}
    assert "Started" in reasons
    if operator is not None:
        assert token not in operator.log_text(), "the token leaked into the log"
        metrics = operator.metrics()
        series = f'{{loadtest="steady",namespace="{ns}"}}'
        assert f"kar98k_loadtest_target_requests_per_second{series} 150.0" in metrics
        assert f"kar98k_loadtest_ready_pods{series} 2.0" in metrics
    if cluster.local is not None:
        writes = status_writes(cluster, ns, "steady")
        assert len(writes) >= 3
        gaps = [b - a for a, b in itertools.pairwise(writes)]
        assert min(gaps) >= 1.7, f"status patched more often than every 2 s: {gaps}"


async def test_pause_stops_traffic_within_a_second_and_resume_restarts_it(
    api: Kube, ns: str, target: Target
) -> None:
    await apply(api, ns, manifest("pausing", target.url, pattern={"baseTPS": 120}))
    await wait_status(api, ns, "pausing", running_with(1), within=START, what="Running")
    await eventually_rate(
        Watched(api, ns, "pausing"), target, 60, 1e9, within=10, what="traffic to flow"
    )

    await patch_lt(api, ns, "pausing", {"spec": {"paused": True}})
    await asyncio.sleep(1.0)  # the contract: traffic stops within 1 s; measure right after it
    await expect_rate(
        Watched(api, ns, "pausing"), target, 0, 2, seconds=1.5, what="1 s after pausing"
    )
    await wait_phase(api, ns, "pausing", "Paused", within=5)
    await wait_event(api, ns, "pausing", "Paused")

    await patch_lt(api, ns, "pausing", {"spec": {"paused": False}})
    await asyncio.sleep(1.0)
    await expect_rate(
        Watched(api, ns, "pausing"), target, 120 * 0.7, 120 * 1.3, what="after resuming"
    )
    await wait_phase(api, ns, "pausing", "Running", within=5)
    await wait_event(api, ns, "pausing", "Resumed")


async def test_mid_run_rate_edit_applies_without_a_restart(
    api: Kube, ns: str, target: Target
) -> None:
    await apply(api, ns, manifest("editing", target.url, pattern={"baseTPS": 80}))
    before = await wait_status(api, ns, "editing", running_with(1), within=START, what="Running")

    edit = {"spec": {"pattern": {"baseTPS": 200}}}
    await expect_rate_after(Watched(api, ns, "editing"), target, edit, 200, what="after the edit")
    after = await wait_status(
        api,
        ns,
        "editing",
        lambda s: s.get("targetTPS") == 200 and s.get("observedGeneration") == 2,
        within=5,
        what="targetTPS 200 at generation 2",
    )
    assert after["startTime"] == before["startTime"], "an edit must not restart the run"
    assert condition(after, "SpecApplied")["status"] == "True"

    # Targets too: traffic moves to the new target at once.
    moved = [{"name": "health", "url": target.base_url + "/healthz"}]
    await patch_lt(api, ns, "editing", {"spec": {"targets": moved}})
    if target.server is not None:
        await asyncio.sleep(0.5)
        assert await target.rate(1.5, "/healthz") >= 200 * 0.7
        assert await target.rate(1.0, "/fast") == 0

    # A template field cannot change mid-run: the run goes on and a condition says so.
    await patch_lt(api, ns, "editing", {"spec": {"loadPods": {"image": "other/image:2"}}})
    status = await wait_status(
        api,
        ns,
        "editing",
        lambda s: condition(s, "SpecApplied").get("reason") == "RequiresNewRun",
        within=5,
        what="SpecApplied=False RequiresNewRun",
    )
    assert "spec.loadPods.image" in condition(status, "SpecApplied")["message"]
    assert status["phase"] == "Running"


async def test_manual_spike_from_the_annotation_fires_once(
    api: Kube, ns: str, target: Target
) -> None:
    spikes = {"rampUp": "0s", "rampDown": "0s"}
    await apply(api, ns, manifest("spiky", target.url, pattern={"baseTPS": 60, "spikes": spikes}))
    await wait_status(api, ns, "spiky", running_with(1), within=START, what="Running")

    value = "factor=3,duration=4s"
    annotation = {"metadata": {"annotations": {names.ANNOTATION_SPIKE: value}}}
    await expect_rate_after(
        Watched(api, ns, "spiky"), target, annotation, 180, what="during a x3 spike"
    )
    status = await wait_status(
        api,
        ns,
        "spiky",
        lambda s: (s.get("spike") or {}).get("acknowledged") == value,
        within=5,
        what="spike acknowledged in status",
    )
    fired_at = status["spike"]["at"]
    await wait_event(api, ns, "spiky", "SpikeInjected")

    # After the spike: back to base, and other edits never fire the same value again.
    await eventually_rate(
        Watched(api, ns, "spiky"), target, 0, 100, within=8, what="the spike to end"
    )
    await patch_lt(api, ns, "spiky", {"metadata": {"annotations": {"unrelated": "edit"}}})
    await asyncio.sleep(0.5)
    await expect_rate(
        Watched(api, ns, "spiky"), target, 0, 60 * 1.3, seconds=1.5, what="no second spike"
    )
    status = await status_of(api, ns, "spiky")
    assert status["spike"]["at"] == fired_at
    injected = [e for e in await events_of(api, ns, "spiky") if e["reason"] == "SpikeInjected"]
    assert sum(e.get("count", 1) for e in injected) == 1


async def test_deleted_load_pod_share_is_resplit(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest
) -> None:
    local = cluster.require_local()
    await apply(
        api, ns, manifest("resplit", target.url, pattern={"baseTPS": 160}, loadPods={"replicas": 2})
    )
    await wait_status(api, ns, "resplit", running_with(2), within=START, what="Running 2/2")
    # Cordoned nodes: the ReplicaSet's replacement stays Pending, only the survivor carries load.
    local.cordon(True)
    try:
        pods = (await children(api, ns, "resplit"))["pods"]
        victim = pods[0]["metadata"]["name"]
        await api.delete(path("v1", "pods", namespace=ns, name=victim))
        await wait_event(api, ns, "resplit", "PodLost")
        await asyncio.sleep(0.5)
        await expect_rate(
            Watched(api, ns, "resplit"),
            target,
            160 * 0.75,
            160 * 1.25,
            what="one pod carries it all",
        )
        status = await wait_status(
            api, ns, "resplit", lambda s: s.get("readyPods") == 1, within=5, what="1 ready pod"
        )
        assert condition(status, "PodsReady")["status"] == "False"
    finally:
        local.cordon(False)
    await wait_status(api, ns, "resplit", running_with(2), within=START, what="back to 2/2")


async def test_finite_runs_end_with_verdicts_and_cleanup(
    api: Kube, ns: str, target: Target
) -> None:
    passing = manifest(
        "passes",
        target.url,
        duration="4s",
        thresholds={"errorRate": 0.5, "latency": {"p99": "5s"}},
        cleanup={"onSuccess": "all", "ttlSecondsAfterFinished": 5},
    )
    failing = manifest("fails", target.url, duration="4s", thresholds={"latency": {"p50": "1us"}})
    await apply(api, ns, passing)
    await apply(api, ns, failing)

    ok = await wait_phase(api, ns, "passes", "Succeeded", "Failed", within=START + 10)
    assert ok["phase"] == "Succeeded", ok
    assert ok["verdict"] == "pass" and all(c["passed"] for c in ok["checks"])
    assert condition(ok, "ThresholdsMet")["status"] == "True"
    assert condition(ok, "Completed")["reason"] == "Succeeded"
    assert ok["requests"] > 0 and ok["completionTime"]

    bad = await wait_phase(api, ns, "fails", "Succeeded", "Failed", within=START + 10)
    assert bad["phase"] == "Failed" and bad["verdict"] == "fail"
    assert condition(bad, "Completed")["reason"] == "ThresholdsFailed"
    assert "latency.p50" in {c["name"] for c in bad["checks"] if not c["passed"]}
    assert condition(bad, "ThresholdsMet")["status"] == "False"
    verdict = await wait_event(api, ns, "fails", "Verdict")
    assert verdict["type"] == "Warning" and "latency" in verdict["message"]

    # onFailure defaults to none: the Deployment stays, scaled to zero, with its Secret.
    async def scaled_to_zero() -> bool:
        kids = await children(api, ns, "fails")
        return (
            len(kids["deployments"]) == 1
            and kids["deployments"][0]["spec"]["replicas"] == 0
            and not kids["pods"]
            and len(kids["secrets"]) == 1
        )

    await wait_for(scaled_to_zero, within=10, what="the failed run's pods scaled to 0")
    # onSuccess all + ttl 5 s: the LoadTest itself goes, and its children with it.
    await wait_for(
        lambda: _gone(api, ns, "passes"), within=15, what="the passed LoadTest to be deleted"
    )
    await wait_for(lambda: _no_children(api, ns, "passes"), within=10, what="children gone")


async def _gone(api: Kube, ns: str, name: str) -> bool:
    return await get_lt(api, ns, name) is None


async def _no_children(api: Kube, ns: str, name: str) -> bool:
    kids = await children(api, ns, name)
    return not any(kids.values())


async def test_delete_stops_load_and_removes_children(api: Kube, ns: str, target: Target) -> None:
    await apply(api, ns, manifest("doomed", target.url, loadPods={"replicas": 2}))
    await wait_status(api, ns, "doomed", running_with(2), within=START, what="Running")
    assert all(len(v) >= 1 for v in (await children(api, ns, "doomed")).values())

    await delete_and_wait(api, ns, "doomed")
    await wait_for(lambda: _no_children(api, ns, "doomed"), within=10, what="children gone")
    if target.server is not None:
        await asyncio.sleep(0.5)
        assert await target.rate(1.0) == 0, "traffic after the LoadTest was deleted"


async def test_invalid_spec_fails_with_a_condition_naming_the_field(
    api: Kube, ns: str, target: Target, operator: InClusterOperator | None
) -> None:
    # What the CRD's CEL rules can say is refused at apply, naming the field ...
    with pytest.raises(KubeError) as refused:
        await apply(api, ns, manifest("wrong", target.url, pattern={"baseTPS": 100, "maxTPS": 10}))
    assert refused.value.status == 422
    assert "spec.pattern.maxTPS: Invalid value" in refused.value.message, refused.value.message
    # ... what only the model knows (IANA zones) reaches the operator: Failed, naming the field.
    await apply(
        api, ns, manifest("zone", target.url, pattern={"baseTPS": 5, "timeZone": "Mars/Olympus"})
    )
    zone = await wait_phase(api, ns, "zone", "Failed", within=10)
    completed = condition(zone, "Completed")
    assert completed["reason"] == "InvalidSpec"
    assert completed["message"].startswith("spec.pattern.timeZone:"), completed
    await wait_event(api, ns, "zone", "InvalidSpec")
    assert not any((await children(api, ns, "zone")).values())
    if operator is not None:
        assert operator.healthy()

    # Fixing the spec starts the run: no crash loop, no stuck state.
    await patch_lt(api, ns, "zone", {"spec": {"pattern": {"timeZone": "Asia/Seoul"}}})
    status = await wait_status(api, ns, "zone", running_with(1), within=START, what="Running")
    assert condition(status, "Completed")["status"] == "False"


async def test_children_refused_by_the_api_fail_the_run_until_fixed(
    api: Kube, ns: str, target: Target
) -> None:
    # A quantity the schema knows is refused at apply, naming the field.
    with pytest.raises(KubeError) as refused:
        await apply(
            api,
            ns,
            manifest("greedy", target.url, loadPods={"resources": {"limits": {"cpu": "lots"}}}),
        )
    assert "spec.loadPods.resources.limits.cpu" in refused.value.message, refused.value.message
    # What only the Deployment's own validation knows fails the run with the server's words.
    bad = [{"key": "pool", "operator": "Sometimes", "value": "load"}]
    await apply(api, ns, manifest("greedy", target.url, loadPods={"tolerations": bad}))
    status = await wait_phase(api, ns, "greedy", "Failed", within=10)
    completed = condition(status, "Completed")
    assert completed["reason"] == "ChildrenRejected"
    assert "tolerations[0].operator" in completed["message"], completed["message"]
    fixed = [{"key": "pool", "operator": "Equal", "value": "load", "effect": "NoSchedule"}]
    await patch_lt(api, ns, "greedy", {"spec": {"loadPods": {"tolerations": fixed}}})
    await wait_status(
        api, ns, "greedy", running_with(1), within=START, what="Running after the fix"
    )


async def test_start_timeout_fails_naming_pods_and_why(api: Kube, ns: str, target: Target) -> None:
    load = {"replicas": 2, "image": "registry.invalid/nope:1", "startTimeout": "3s"}
    await apply(api, ns, manifest("stuck", target.url, loadPods=load))
    status = await wait_phase(api, ns, "stuck", "Failed", within=20)
    message = condition(status, "PodsReady")["message"]
    assert "0/2 load pods ready after 3s" in message
    assert message.count("stuck-loadpod-") == 2, message
    assert "ImagePullBackOff" in message or "ErrImagePull" in message
    assert condition(status, "Completed")["reason"] == "StartTimeout"
    await wait_event(api, ns, "stuck", "StartTimeout")


async def test_run_id_change_reruns_a_finished_loadtest(api: Kube, ns: str, target: Target) -> None:
    body = manifest("again", target.url, duration="2s", runId="one")
    await apply(api, ns, body)
    first = await wait_phase(api, ns, "again", "Succeeded", within=START + 5)
    assert first["runId"] == "one"

    await patch_lt(api, ns, "again", {"spec": {"runId": "two"}})
    await wait_status(
        api,
        ns,
        "again",
        lambda s: s.get("runId") == "two" and s.get("phase") in ("Starting", "Running"),
        within=START,
        what="the second run to start",
    )
    second = await wait_phase(api, ns, "again", "Succeeded", within=START + 5)
    assert second["runId"] == "two"
    assert second["startTime"] > first["completionTime"]


async def test_operator_restart_resumes_the_same_curve_without_duplicates(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest
) -> None:
    operator = cluster.require_operator()
    spec = {
        "pattern": {
            "baseTPS": 100,
            "rampUp": "30s",
            "noise": {"enabled": True, "amplitude": 0.3},
            "seed": None,
        },
        "loadPods": {"replicas": 2},
    }
    body = manifest("phoenix", target.url, **spec)
    del body["spec"]["pattern"]["seed"]
    await apply(api, ns, body)
    before = await wait_status(
        api,
        ns,
        "phoenix",
        lambda s: s.get("phase") == "Running" and s.get("targetTPS", 0) > 0,
        within=START,
        what="Running with a rate",
    )
    kids_before = await children(api, ns, "phoenix")

    operator.kill()
    # No controller (the node agent restarts it after a kubelet-like 10 s back-off): the pods
    # must stop by themselves when their 2 s plan lease runs out.
    await eventually_rate(
        Watched(api, ns, "phoenix"), target, 0, 0, within=6, what="pods to stop at lease end"
    )
    await asyncio.to_thread(operator.wait_healthy)

    after = await wait_status(
        api,
        ns,
        "phoenix",
        lambda s: s.get("epoch", 0) > before["epoch"] and s.get("targetTPS", 0) > 0,
        within=20,
        what="the restarted operator to push again",
    )
    assert after["startTime"] == before["startTime"] and after["seed"] == before["seed"]
    assert after["phase"] == "Running"
    engine = PatternEngine(
        parse_spec(body["spec"]).pattern,
        seed=after["seed"],
        start=datetime.fromisoformat(after["startTime"].replace("Z", "+00:00")),
    )
    # The same pure curve `kar98k simulate` draws: (spec, seed, startTime) -> rate(t).
    samples = [after]
    for _ in range(2):
        samples.append(
            await wait_status(
                api,
                ns,
                "phoenix",
                lambda s, last=samples[-1]: s["elapsedSeconds"] > last["elapsedSeconds"],
                within=5,
                what="a newer status",
            )
        )
    for sample in samples:
        expected = engine.at(sample["elapsedSeconds"]).rate
        assert sample["targetTPS"] == pytest.approx(expected, abs=1.5), (sample, expected)
    assert await target.rate(1.5) > 0, "no traffic after the restart"

    kids_after = await children(api, ns, "phoenix")
    assert [d["metadata"]["uid"] for d in kids_after["deployments"]] == [
        d["metadata"]["uid"] for d in kids_before["deployments"]
    ]
    assert [s["metadata"]["uid"] for s in kids_after["secrets"]] == [
        s["metadata"]["uid"] for s in kids_before["secrets"]
    ]
    assert sorted(p["metadata"]["name"] for p in kids_after["pods"]) == sorted(
        p["metadata"]["name"] for p in kids_before["pods"]
    )
    with pytest.raises(NotFound):
        await api.get(path("v1", "secrets", namespace=ns, name="phoenix-loadpod-token-2"))
