"""The control API's paths and small request/answer models: the one place they are spelled.

The plan (`plan.Plan`) and the stats (`stats.PodStats`) have modules of their own; this module
names where they travel. The server (`api.py`) and the client (`client.py`) both read it.
"""

from __future__ import annotations

from pydantic import Field

from .model_base import WireModel

API_PREFIX = "/v1"  # every path under it needs the bearer token
PLAN_PATH = "/v1/plan"  # PUT a Plan, answered with a PlanAck
STATS_PATH = "/v1/stats"  # GET the PodStats
DRAIN_PATH = "/v1/drain"  # POST a DrainRequest (optional), answered with PodStats

DEFAULT_DRAIN_TIMEOUT = 10.0


class DrainRequest(WireModel):
    """Optional body of POST /v1/drain."""

    timeout_seconds: float = Field(
        default=DEFAULT_DRAIN_TIMEOUT, ge=0, le=3600, strict=True, allow_inf_nan=False
    )


class PlanAck(WireModel):
    """The answer to an accepted plan: what is in force now."""

    epoch: int
    rate: float
    lease_seconds: float = 0.0
    renewed: bool = False
