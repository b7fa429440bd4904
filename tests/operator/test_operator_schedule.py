"""LoadTestSchedule on the real control plane: runs created at their slots, finished, pruned;
Forbid and Replace; a slot missed while the operator was scaled to zero; no slot fired twice.

The schedules fire every minute in real time (no test-only clock in the operator): one test
drives five schedules side by side over three slots, about three and a half minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cluster.operator_pod import InClusterOperator
from conftest import OPERATOR_NAMESPACE, RELEASE, ClusterUnderTest, Target
from kar98k.cli import main
from kar98k.spec.status import parse_time
from kar98k_operator import names
from kar98k_operator.kube import JSON, Kube, path
from lt_helpers import events_of, lt_path, manifest, wait_for

pytestmark = pytest.mark.slow

SLOT = 75.0  # a minute, plus slack for a busy machine
# `KAR98K_CAPTURE_STATUS=1 pytest tests/operator/test_operator_schedule.py` refreshes the objects
# the Argo CD health checks are tested against (tests/argocd/captured/), as the API serves them.
CAPTURED = Path(__file__).resolve().parents[1] / "argocd" / "captured"


def capture(label: str, obj: JSON) -> None:
    if os.environ.get("KAR98K_CAPTURE_STATUS") != "1":
        return
    meta = obj["metadata"]
    kept = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "generation": meta.get("generation")},
        "spec": {k: v for k, v in obj["spec"].items() if k in ("suspend", "schedule", "paused")},
        "status": obj.get("status") or {},
    }
    CAPTURED.mkdir(parents=True, exist_ok=True)
    (CAPTURED / f"{label}.json").write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")


def lts_path(ns: str, name: str | None = None) -> str:
    return path(names.API_VERSION, names.SCHEDULE_PLURAL, namespace=ns, name=name)


def schedule(
    name: str, target_url: str, *, seconds: int, thresholds: JSON | None = None, **spec: Any
) -> JSON:
    run = manifest(
        name,
        target_url,
        duration=f"{seconds}s",
        pattern={"baseTPS": 10},
        thresholds=thresholds or {"errorRate": 0.5},
    )
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.SCHEDULE_KIND,
        "metadata": {"name": name},
        "spec": {
            "schedule": "* * * * *",
            "timeZone": "Europe/Berlin",
            "template": {"metadata": {"labels": {"team": "perf"}}, "spec": run["spec"]},
            **spec,
        },
    }


async def runs_of(api: Kube, ns: str, name: str) -> list[JSON]:
    listing = await api.list(
        path(names.API_VERSION, names.PLURAL, namespace=ns),
        label_selector=f"{names.LABEL_SCHEDULE}={name}",
    )
    items = [i for i in listing.get("items") or [] if not i["metadata"].get("deletionTimestamp")]
    return sorted(items, key=lambda i: str(i["metadata"]["name"]))


async def status(api: Kube, ns: str, name: str) -> JSON:
    return dict((await api.get(lts_path(ns, name))).get("status") or {})


def slot(run: JSON) -> datetime:
    return parse_time(run["metadata"]["annotations"][names.ANNOTATION_SLOT])


async def wait_runs(api: Kube, ns: str, name: str, check: Any, what: str) -> list[JSON]:
    async def probe() -> list[JSON] | None:
        runs = await runs_of(api, ns, name)
        return runs if check(runs) else None

    return await wait_for(probe, within=SLOT, what=f"{name}: {what}", interval=0.5)


async def wait_schedule(api: Kube, ns: str, name: str, check: Any, what: str) -> JSON:
    async def probe() -> JSON | None:
        found = await status(api, ns, name)
        return found if check(found) else None

    return await wait_for(probe, within=SLOT, what=f"{name}: {what}", interval=0.5)


async def scale_operator(cluster: ClusterUnderTest, replicas: int) -> None:
    local = cluster.require_local()
    deployment = f"deployment/{RELEASE}-operator"
    await asyncio.to_thread(
        local.kubectl, "scale", deployment, "-n", OPERATOR_NAMESPACE, f"--replicas={replicas}"
    )


def created_names(cluster: ClusterUnderTest, ns: str) -> Counter[str]:
    """LoadTests the API server created in `ns` (audit log): a name twice is a slot fired twice."""
    events = cluster.require_local().audit(
        lambda e: (
            e.get("stage") == "ResponseComplete"
            and e.get("verb") == "create"
            and (e.get("objectRef") or {}).get("resource") == "loadtests"
            and (e.get("objectRef") or {}).get("namespace") == ns
            and (e.get("responseStatus") or {}).get("code") == 201
        )
    )
    return Counter(str(e["objectRef"]["name"]) for e in events)


async def render_stored_result(
    api: Kube, ns: str, kept: JSON, cluster: ClusterUnderTest, out: Path
) -> None:
    """`kar98k report NAMESPACE/NAME` renders the run's stored result as a local run would."""
    run = await api.get(path(names.API_VERSION, names.PLURAL, namespace=ns, name=kept["name"]))
    assert run["status"]["result"] == kept["result"]
    configmap = await api.get(path("v1", "configmaps", namespace=ns, name=kept["result"]))
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]
    reports = [out / "run.json", out / "run.html", out / "junit.xml"]
    argv = ["report", f"{ns}/{kept['name']}", "--kubeconfig", str(cluster.kubeconfig)]
    for report in reports:
        argv += ["--report", str(report)]
    assert await asyncio.to_thread(main, argv) == 0
    document = json.loads(reports[0].read_text())
    assert document["requests_total"] == run["status"]["requests"] > 0
    assert document["verdict"] == "pass" and document["series"]
    assert "<testsuite" in reports[2].read_text() and "<html" in reports[1].read_text().lower()
    # Bad input is exit 2 with a message, never a traceback.
    missing = ["report", f"{ns}/no-such-run", "--kubeconfig", str(cluster.kubeconfig),
               "--report", str(out / "x.json")]  # fmt: skip
    assert await asyncio.to_thread(main, missing) == 2


@pytest.mark.timeout(420)
async def test_schedules_fire_finish_prune_forbid_replace_and_survive_a_missed_slot(  # noqa: PLR0917
    api: Kube,
    ns: str,
    target: Target,
    cluster: ClusterUnderTest,
    operator: InClusterOperator,
    tmp_path: Path,
) -> None:
    local = cluster.require_local()
    for body in (
        schedule("allow", target.url, seconds=3, concurrencyPolicy="Allow",
                 successfulRunsHistoryLimit=1),
        schedule("forbid", target.url, seconds=100, concurrencyPolicy="Forbid"),
        schedule("replace", target.url, seconds=100, concurrencyPolicy="Replace"),
    ):  # fmt: skip
        await api.create(lts_path(ns), body)

    # Slot 1: each schedule creates its first run, named for the slot and owned by it.
    first = {
        name: (await wait_runs(api, ns, name, lambda r: len(r) == 1, "a first run"))[0]
        for name in ("allow", "forbid", "replace")
    }
    for name, run in first.items():
        assert run["metadata"]["name"] == f"{name}-{slot(run):%Y%m%d%H%M}"
        assert run["metadata"]["labels"]["team"] == "perf"
        owner = run["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("LoadTestSchedule", name)
    listed = await status(api, ns, "allow")
    assert listed["lastScheduleTime"] and listed["nextScheduleTime"]
    assert parse_time(listed["nextScheduleTime"]) > slot(first["allow"])

    # Slot 2. Replace: the first run deleted, the second created.
    second_slot = slot(first["replace"]).timestamp() + 60
    replaced = await wait_runs(
        api, ns, "replace",
        lambda r: [slot(x).timestamp() for x in r] == [second_slot], "run 1 replaced by run 2",
    )  # fmt: skip
    assert replaced[0]["metadata"]["name"] != first["replace"]["metadata"]["name"]
    # Forbid: the slot is skipped while run 1 is still active.
    forbid = await wait_schedule(
        api, ns, "forbid",
        lambda s: s.get("lastSkippedTime")
        and parse_time(s["lastSkippedTime"]).timestamp() == slot(first["forbid"]).timestamp() + 60,
        "slot 2 skipped under Forbid",
    )  # fmt: skip
    assert forbid["activeCount"] == 1
    running = await api.get(lt_path(ns, first["forbid"]["metadata"]["name"]))
    assert running["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in running["status"]["conditions"]}["Ready"] == "False"
    capture("loadtest-running", running)
    assert [r["metadata"]["name"] for r in await runs_of(api, ns, "forbid")] == [
        first["forbid"]["metadata"]["name"]
    ]
    # Allow, history limit 1: run 2 finished, run 1 pruned; the status shows run 2's figures.
    allow = await wait_schedule(
        api, ns, "allow",
        lambda s: len(s.get("runs") or []) == 1
        and slot(first["allow"]).timestamp() + 60
        == parse_time(s["runs"][0]["scheduledTime"]).timestamp(),
        "run 2 finished and kept alone",
    )  # fmt: skip
    kept = allow["runs"][0]
    capture("schedule-healthy", await api.get(lts_path(ns, "allow")))
    passed = await api.get(path(names.API_VERSION, names.PLURAL, namespace=ns, name=kept["name"]))
    ready = {c["type"]: c for c in passed["status"]["conditions"]}["Ready"]
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == passed["metadata"]["generation"]
    capture("loadtest-succeeded", passed)
    assert kept["phase"] == "Succeeded" and kept["verdict"] == "pass"
    assert kept["achievedTPS"] > 0 and kept["p99Ms"] > 0 and kept["errorRate"] == 0
    assert allow["lastVerdict"] == "pass" and allow["lastSuccessfulTime"]
    await wait_runs(api, ns, "allow", lambda r: len(r) == 1, "run 1 pruned")
    await render_stored_result(api, ns, kept, cluster, tmp_path)

    # A missed slot: the operator is scaled to zero across slot 3. `late` may start only 5 s
    # after its slot, `catchup` 5 minutes after: one skips slot 3, the other runs it late.
    for body in (
        schedule("late", target.url, seconds=3, startingDeadlineSeconds=5),
        schedule(
            "catchup",
            target.url,
            seconds=3,
            startingDeadlineSeconds=300,
            thresholds={"latency": {"p99": "1us"}},
        ),
        schedule("broken", target.url, seconds=3, schedule="0 25 * * *"),
    ):
        await api.create(lts_path(ns), body)
    third = datetime.fromtimestamp(second_slot + 60).astimezone()
    await scale_operator(cluster, 0)
    try:
        await wait_for(
            lambda: asyncio.to_thread(lambda: not operator.running_pods()),
            within=30, what="operator pods gone",
        )  # fmt: skip
        await wait_for(
            lambda: asyncio.sleep(0, datetime.now().astimezone() > third.replace(second=12)),
            within=SLOT, what="slot 3 passed while the operator is down", interval=1,
        )  # fmt: skip
        assert not await runs_of(api, ns, "catchup")
    finally:
        await scale_operator(cluster, 1)
    await asyncio.to_thread(operator.wait_healthy)

    caught = await wait_runs(api, ns, "catchup", lambda r: len(r) == 1, "the late catch-up run")
    assert slot(caught[0]) == third
    # The catch-up run's thresholds cannot be met: a failed run, a Degraded schedule.
    failing = await wait_schedule(
        api, ns, "catchup", lambda s: s.get("lastVerdict") == "fail", "the failed run recorded"
    )
    assert failing["runs"][0]["phase"] == "Failed"
    capture("schedule-last-run-failed", await api.get(lts_path(ns, "catchup")))
    failed = await api.get(
        path(names.API_VERSION, names.PLURAL, namespace=ns, name=caught[0]["metadata"]["name"])
    )
    conditions = {c["type"]: c["status"] for c in failed["status"]["conditions"]}
    assert (conditions["Ready"], conditions["Stalled"]) == ("False", "True")
    capture("loadtest-failed", failed)
    # A cron expression the CRD's loose pattern lets through but the model refuses: not Ready.
    broken = await wait_schedule(api, ns, "broken", lambda s: s.get("conditions"), "judged")
    assert broken["conditions"][0]["reason"] == "InvalidSpec"
    assert "schedule" in broken["conditions"][0]["message"]
    assert not await runs_of(api, ns, "broken")
    capture("schedule-invalid", await api.get(lts_path(ns, "broken")))
    late = await wait_schedule(
        api, ns, "late", lambda s: s.get("lastSkippedTime"), "slot 3 skipped (deadline)"
    )
    assert parse_time(late["lastSkippedTime"]) == third
    assert not await runs_of(api, ns, "late")
    reasons = {e.get("reason") for e in await events_of(api, ns, "late")}
    assert "MissedSchedule" in reasons
    # Allow had missed slot 3 too (no deadline): one catch-up run, not a burst.
    await wait_runs(
        api, ns, "allow", lambda r: any(slot(x) == third for x in r), "allow caught up slot 3"
    )

    # Across the restart no slot was fired twice (each name created once), and every run is
    # named for its own slot.
    created = created_names(cluster, ns)
    assert created and max(created.values()) == 1, created
    assert set(created) >= {
        first["allow"]["metadata"]["name"],
        replaced[0]["metadata"]["name"],
        caught[0]["metadata"]["name"],
    }
    assert local.forbidden(f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}-operator") == []
    # Stop the long runs before the namespace goes.
    for name in ("forbid", "replace", "allow", "late", "catchup", "broken"):
        with contextlib.suppress(AssertionError):
            await api.merge_patch(lts_path(ns, name), {"spec": {"suspend": True}})
    suspended = await wait_schedule(
        api, ns, "allow", lambda s: s.get("message") == "suspended", "suspension seen"
    )
    assert "nextScheduleTime" not in suspended
    capture("schedule-suspended", await api.get(lts_path(ns, "allow")))


async def test_reapplying_an_unchanged_manifest_neither_restarts_nor_disturbs_a_run(
    api: Kube, ns: str, target: Target, cluster: ClusterUnderTest
) -> None:
    """What an auto-syncing GitOps tool does on every sync: `kubectl apply` of the same file."""
    local = cluster.require_local()
    body = manifest("synced", target.url, duration="8s", pattern={"baseTPS": 20})
    body["metadata"]["namespace"] = ns
    text = json.dumps(body)

    def kubectl_apply() -> str:
        return local.kubectl("apply", "-f", "-", stdin=text).stdout

    await asyncio.to_thread(kubectl_apply)
    running = await wait_status_of(api, ns, "synced", lambda s: s.get("phase") == "Running")
    kstatus = {c["type"]: c["status"] for c in running["conditions"]}
    assert (kstatus["Ready"], kstatus["Reconciling"], kstatus["Stalled"]) == (
        "False", "True", "False"
    )  # fmt: skip
    generation = (await api.get(lt_path(ns, "synced")))["metadata"]["generation"]
    # kubectl may still send a patch (it says "configured"): what matters is that the spec,
    # and so the generation, did not change, and the run went on undisturbed.
    await asyncio.to_thread(kubectl_apply)
    done = await wait_status_of(api, ns, "synced", lambda s: s.get("phase") == "Succeeded")
    after = await api.get(lt_path(ns, "synced"))
    assert after["metadata"]["generation"] == generation
    assert done["startTime"] == running["startTime"] and done["seed"] == running["seed"]
    started = [e for e in await events_of(api, ns, "synced") if e.get("reason") == "Started"]
    assert sum(e.get("count", 1) for e in started) == 1
    ready = {c["type"]: c for c in done["conditions"]}["Ready"]
    assert ready["status"] == "True" and ready["observedGeneration"] == generation


async def wait_status_of(api: Kube, ns: str, name: str, check: Any) -> JSON:
    async def probe() -> JSON | None:
        found = dict((await api.get(lt_path(ns, name))).get("status") or {})
        return found if check(found) else None

    return await wait_for(probe, within=45, what=f"{name}: status", interval=0.3)
