"""kar98k load-pod benchmark: ceiling, accuracy, agility and gRPC, side by side with references.

    .venv/bin/python bench/run_all.py                   # full suite, about 15 minutes
    .venv/bin/python bench/run_all.py --only h2         # one section (http, agility, grpc, h2, ...)
    .venv/bin/python bench/run_all.py --quick           # regression guards, under 3 minutes

--quick runs the HTTP/1.1 ceiling (fast client, wrk as the reference), uniform accuracy and
one agility round with shorter windows, then judges the guarded figures against
bench/results/quick-reference.json (bench/guards.py) and exits 1 when one regressed.

Everything runs on 127.0.0.1. Servers (nginx, the Go gRPC server, the counting server,
nghttpd) are pinned to one core, every generator (wrk, Locust, h2load, the load pod, the
grpc.aio client) to the other, one at a time. Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import guards
import pod_footprint
import scale
import uvloop
from harness import (
    BENCH,
    BIN,
    CACHE,
    REPO,
    Cores,
    Pod,
    Proc,
    Window,
    log,
    measure,
    pin_self,
    run_pinned,
    step,
)
from http2_bench import goals as h2_goals
from http2_bench import h2_section, table_rows
from kar98k_loadpod.histogram import LatencyHistogram
from servers import (
    CountServer,
    GrpcServer,
    Nginx,
    build_grpc_server,
    ensure_apt_tools,
)

RESULTS = BENCH / "results"
SECTIONS = ("http", "agility", "grpc", "h2", "pod", "scale")
QUICK_SECTIONS = ("http", "agility")
MAX_RATE = 150_000.0
PIPELINE_DEPTH = 16
"""Depth of the opt-in pipelined HTTP/1.1 variant (KAR98K_HTTP1_PIPELINE)."""
ACHIEVED_MIN = 0.99
LATE_MAX = 0.01
CONFIRM_TRIES = 3
CONFIRM_STEP = 0.8
DISTURBED = 0.03


@dataclass(frozen=True)
class Budget:
    """Durations of one run; --quick shortens every window."""

    ref_seconds: float  # wrk, Locust, closed-loop clients
    step_seconds: float  # one ceiling step's measured window
    settle_seconds: float  # after a plan change, before measuring
    refine: int  # bisection steps after the first failing rate
    accuracy_seconds: float
    poisson: bool  # accuracy with Poisson arrivals too
    agility_repeats: int
    locust_users: tuple[int, ...]  # empty: no Locust, no executors alone (quick)
    both_clients: bool  # the aiohttp HTTP/1.1 client's ceiling too
    ceiling_start: float

    @classmethod
    def pick(cls, quick: bool) -> Budget:
        if quick:
            return cls(4, 2.5, 0.7, 2, 4, False, 1, (), False, 4000.0)
        return cls(8, 4, 1, 3, 10, True, 3, (32, 64), True, 2000.0)


# --- reference tools ----------------------------------------------------------------------


def wrk_rate(url: str, cores: Cores, seconds: float) -> float:
    out = run_pinned(
        ["wrk", "-t1", "-c64", f"-d{int(seconds)}s", url],
        cpu=cores.generator,
        timeout=seconds + 30,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(match.group(1))


def locust_rate(url: str, cores: Cores, seconds: float, users: int) -> float:
    locust = BIN / "locust"
    if not locust.exists():
        raise RuntimeError("locust is not installed (pip install -e '.[bench]')")
    prefix = CACHE / f"locust-{users}"
    run_pinned(
        [
            str(locust),
            "-f",
            str(BENCH / "locustfile.py"),
            "--headless",
            "--only-summary",
            "-u",
            str(users),
            "-r",
            "1000",
            "-t",
            f"{int(seconds)}s",
            "--host",
            url.rstrip("/"),
            "--csv",
            str(prefix),
            "--loglevel",
            "WARNING",
        ],
        cpu=cores.generator,
        timeout=seconds + 60,
    )
    rows = Path(f"{prefix}_stats.csv").read_text().splitlines()
    header = rows[0].split(",")
    for row in rows[1:]:
        cells = row.split(",")
        if cells[1] == "Aggregated":
            return float(cells[header.index("Requests/s")])
    raise RuntimeError("no Aggregated row in Locust's CSV")


def closed_loop_executor(kind: str, url: str, cores: Cores, seconds: float) -> float:
    out = run_pinned(
        [
            sys.executable,
            str(BENCH / "exec_closed_loop.py"),
            "--kind",
            kind,
            "--url",
            url,
            "--seconds",
            str(seconds),
        ],
        cpu=cores.generator,
        timeout=seconds + 60,
    )
    return float(json.loads(out.strip().splitlines()[-1])["rate"])


def grpc_baseline(address: str, cores: Cores, seconds: float) -> float:
    out = run_pinned(
        [
            sys.executable,
            str(BENCH / "grpc_baseline.py"),
            "--address",
            address,
            "--seconds",
            str(seconds),
        ],
        cpu=cores.generator,
        timeout=seconds + 60,
    )
    return float(json.loads(out.strip().splitlines()[-1])["rate"])


# --- load pod: ceiling and accuracy -----------------------------------------------------------


def passes(w: Window) -> bool:
    errors = w.errors / max(1, w.sends)
    return bool(
        w.achieved >= ACHIEVED_MIN * w.planned and w.late_fraction <= LATE_MAX and errors <= 0.01
    )


def find_ceiling(
    pod: Pod,
    targets: list[dict[str, Any]],
    counter: Any,
    overhead: int,
    budget: Budget,
    *,
    start: float = 2000.0,
    factor: float = 1.4,
    server_proc: Proc | None = None,
) -> dict[str, Any]:
    """Step the planned rate up until achieved < 99 % or late > 1 %, bisect, then confirm.

    A failing window is measured again once, and a third time when other processes took
    more than DISTURBED of the generator or the server core during the second (a shared
    machine's stall is not the pod's limit). Search: steps of ×`factor`, then bisection.
    Confirmation: the best rate must hold a window twice as long; if it does not, 20 % less
    is tried (three rates at most). The confirmed rate is the ceiling: one that merely
    flickered through a short window is not "sustained".
    """
    steps: list[dict[str, Any]] = []
    best: Window | None = None
    failed: float | None = None

    def attempt(rate: float, seconds: float, phase: str) -> Window:
        pod.plan(rate, targets)
        time.sleep(budget.settle_seconds)
        w = measure(pod, rate, seconds, counter, overhead, server_proc=server_proc)
        ok = passes(w)
        steps.append({**w.to_json(), "pass": ok, "phase": phase})
        log(
            f"{phase:7} {rate:>8.0f}/s planned → {w.achieved:>8.0f}/s achieved, "
            f"late {w.late_fraction:6.2%}, errors {w.errors}, pod cpu {w.pod_cpu:4.0%}, "
            f"others {w.foreign_cpu:4.0%}/{w.foreign_server_cpu:4.0%}: {'pass' if ok else 'FAIL'}"
        )
        if not ok:
            pod.plan(0.0, targets)  # let the backlog clear before the next step
            time.sleep(1.0)
        return w

    def trial(rate: float, seconds: float, phase: str) -> Window:
        w = attempt(rate, seconds, phase)
        tries = 1
        while not passes(w) and tries < 3 and (tries == 1 or w.disturbed > DISTURBED):
            w = attempt(rate, seconds, phase)
            tries += 1
        return w

    def search(rate: float) -> bool:
        nonlocal best
        w = trial(rate, budget.step_seconds, "search")
        ok = passes(w)
        if ok and (best is None or rate > best.planned):
            best = w
        return ok

    rate = start
    while rate <= MAX_RATE:
        if not search(rate):
            failed = rate
            break
        rate = round(rate * factor, -2)
    low = best.planned if best is not None else 0.0
    high = failed
    for _ in range(budget.refine):
        if high is None or high - low <= 200:
            break
        mid = round((low + high) / 2, -2)
        if search(mid):
            low = mid
        else:
            high = mid

    confirmed: Window | None = None
    candidate = best.planned if best is not None else 0.0
    for _ in range(CONFIRM_TRIES):
        if candidate <= 0:
            break
        w = trial(candidate, 2 * budget.step_seconds, "confirm")
        if passes(w):
            confirmed = w
            break
        candidate = round(candidate * CONFIRM_STEP, -2)
    pod.plan(0.0, targets)
    return {
        "ceiling": confirmed.planned if confirmed else 0.0,
        "achievedAtCeiling": round(confirmed.achieved, 1) if confirmed else 0.0,
        "lateAtCeiling": round(confirmed.late_fraction, 5) if confirmed else None,
        "podCpuAtCeiling": round(confirmed.pod_cpu, 3) if confirmed else None,
        "searchCeiling": best.planned if best else 0.0,
        "firstFailing": high,
        "steps": steps,
    }


def accuracy_rates(ceiling: float) -> list[float]:
    """1,000/s, 5,000/s and 80 % of the ceiling (when one was found)."""
    rates = {1000.0, 5000.0}
    if ceiling > 0:
        rates.add(round(0.8 * ceiling, -2))
    return sorted(rates)


def accuracy(
    cores: Cores,
    targets: list[dict[str, Any]],
    counter: Any,
    overhead: int,
    *,
    rates: list[float],
    budget: Budget,
    http1_client: str | None = None,
    with_poisson: bool = True,
    server_proc: Proc | None = None,
) -> list[dict[str, Any]]:
    """A fresh pod per point, so each point's latency histogram is its own."""
    arrivals = ["uniform", "poisson"] if budget.poisson and with_poisson else ["uniform"]
    points: list[dict[str, Any]] = []
    for rate in rates:
        for arrival in arrivals:
            with Pod(cores.generator, http1_client=http1_client) as pod:
                pod.plan(rate, targets, arrival=arrival, max_in_flight=256)
                time.sleep(max(1.5, budget.settle_seconds))
                w = measure(
                    pod, rate, budget.accuracy_seconds, counter, overhead, server_proc=server_proc
                )
                stats = pod.stats()
            corrected = LatencyHistogram.decode(stats.latency_corrected)
            raw = LatencyHistogram.decode(stats.latency_raw)
            point = {
                **w.to_json(),
                "arrival": arrival,
                "p50CorrectedMs": round(corrected.percentile_ms(50), 3),
                "p99CorrectedMs": round(corrected.percentile_ms(99), 3),
                "p99RawMs": round(raw.percentile_ms(99), 3),
                # Poisson counts over the window scatter by ~1/sqrt(n) on their own.
                "poissonNoise": round(1 / math.sqrt(rate * budget.accuracy_seconds), 5),
            }
            points.append(point)
            log(
                f"{arrival:8} {rate:>8.0f}/s → server {w.achieved / rate:7.4f}, "
                f"pod-started {(w.started_rate or 0) / rate:7.4f}, late {w.late_fraction:.3%}, "
                f"p99 corrected {point['p99CorrectedMs']} ms"
            )
    return points


# --- agility ----------------------------------------------------------------------------------


def in_force_after(
    t_change: float, bins: tuple[float, float, list[int]], new_rate: float, hold: float
) -> float | None:
    """Smallest delay d (10 ms grid) after the PUT from which every later 100 ms window holds
    the new rate within ±5 %, until the end of the hold."""
    t0, bin_s, counts = bins
    per_window = new_rate * 0.1
    k = round(0.1 / bin_s)

    def window_count(start_index: int) -> int:
        return sum(counts[start_index : start_index + k])

    first = math.ceil((t_change - t0) / bin_s)
    last_start = int((t_change + hold - 0.1 - t0) / bin_s) - k
    for d_index in range(first, last_start):
        ok = True
        for start_index in range(d_index, last_start + 1, k):
            if abs(window_count(start_index) - per_window) > 0.05 * per_window:
                ok = False
                break
        if ok:
            return max(0.0, (d_index * bin_s + t0) - t_change)
    return None


def agility(cores: Cores, budget: Budget) -> dict[str, Any]:
    low, high, hold = 1000.0, 3000.0, 2.5
    changes: list[dict[str, Any]] = []
    with CountServer(cores.server) as server, Pod(cores.generator) as pod:
        targets = [{"name": "count", "url": server.url}]
        pod.plan(low, targets, lease=60)
        time.sleep(2.0)
        marks: list[tuple[float, float, float, float]] = []  # (t_put, t_answered, from, to)
        for _ in range(budget.agility_repeats):
            for old, new in ((low, high), (high, low)):
                t_put = pod.plan(new, targets, lease=60)
                marks.append((t_put, time.monotonic(), old, new))
                time.sleep(hold)
        pod.plan(0.0, targets)
        time.sleep(0.3)
        bins = server.bins()
    t0, bin_s, counts = bins
    for t_put, t_answered, old, new in marks:
        delay = in_force_after(t_put, bins, new, hold)
        base = math.floor((t_put - t0) / bin_s)
        per100 = [sum(counts[i : i + 10]) for i in range(base - 30, base + 60, 10)]
        changes.append(
            {
                "from": old,
                "to": new,
                "putRoundTripMs": round((t_answered - t_put) * 1000, 2),
                "inForceMs": None if delay is None else round(delay * 1000, 1),
                "bins100msFrom-300ms": per100,
            }
        )
        shown = "never" if delay is None else f"{delay * 1000:.0f} ms"
        log(f"{old:.0f} → {new:.0f}/s in force after {shown}; 100 ms bins {per100}")
    delays = [c["inForceMs"] for c in changes if c["inForceMs"] is not None]
    return {
        "changes": changes,
        "worstInForceMs": max(delays) if len(delays) == len(changes) else None,
        "medianInForceMs": statistics.median(delays) if delays else None,
        "definition": (
            "delay after the PUT (10 ms grid) from which every following 100 ms window "
            "counted at the server holds the new rate within ±5 %"
        ),
    }


# --- sections -------------------------------------------------------------------------------


def http1_switch_supported() -> bool:
    source = REPO / "loadpod" / "kar98k_loadpod" / "executors" / "__init__.py"
    return "KAR98K_HTTP1_CLIENT" in source.read_text()


def pipelining_supported() -> bool:
    return (REPO / "loadpod" / "kar98k_loadpod" / "executors" / "http1_pipeline.py").exists()


def http_section(cores: Cores, budget: Budget, out: dict[str, Any]) -> None:
    with Nginx(cores.server) as nginx:
        url = nginx.url
        targets = [{"name": "nginx", "url": url}]
        ref: dict[str, Any] = {}
        with step("wrk -t1 -c64 (closed loop)"):
            ref["wrk"] = wrk_rate(url, cores, budget.ref_seconds)
            log(f"wrk {ref['wrk']:.0f}/s")
        if budget.locust_users:
            http_references(url, cores, budget, ref)
        out["http"]["reference"] = ref

        variants: list[str | None] = ["fast", "aiohttp"] if http1_switch_supported() else [None]
        if http1_switch_supported() and pipelining_supported():
            variants.insert(1, "fast-pipelined")
        variants = variants if budget.both_clients else variants[:1]
        ceilings: dict[str, Any] = {}
        for variant in variants:
            name = variant or "default"
            # The pipelined variant is the fast client with KAR98K_HTTP1_PIPELINE set.
            pipelined = variant == "fast-pipelined"
            if pipelined:
                os.environ["KAR98K_HTTP1_PIPELINE"] = str(PIPELINE_DEPTH)
            try:
                with (
                    step(f"load pod ceiling ({name} HTTP/1.1 client)"),
                    Pod(cores.generator, http1_client="fast" if pipelined else variant) as pod,
                ):
                    ceilings[name] = find_ceiling(
                        pod,
                        targets,
                        nginx.count,
                        1,
                        budget,
                        start=budget.ceiling_start,
                        server_proc=nginx,
                    )
            finally:
                os.environ.pop("KAR98K_HTTP1_PIPELINE", None)
        out["http"]["ceiling"] = ceilings
        main = ceilings["fast" if "fast" in ceilings else "default"]
        ceiling = float(main["ceiling"])
        out["http"]["ratios"] = {"podToWrk": round(ceiling / ref["wrk"], 4)}
        if "locust" in ref:
            out["http"]["ratios"]["podToLocust"] = round(ceiling / ref["locust"], 3)
        if "fast-pipelined" in ceilings:
            piped = float(ceilings["fast-pipelined"]["ceiling"])
            out["http"]["ratios"]["pipelinedToWrk"] = round(piped / ref["wrk"], 4)
            if "locust" in ref:
                out["http"]["ratios"]["pipelinedToLocust"] = round(piped / ref["locust"], 3)
        rates = accuracy_rates(ceiling)
        with step(f"accuracy at {rates}"):
            out["http"]["accuracy"] = accuracy(
                cores,
                targets,
                nginx.count,
                1,
                rates=rates,
                budget=budget,
                http1_client=variants[0],
                server_proc=nginx,
            )


def http_references(url: str, cores: Cores, budget: Budget, ref: dict[str, Any]) -> None:
    """Locust and the executors alone (full runs only: they say where the pod stands, the
    quick run guards against regressions and only needs wrk)."""
    with step(f"Locust FastHttpUser, users {budget.locust_users}"):
        runs = {}
        for users in budget.locust_users:
            runs[users] = locust_rate(url, cores, budget.ref_seconds, users)
            log(f"locust {users} users: {runs[users]:.0f}/s")
        ref["locust"] = max(runs.values())
        ref["locustByUsers"] = runs
    with step("executors alone, closed loop 64 in flight (no pacer)"):
        for kind in ("fast", "aiohttp"):
            ref[f"executor_{kind}"] = closed_loop_executor(kind, url, cores, budget.ref_seconds / 2)
            log(f"{kind}: {ref[f'executor_{kind}']:.0f}/s")


def pod_section(cores: Cores, out: dict[str, Any]) -> None:
    """Memory idle and under load, and start-up time (bench/pod_footprint.py)."""
    with Nginx(cores.server) as nginx:
        out["pod"] = pod_footprint.footprint(cores, nginx, starts=7, rates=pod_footprint.LOAD_RATES)


def scale_section(cores: Cores, out: dict[str, Any]) -> None:
    """One controller over 20, 50 and 100 real pods (bench/scale.py), both push policies."""
    setting = scale.Setting(rate_per_pod=10.0, seconds=15.0)
    with step("controller scale: 20, 50, 100 pods at 10/s each"):
        section = uvloop.run(
            scale.run_scale(scale.SIZES, setting, cores, ("default", "every-tick"))
        )
    section["goals"] = scale.goals(section)
    out["scale"] = section


GRPC_CLIENT_ENV = "KAR98K_GRPC_CLIENT"


def grpc_h2_supported() -> bool:
    return (REPO / "loadpod" / "kar98k_loadpod" / "executors" / "grpc_h2.py").exists()


def grpc_section(cores: Cores, budget: Budget, out: dict[str, Any]) -> None:
    with step("build the Go gRPC server"):
        binary, note = build_grpc_server()
        out["grpc"]["server"] = note
        log(note)
    if binary is None:
        out["grpc"]["fallback"] = (
            "Python grpc.aio server (bench/grpc_py_server.py): it saturates before the pod, "
            "so gRPC ceilings below are the server's"
        )
        log(out["grpc"]["fallback"])
    with GrpcServer(binary, cores.server) as server:
        targets = [{"name": "grpc", "url": f"grpc://{server.address}", "protocol": "grpc"}]
        with step("grpc.aio closed loop, 64 in flight (reference)"):
            base = grpc_baseline(server.address, cores, budget.ref_seconds)
            out["grpc"]["reference"] = {"grpcAio": base}
            log(f"grpc.aio {base:.0f}/s")
        with step("load pod gRPC ceiling"), Pod(cores.generator) as pod:
            ceiling = find_ceiling(
                pod, targets, server.count, 0, budget, start=1000.0, server_proc=server
            )
        out["grpc"]["ceiling"] = ceiling
        out["grpc"]["ratios"] = {"podToGrpcAio": round(ceiling["ceiling"] / base, 3)}
        if grpc_h2_supported():
            # The opt-in hand-framed client (grpc_h2.py): the same pod with KAR98K_GRPC_CLIENT=h2.
            os.environ[GRPC_CLIENT_ENV] = "h2"
            try:
                with step("load pod gRPC ceiling (h2 client)"), Pod(cores.generator) as pod:
                    h2 = find_ceiling(
                        pod, targets, server.count, 0, budget, start=1000.0, server_proc=server
                    )
            finally:
                os.environ.pop(GRPC_CLIENT_ENV, None)
            out["grpc"]["ceilingH2"] = h2
            out["grpc"]["ratios"]["h2ToGrpcAio"] = round(h2["ceiling"] / base, 3)
        rates = accuracy_rates(float(ceiling["ceiling"]))
        with step(f"gRPC accuracy at {rates}"):
            out["grpc"]["accuracy"] = accuracy(
                cores,
                targets,
                server.count,
                0,
                rates=rates,
                budget=budget,
                with_poisson=False,
                server_proc=server,
            )


# --- report ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "missing"
        text = (done.stdout + done.stderr).strip().splitlines()
        return text[0] if text else ""

    commit = version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": str(getattr(uvloop, "__version__", "")),
        "nginx": version([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
        "locust": version([str(BIN / "locust"), "--version"]),
        "commit": commit,
    }


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "—" if value is None else format(value, spec)


def table(out: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    http_part = out.get("http", {})
    ref = http_part.get("reference", {})
    if ref:
        rows.append(("wrk -t1 -c64 (closed loop)", f"{ref['wrk']:.0f}/s", "reference"))
    if "locust" in ref:
        rows.append(("Locust FastHttpUser (closed loop)", f"{ref['locust']:.0f}/s", "reference"))
        rows.append(
            ("fast executor alone, 64 in flight", f"{ref['executor_fast']:.0f}/s", "no pacer")
        )
        rows.append(
            ("aiohttp executor alone, 64 in flight", f"{ref['executor_aiohttp']:.0f}/s", "no pacer")
        )
    for name, c in http_part.get("ceiling", {}).items():
        ratio = f"{c['ceiling'] / ref['wrk']:.3f}× wrk"
        if "locust" in ref:
            ratio += f", {c['ceiling'] / ref['locust']:.2f}× Locust"
        if not c["ceiling"]:
            ratio = f"not confirmed (search reached {c['searchCeiling']:.0f}/s)"
        rows.append((f"load pod ceiling, HTTP/1.1 {name} (paced)", f"{c['ceiling']:.0f}/s", ratio))
    for p in http_part.get("accuracy", []):
        rows.append(
            (
                f"accuracy {p['arrival']} {p['planned']:.0f}/s",
                f"{p['achievedRatio']:.4f}",
                f"late {p['lateFraction']:.2%}, p99 corr {p['p99CorrectedMs']} ms",
            )
        )
    ag = out.get("agility", {})
    if ag:
        rows.append(
            (
                "agility: rate change in force (worst / median)",
                f"{fmt(ag.get('worstInForceMs'))} / {fmt(ag.get('medianInForceMs'))} ms",
                "1,000↔3,000/s, 100 ms windows",
            )
        )
    g = out.get("grpc", {})
    if g.get("reference"):
        rows.append(
            (
                "grpc.aio closed loop, 64 in flight",
                f"{g['reference']['grpcAio']:.0f}/s",
                "reference",
            )
        )
    if g.get("ceiling"):
        c = g["ceiling"]
        rows.append(
            (
                "load pod ceiling, gRPC unary (paced)",
                f"{c['ceiling']:.0f}/s",
                f"{g['ratios']['podToGrpcAio']:.2f}× grpc.aio",
            )
        )
    if g.get("ceilingH2"):
        rows.append(
            (
                "load pod ceiling, gRPC unary (paced, h2 client)",
                f"{g['ceilingH2']['ceiling']:.0f}/s",
                f"{g['ratios']['h2ToGrpcAio']:.2f}× grpc.aio",
            )
        )
    for p in g.get("accuracy", []):
        rows.append(
            (
                f"gRPC accuracy {p['arrival']} {p['planned']:.0f}/s",
                f"{p['achievedRatio']:.4f}",
                f"late {p['lateFraction']:.2%}, p99 corr {p['p99CorrectedMs']} ms",
            )
        )
    if g.get("skipped"):
        rows.append(("gRPC", "skipped", g["skipped"][:60]))
    rows += table_rows(out.get("h2", {}))
    rows += pod_rows(out.get("pod", {})) + scale_rows(out.get("scale", {}))
    width = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    lines = [f"{'measure':<{width[0]}}  {'figure':>{width[1]}}  note", "-" * (sum(width) + 8)]
    lines += [f"{a:<{width[0]}}  {b:>{width[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def pod_rows(pod: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if pod.get("startup"):
        st = pod["startup"]
        rows.append(
            (
                f"load pod spawn → ready (median of {st['starts']})",
                f"{st['medianSeconds']:.2f} s",
                f"min {st['minSeconds']:.2f}, max {st['maxSeconds']:.2f} s",
            )
        )
    for p in pod.get("memory", []):
        mem = p["memoryKiB"]
        held = "idle" if not p["rate"] else ("held" if p["held"] else "NOT held")
        rows.append(
            (
                f"load pod memory at {p['rate']:.0f}/s ({held})",
                f"{mem['Pss'] / 1024:.1f} MiB",
                f"PSS; RSS {mem['VmRSS'] / 1024:.1f}, peak {mem['VmHWM'] / 1024:.1f} MiB",
            )
        )
    return rows


def scale_rows(section: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (
            f"controller, {s['pods']} pods, {s['policy']} pushes",
            f"{s['tickLagMsP99']:.1f} ms",
            f"tick lag p99 (p50 {s['tickLagMsP50']:.1f}, max {s['tickLagMsMax']:.0f}); "
            f"cpu {s['controllerCpu']:.0%}, {s['pushesPerSecond']:.0f} pushes/s, "
            f"{s['pullsPerSecond']:.0f} pulls/s, arrived {s['steadyShare']:.4f}",
        )
        for s in section.get("sizes", [])
    ]


def goals(out: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    http_part = out.get("http", {})
    if http_part.get("accuracy"):
        uniform = [p for p in http_part["accuracy"] if p["arrival"] == "uniform"]
        result["accuracyWithin1pct"] = all(abs(p["achievedRatio"] - 1) <= 0.01 for p in uniform)
    ratios = http_part.get("ratios", {})
    if "podToLocust" in ratios:
        result["ceilingAtLeast2xLocust"] = ratios["podToLocust"] >= 2.0
    # Issue 14: >= 0.5x wrk and >= 8x Locust, paced; the plain client and the opt-in pipelined
    # one are judged apart, so a figure never borrows the other's.
    for prefix, key in (("pod", "http1"), ("pipelined", "http1Pipelined")):
        if f"{prefix}ToWrk" in ratios:
            result[f"{key}AtLeastHalfWrk"] = ratios[f"{prefix}ToWrk"] >= 0.5
        if f"{prefix}ToLocust" in ratios:
            result[f"{key}AtLeast8xLocust"] = ratios[f"{prefix}ToLocust"] >= 8.0
    grpc_ratios = out.get("grpc", {}).get("ratios", {})
    if "podToGrpcAio" in grpc_ratios:
        result["grpcAtLeast1xGrpcAio"] = grpc_ratios["podToGrpcAio"] >= 1.0
    if "h2ToGrpcAio" in grpc_ratios:
        result["grpcH2AtLeast1xGrpcAio"] = grpc_ratios["h2ToGrpcAio"] >= 1.0
    ag = out.get("agility", {})
    if ag:
        result["rateChangeWithin150ms"] = (
            ag.get("worstInForceMs") is not None and ag["worstInForceMs"] <= 150
        )
    result.update(h2_goals(out.get("h2", {})))
    if out.get("scale"):
        result.update(out["scale"]["goals"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="regression guards only (under 3 minutes)"
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only these sections (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--update-reference",
        action="store_true",
        help="with --quick: store this run's guarded figures as the new reference",
    )
    args = parser.parse_args()
    sections = args.only or list(QUICK_SECTIONS if args.quick else SECTIONS)
    budget = Budget.pick(args.quick)
    cores = Cores.detect()
    pin_self(cores.server)  # the harness itself stays off the generator core
    CACHE.mkdir(parents=True, exist_ok=True)

    missing = ensure_apt_tools()
    if missing and "http" in sections:
        print(f"cannot run the HTTP section: missing {missing}", file=sys.stderr)
        sections = [s for s in sections if s != "http"]

    started = time.monotonic()
    load_before = os.getloadavg()
    if load_before[0] > 1.0:
        print(
            f"note: load average {load_before[0]:.2f} before the run: other processes share "
            "these cores and will show up as late sends",
            file=sys.stderr,
        )
    out: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "quick" if args.quick else "full",
        "cores": cores.describe(),
        "machine": machine(),
        "criteria": {"achievedMin": ACHIEVED_MIN, "lateMax": LATE_MAX},
        "http": {},
        "grpc": {},
        "h2": {},
    }
    print(f"kar98k bench ({out['mode']}): {cores.describe()}", file=sys.stderr)
    if "http" in sections:
        http_section(cores, budget, out)
    if "agility" in sections:
        with step("agility (counting server, 10 ms bins)"):
            out["agility"] = agility(cores, budget)
    if "grpc" in sections:
        grpc_section(cores, budget, out)
    if "h2" in sections:
        h2_section(cores, budget, out["h2"], find_ceiling)
    if "pod" in sections:
        pod_section(cores, out)
    if "scale" in sections:
        scale_section(cores, out)
    out["goals"] = goals(out)
    out["seconds"] = round(time.monotonic() - started, 1)
    out["loadAverage"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print()
    print(table(out))
    print()
    print("goals:", json.dumps(out["goals"]))
    print("load average before/after:", out["loadAverage"]["before"], out["loadAverage"]["after"])
    print(f"written {args.out} in {out['seconds']:.0f}s")
    if not args.quick:
        return 0
    if args.update_reference:
        guards.save_reference(out)
        print(f"reference figures stored in {guards.REFERENCE}")
    passed, lines = guards.check(out, guards.load_reference())
    print()
    print("regression guards (bench/guards.py; tolerances in docs/performance.md):")
    for line in lines:
        print("  " + line)
    print("quick run: " + ("PASS" if passed else "FAIL: a guarded figure regressed"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
