"""The chart's dashboard and alerts, proven against a real Prometheus scraping a real run.

Prometheus (built from the Go module proxy, tests/cluster/build-prometheus.sh) runs on 127.0.0.1
with a 1 s scrape and evaluation interval. It scrapes the chart's operator pod (podIP:9090) and the
load pods' control ports (podIP:8080/metrics, which needs no token: only /v1 does), under the job
names the chart's ServiceMonitor and PodMonitor give them, with honor_labels as they set it. The
rules it evaluates are the shipped files/rules.yaml with every `for:` cut to 1 s.

Three LoadTests run side by side: one against /fast, one against /status/500 (the staged
error-rate breach), one asking 40 req/s of /slow with maxInFlight 1 (~10 req/s: the staged
"achieved below target"); one more operator target on a closed loopback port is the staged
"operator down".
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from cluster.controlplane import free_port
from cluster.harness import REPO
from cluster.operator_pod import InClusterOperator
from cluster.prometheus import Prometheus, prometheus_bin, running_prometheus
from conftest import ClusterUnderTest, Target
from kar98k_operator.kube import Kube
from lt_helpers import apply, children, manifest, running_with, wait_status

pytestmark = pytest.mark.slow

CHART_FILES = REPO / "helm" / "kar98k" / "files"
RULES = CHART_FILES / "rules.yaml"
DASHBOARD = CHART_FILES / "dashboard.json"
RULES_TEST = Path(__file__).parent / "rules_test.yaml"
OPERATOR_JOB = "kar98k-operator"
LOADPOD_JOB = "kar98k-loadpod"
START = 30.0
T = TypeVar("T")


@dataclass
class Scraping:
    prom: Prometheus
    down: str  # the operator endpoint where nothing listens


def shipped_rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def panel_queries(namespace: str) -> dict[str, str]:
    """Every panel target's expression, its Grafana variables filled as the dashboard would."""
    dashboard = json.loads(DASHBOARD.read_text())
    out: dict[str, str] = {}
    for panel in dashboard["panels"]:
        for t in panel["targets"]:
            expr = (
                t["expr"]
                .replace("$namespace", namespace)
                .replace("$loadtest", ".*")
                .replace("$__rate_interval", "5s")
            )
            out[f"{panel['title']} [{t['refId']}]"] = expr
    return out


def test_promtool_checks_the_shipped_rules() -> None:
    done = subprocess.run(
        [str(prometheus_bin() / "promtool"), "check", "rules", str(RULES)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(shipped_rules())} rules found" in done.stdout, done.stdout
    names = {r["alert"] for r in shipped_rules()}
    assert names == {
        "Kar98kAchievedRateBelowTarget",
        "Kar98kErrorRateHigh",
        "Kar98kRunStalled",
        "Kar98kOperatorDown",
    }


def test_promtool_unit_tests_of_the_alerts_pass(tmp_path: Path) -> None:
    """What a short live run cannot stage (a 5-minute stall, a slow fleet, no operator target at
    all) and what must not fire (a paused run, a healthy one), on synthetic series:
    rules_test.yaml, run on the shipped rules with their annotations left out (promtool compares
    annotations verbatim; their templates are checked by `promtool check rules` above)."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    cases = yaml.safe_load(RULES_TEST.read_text())
    assert cases["rule_files"] == ["../../helm/kar98k/files/rules.yaml"]
    cases["rule_files"] = ["rules.yaml"]
    (tmp_path / "rules_test.yaml").write_text(yaml.safe_dump(cases))
    done = subprocess.run(
        [str(prometheus_bin() / "promtool"), "test", "rules", str(tmp_path / "rules_test.yaml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout
    tested = {case["alertname"] for test in cases["tests"] for case in test["alert_rule_test"]}
    assert tested == {r["alert"] for r in shipped_rules()}


@pytest.fixture
def scraping(tmp_path: Path, operator: InClusterOperator | None) -> Iterator[Scraping]:
    if operator is None:
        pytest.fail("this test scrapes the operator the suite installed (its pod IP)")
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "1s"
    test_rules = tmp_path / "rules.yaml"
    test_rules.write_text(yaml.safe_dump(rules))
    with running_prometheus(tmp_path / "prom", test_rules, [OPERATOR_JOB, LOADPOD_JOB]) as prom:
        pod_ip = operator.pod()["status"]["podIP"]
        # A second operator endpoint where nothing listens: the staged "operator down".
        down = f"127.0.0.1:{free_port()}"
        prom.set_targets(OPERATOR_JOB, [([f"{pod_ip}:{operator.metrics_port}", down], {})])
        yield Scraping(prom, down)


async def eventually(probe: Callable[[], T | None], *, within: float, what: str) -> T:
    """Poll a blocking probe (off the event loop) until it returns something truthy."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(probe)
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")


async def test_dashboard_and_alerts_against_a_real_prometheus(
    api: Kube,
    ns: str,
    target: Target,
    cluster: ClusterUnderTest,
    scraping: Scraping,
) -> None:
    started = time.monotonic()
    prometheus, down = scraping.prom, scraping.down
    await apply(
        api, ns, manifest("steady", target.url, pattern={"baseTPS": 40}, loadPods={"replicas": 2})
    )
    await apply(
        api,
        ns,
        manifest("failing", target.base_url + "/status/500", pattern={"baseTPS": 20}),
    )
    # One request at a time to a 50-150 ms endpoint: ~10 req/s of the 40 asked for.
    await apply(
        api,
        ns,
        manifest(
            "slow",
            target.base_url + "/slow",
            pattern={"baseTPS": 40},
            loadPods={"maxInFlight": 1},
        ),
    )
    for name, ready in (("steady", 2), ("failing", 1), ("slow", 1)):
        await wait_status(api, ns, name, running_with(ready), within=START, what=f"{name} Running")

    groups = []
    for name in ("steady", "failing", "slow"):
        pods = (await children(api, ns, name))["pods"]
        ips = [p["status"]["podIP"] for p in pods if (p.get("status") or {}).get("podIP")]
        assert ips, f"{name}: no pod IPs"
        groups.append(([f"{ip}:8080" for ip in ips], {"namespace": ns}))
    prometheus.set_targets(LOADPOD_JOB, groups)

    # Every panel's every query returns series for this namespace.
    queries = panel_queries(ns)

    def missing_panels() -> list[str]:
        return [title for title, expr in queries.items() if not prometheus.query(expr)]

    def panels_all_have_data() -> bool:
        return not missing_panels()

    try:
        await eventually(panels_all_have_data, within=45, what="data in every dashboard panel")
    except AssertionError:
        raise AssertionError(f"panels without data: {missing_panels()}") from None

    # The figures behind the panels are the run's: the target rates, the pods, the outcomes.
    def value(expr: str) -> dict[str, float]:
        return {
            r["metric"].get("loadtest", ""): float(r["value"][1]) for r in prometheus.query(expr)
        }

    sel = f'namespace="{ns}"'
    assert value(f"kar98k_loadtest_target_requests_per_second{{{sel}}}") == {
        "steady": 40.0,
        "failing": 20.0,
        "slow": 40.0,
    }
    assert value(f"kar98k_loadtest_desired_pods{{{sel}}}") == {
        "steady": 2.0,
        "failing": 1.0,
        "slow": 1.0,
    }
    outcomes = {
        (r["metric"]["loadtest"], r["metric"]["outcome"])
        for r in prometheus.query(f"kar98k_requests_total{{{sel}}} > 0")
    }
    assert outcomes == {("steady", "2xx"), ("failing", "5xx"), ("slow", "2xx")}
    pod_names = {r["metric"]["pod"] for r in prometheus.query(f"kar98k_current_tps{{{sel}}}")}
    assert len(pod_names) == 4

    # Every alert expression evaluates, and every series it reads exists in this scrape.
    rules = shipped_rules()
    for rule in rules:
        prometheus.query(rule["expr"])  # raises if Prometheus refuses it
        for metric in set(re.findall(r"\b(kar98k_\w+|up)\b", rule["expr"])) - {"up"}:
            assert prometheus.query(f"count({metric}{{{sel}}})"), f"{rule['alert']}: no {metric}"
    up = value(f'up{{job="{OPERATOR_JOB}"}}')
    assert up, "no up series for the operator job"

    # The staged breaches fire: errors of the /status/500 run, the slow run's shortfall, the
    # closed operator endpoint.
    def firing() -> set[tuple[str, str]]:
        return {
            (
                a["labels"]["alertname"],
                a["labels"].get("loadtest") or a["labels"].get("instance", ""),
            )
            for a in prometheus.alerts()
            if a["state"] == "firing" and (a["labels"].get("namespace") in (ns, None))
        }

    def breaches_fire() -> set[tuple[str, str]] | None:
        now = firing()
        wanted = {
            ("Kar98kErrorRateHigh", "failing"),
            ("Kar98kAchievedRateBelowTarget", "slow"),
            ("Kar98kOperatorDown", down),
        }
        return now if wanted <= now else None

    fired = await eventually(breaches_fire, within=20, what="the staged breaches to fire")
    assert ("Kar98kErrorRateHigh", "steady") not in fired, fired
    operator_ip = cluster.require_operator().pod()["status"]["podIP"]
    assert not [f for f in fired if f[0] == "Kar98kOperatorDown" and operator_ip in f[1]], fired
    # Prometheus' own view of its rules: every one evaluated without error.
    health = {r["name"]: (r["health"], r.get("lastError", "")) for r in prometheus.rules()}
    assert health == {r["alert"]: ("ok", "") for r in rules}, health
    assert time.monotonic() - started < 80
