"""Reports from a real run: `kar98k run` (1 load pod, 5 s) against a demo server on loopback."""

from __future__ import annotations

import asyncio
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kar98k.demo import DemoHttpServer
from kar98k.report import report_schema

pytestmark = pytest.mark.slow

KAR98K = Path(sys.executable).with_name("kar98k")


def _manifest(base_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "kar98k.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": "report-real"},
        "spec": {
            "duration": "5s",
            "targets": [
                {"name": "fast", "url": f"{base_url}/fast", "weight": 3},
                {"name": "flaky", "url": f"{base_url}/flaky", "weight": 1},
            ],
            "pattern": {
                "baseTPS": 100,
                "spikes": {
                    "enabled": True,
                    "meanInterval": "2s",
                    "maxInterval": "2s",
                    "factor": 2,
                    "rampUp": "200ms",
                    "duration": "1s",
                    "rampDown": "200ms",
                },
                "noise": {"enabled": True, "amplitude": 0.1},
            },
            "thresholds": {"latency": {"p99": "2s"}, "errorRate": 0.5},
        },
    }


@pytest.fixture
async def real_run(tmp_path: Path, http1_server: DemoHttpServer) -> dict[str, Path]:
    spec = tmp_path / "loadtest.yaml"
    spec.write_text(yaml.safe_dump(_manifest(http1_server.url)), encoding="utf-8")
    paths = {ext: tmp_path / f"out.{ext}" for ext in ("json", "html", "xml")}
    args = ["run", str(spec), "--pods", "1", "--no-live", "--seed", "7"]
    for path in paths.values():
        args += ["--report", str(path)]
    process = await asyncio.create_subprocess_exec(
        str(KAR98K), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode(errors="replace")
    return paths


async def test_real_run_reports_validate(real_run: dict[str, Path]) -> None:
    doc = json.loads(real_run["json"].read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(report_schema()).validate(doc)
    assert doc["schema_version"] == 1
    assert doc["verdict"] == "pass"
    assert doc["requests_total"] > 300
    assert doc["requests_total"] == sum(t["requests"] for t in doc["targets"].values())
    assert set(doc["targets"]) == {"fast", "flaky"}
    assert len(doc["series"]) >= 5
    assert any(p["spike_active"] for p in doc["series"])
    # the rate chart tells the same story as the totals, including the last partial second
    in_series = sum(p["achieved_tps"] for p in doc["series"])
    assert in_series == pytest.approx(doc["requests_total"], rel=0.01)

    html = real_run["html"].read_text(encoding="utf-8")
    for chart in ("chart-rate", "chart-latency", "chart-outcomes"):
        assert f'<svg id="{chart}"' in html
    # per-target figures ride on the series and make one line per target in two charts
    assert any(set(p["targets"]) == {"fast", "flaky"} for p in doc["series"])
    assert html.count('class="tline') == 2 * 2
    assert "±2σ of Poisson arrivals" in html  # the delivered card states its bound
    assert doc["delivered"]["arrival"] == "poisson"
    assert doc["unaccounted_max"] == 0  # the pod was drained: the totals are whole
    assert "http://" not in html

    suite = ET.parse(real_run["xml"]).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("name") == "kar98k.report-real"
    assert [c.get("name") for c in suite.iter("testcase")] == [c["name"] for c in doc["checks"]]
    assert suite.get("failures") == "0"
