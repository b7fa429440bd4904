"""A realistic RunSummary built by hand: 60 s, three protocols, two spikes, one failed check."""

from __future__ import annotations

import math
import random

from kar98k.results import (
    Check,
    LatencyPair,
    LatencySummary,
    PodSummary,
    RunSummary,
    SeriesPoint,
    TargetSummary,
)


def _lat(p50: float, p95: float, p99: float, mx: float) -> LatencySummary:
    return LatencySummary(p50=p50, p95=p95, p99=p99, max=mx, mean=p50 * 1.3)


def _pair(scale: float) -> LatencyPair:
    return LatencyPair(
        raw=_lat(1.1 * scale, 4.0 * scale, 9.5 * scale, 40 * scale),
        corrected=_lat(1.2 * scale, 4.6 * scale, 12.0 * scale, 55 * scale),
    )


def make_summary(name: str = "checkout", *, failing: bool = True, seconds: int = 60) -> RunSummary:
    """Numbers shaped like a real run: target curve with noise and spikes, pods a hair below."""
    rng = random.Random(7)
    series = []
    for t in range(seconds):
        spike = 12 <= t < 20 or 41 <= t < 47
        factor = 3.0 if spike else 1.0
        target = min(200 * factor * (1 + 0.1 * math.sin(t / 3)), 800) * min(1.0, (t + 1) / 3)
        achieved = max(0.0, target * (1 - rng.uniform(0, 0.03)))
        p50 = 1.4 + rng.uniform(0, 0.4) + (1.5 if spike else 0)
        series.append(
            SeriesPoint(
                t=float(t),
                target_tps=round(target, 2),
                achieved_tps=round(achieved, 2),
                spike_active=spike,
                p50_ms=p50,
                p95_ms=p50 * 3 + rng.uniform(0, 3),
                p99_ms=p50 * 8 + rng.uniform(0, 20) + (60 if spike else 0),
                error_rate=0.02,
            )
        )
    targets = {
        "web-fast": TargetSummary(
            requests=9000,
            errors=12,
            error_rate=12 / 9000,
            outcomes={"2xx": 8988, "5xx": 12},
            latency_ms=_pair(1.0),
        ),
        "web-flaky": TargetSummary(
            requests=3000,
            errors=150,
            error_rate=0.05,
            outcomes={"2xx": 2850, "5xx": 120, "4xx": 30},
            latency_ms=_pair(1.2),
        ),
        "h2-slow": TargetSummary(
            requests=1500,
            errors=3,
            error_rate=0.002,
            outcomes={"2xx": 1497, "timeout": 3},
            latency_ms=_pair(20.0),
            healthy=False,
            skipped_unhealthy=42,
        ),
        "grpc-echo": TargetSummary(
            requests=3000,
            errors=9,
            error_rate=0.003,
            outcomes={"grpc_OK": 2991, "grpc_UNAVAILABLE": 9},
            latency_ms=_pair(1.5),
        ),
    }
    total = sum(t.requests for t in targets.values())
    errors = sum(t.errors for t in targets.values())
    outcomes: dict[str, int] = {}
    for t in targets.values():
        for k, v in t.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + v
    checks = [
        Check(
            name="latency.p99",
            threshold=250.0,
            observed=91.3,
            passed=True,
            message="corrected p99 91.3 ms <= 250 ms",
        ),
        Check(
            name="error_rate",
            threshold=0.01,
            observed=errors / total,
            passed=not failing,
            message=f"error rate {errors / total:.2%} {'>' if failing else '<='} 1.00%",
        ),
        Check(
            name="min_achieved_ratio",
            threshold=0.95,
            observed=0.985,
            passed=True,
            message="achieved 98.5% of target requests >= 95%",
        ),
    ]
    return RunSummary(
        name=name,
        seed=424242,
        started_at="2025-01-02T10:00:00Z",
        ended_at=f"2025-01-02T10:{seconds // 60:02d}:{seconds % 60:02d}Z",
        duration_s=float(seconds),
        verdict="fail" if failing else "pass",
        requests_total=total,
        errors_total=errors,
        error_rate=errors / total,
        late_sends=17,
        dropped=0,
        achieved_tps=total / seconds,
        target_tps_mean=sum(p.target_tps for p in series) / seconds,
        target_requests=sum(p.target_tps for p in series),
        latency_ms=_pair(1.3),
        outcomes=outcomes,
        targets=targets,
        pods=[
            PodSummary(
                name="pod-0",
                share_tps=140.5,
                achieved_tps=139.9,
                requests=total // 2,
                errors=errors // 2,
                epoch=600,
            ),
            PodSummary(
                name="pod-1",
                ready=False,
                share_tps=0.0,
                achieved_tps=0.0,
                requests=total - total // 2,
                errors=errors - errors // 2,
                push_failures=3,
                epoch=412,
            ),
        ],
        checks=checks,
        series=series,
    )
