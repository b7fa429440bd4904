"""Operator-wide settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kar98k import __version__ as _version

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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if environ is None else environ)
        base = cls()
        return cls(
            loadpod_image=env.get("KAR98K_LOADPOD_IMAGE") or base.loadpod_image,
            image_pull_policy=env.get("KAR98K_LOADPOD_PULL_POLICY") or base.image_pull_policy,
            control_port=int(env.get("KAR98K_LOADPOD_PORT") or base.control_port),
            run_as_user=int(env.get("KAR98K_LOADPOD_UID") or base.run_as_user),
        )
