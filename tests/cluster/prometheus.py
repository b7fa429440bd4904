"""A real Prometheus server on 127.0.0.1, for proving the chart's dashboard and alerts.

The binaries come from `build-prometheus.sh` (built once from the Go module proxy, cached by
version). Targets come from file_sd files the test rewrites as pods appear (Prometheus rereads
them within a second), so no Kubernetes service discovery, and no credentials, are needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .controlplane import free_port

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-prometheus.sh"


class PrometheusError(RuntimeError):
    pass


def prometheus_bin() -> Path:
    """The directory holding `prometheus` and `promtool` (built on first use)."""
    override = os.environ.get("KAR98K_PROMETHEUS_BIN")
    if override:
        return Path(override)
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise PrometheusError(f"building Prometheus failed:\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


class Prometheus:
    """One server; `jobs` name the scrape jobs, each fed by its own file_sd file."""

    def __init__(
        self,
        workdir: Path,
        rules: Path,
        jobs: Sequence[str],
        *,
        interval: str = "1s",
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"
        self._sd = {job: workdir / f"{job}.json" for job in jobs}
        for job in jobs:
            self.set_targets(job, [])
        config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": job,
                    # The series carry their own namespace/pod, as the chart's monitors honour.
                    "honor_labels": True,
                    "file_sd_configs": [{"files": [str(sd)], "refresh_interval": "1s"}],
                }
                for job, sd in self._sd.items()
            ],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))

    def set_targets(
        self, job: str, groups: Sequence[tuple[Sequence[str], Mapping[str, str]]]
    ) -> None:
        """Replace a job's targets: (["ip:port", ...], {label: value}) groups; atomic rename."""
        body = [{"targets": list(t), "labels": dict(labels)} for t, labels in groups]
        tmp = self._sd[job].with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self._sd[job])

    def start(self, timeout: float = 30.0) -> None:
        binary = prometheus_bin() / "prometheus"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/-/ready", timeout=1.0) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.1)
        raise PrometheusError(
            f"prometheus not ready in {timeout}s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def api(self, endpoint: str, **params: str) -> Any:
        """GET /api/v1/<endpoint>; returns `data`, raises on an error status."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{endpoint}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=5.0) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(
                f"{endpoint} {params}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (raises if Prometheus refuses the expression)."""
        data = self.api("query", query=expr)
        return list(data["result"]) if data["resultType"] == "vector" else [data]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]


@contextlib.contextmanager
def running_prometheus(workdir: Path, rules: Path, jobs: Sequence[str]) -> Iterator[Prometheus]:
    workdir.mkdir(parents=True, exist_ok=True)
    server = Prometheus(workdir, rules, jobs)
    try:
        server.start()
        yield server
    finally:
        server.stop()
