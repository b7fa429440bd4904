"""Operator-wide settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from kar98k import __version__ as _version

from .guardrails import TargetAllowlist

DEFAULT_IMAGE = f"ghcr.io/kar98k/kar98k-loadpod:{_version}"


@dataclass(frozen=True)
class OperatorConfig:
    """What every LoadTest inherits unless its spec says otherwise."""

    loadpod_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    control_port: int = 8080
    run_as_user: int = 65532
    default_resources: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "requests": {"cpu": "250m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        }
    )
    status_interval: float = 2.0
    # Guardrails (guardrails.py, budget.py): None and empty mean no limit.
    max_total_tps: float | None = None
    allowed_targets: TargetAllowlist = field(default_factory=TargetAllowlist)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if environ is None else environ)
        base = cls()
        return cls(
            loadpod_image=env.get("KAR98K_LOADPOD_IMAGE") or base.loadpod_image,
            image_pull_policy=env.get("KAR98K_LOADPOD_PULL_POLICY") or base.image_pull_policy,
            control_port=int(env.get("KAR98K_LOADPOD_PORT") or base.control_port),
            run_as_user=int(env.get("KAR98K_LOADPOD_UID") or base.run_as_user),
            max_total_tps=max_total_tps(env.get("KAR98K_MAX_TOTAL_TPS", "")),
            allowed_targets=TargetAllowlist.parse(env.get("KAR98K_ALLOWED_TARGETS", "").split(",")),
        )


def max_total_tps(text: str) -> float | None:
    """The chart's operator.maxTotalTPS: empty or 0 means no ceiling. A bad value stops the
    operator at start (a guardrail silently off would be worse than none configured)."""
    if not text.strip():
        return None
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"KAR98K_MAX_TOTAL_TPS: must be a finite number >= 0, got {text!r}")
    return value or None
