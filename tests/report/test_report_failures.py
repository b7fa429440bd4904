"""Time to failure from a real run: `kar98k run` (1 load pod) against a closed port and a server
that resets every connection. Nothing is answered, so answered latency stays empty while the time
to failure is filled, per outcome, in the JSON and the HTML report."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kar98k.report import report_schema

pytestmark = pytest.mark.slow

KAR98K = Path(sys.executable).with_name("kar98k")
LOOPBACK = "127.0.0.1"


@pytest.fixture
async def resetting_port() -> AsyncIterator[int]:
    """A loopback server that accepts and at once aborts each connection with a TCP RST."""

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(on_connect, LOOPBACK, 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


def _manifest(refused_port: int, reset_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kar98k.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": "failures"},
        "spec": {
            "duration": "2s",
            "targets": [
                {"name": "refused", "url": f"http://{LOOPBACK}:{refused_port}/"},
                {"name": "reset", "url": f"http://{LOOPBACK}:{reset_port}/"},
            ],
            "pattern": {"baseTPS": 40},
            "thresholds": {"latency": {"p99": "1s"}},
        },
    }


async def test_unanswered_run_fills_time_to_failure_and_leaves_latency_empty(
    tmp_path: Path, closed_port: int, resetting_port: int
) -> None:
    spec = tmp_path / "loadtest.yaml"
    spec.write_text(yaml.safe_dump(_manifest(closed_port, resetting_port)), encoding="utf-8")
    report, page = tmp_path / "out.json", tmp_path / "out.html"
    args = ["run", str(spec), "--pods", "1", "--no-live", "--seed", "3"]
    args += ["--report", str(report), "--report", str(page)]
    process = await asyncio.create_subprocess_exec(
        str(KAR98K), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, out.decode(errors="replace")  # latency cannot pass

    doc = json.loads(report.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(report_schema()).validate(doc)
    assert doc["requests_total"] > 20
    assert doc["latency_ms"]["raw"]["max"] == 0.0  # nothing answered: no latency at all
    assert doc["latency_ms"]["corrected"]["p99"] == 0.0
    failures = doc["time_to_failure_ms"]
    # every request has a time to failure, under the outcome it failed with
    assert sum(f["count"] for f in failures.values()) == doc["requests_total"]
    assert {o: f["count"] for o, f in failures.items()} == doc["outcomes"]
    for name in ("refused", "reset"):
        target = doc["targets"][name]
        assert target["latency_ms"]["raw"]["max"] == 0.0
        assert sum(f["count"] for f in target["time_to_failure_ms"].values()) == target["requests"]
        assert all(
            0 < f["p50"] <= f["p95"] <= f["max"] for f in target["time_to_failure_ms"].values()
        )
    assert "connect_error" in doc["targets"]["refused"]["time_to_failure_ms"]

    html = page.read_text(encoding="utf-8")
    assert "<h2>Time to failure</h2>" in html
    for outcome in failures:
        assert f"<td>{outcome}</td>" in html
