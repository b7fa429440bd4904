"""Names every part of the operator agrees on: API coordinates, labels, annotations, children."""

from __future__ import annotations

from kar98k.spec import loadtestschedule as _schedule
from kar98k.spec import model as _spec

# The API coordinates come from the spec model, where they are said once.
GROUP = _spec.GROUP
VERSION = _spec.VERSION
API_VERSION = _spec.API_VERSION
KIND = _spec.KIND

PLURAL = "loadtests"
SINGULAR = "loadtest"
SHORT_NAMES = ("lt",)
CATEGORIES = ("kar98k",)
CRD_NAME = f"{PLURAL}.{GROUP}"

# The cron schedule of runs (not pattern.schedule, the time-of-day rate multipliers).
SCHEDULE_KIND = _schedule.SCHEDULE_KIND
SCHEDULE_PLURAL = "loadtestschedules"
SCHEDULE_SINGULAR = "loadtestschedule"
SCHEDULE_SHORT_NAMES = ("lts",)
# On each LoadTest a schedule creates: which schedule, and which slot (RFC 3339, UTC).
LABEL_SCHEDULE = "kar98k.dev/schedule"
ANNOTATION_SLOT = "kar98k.dev/scheduled-time"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_LOADTEST = "kar98k.dev/loadtest"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LOADPOD_APP = "kar98k-loadpod"
MANAGER = "kar98k-operator"

ANNOTATION_SPIKE = "kar98k.dev/spike"
# Any new value closes a tripped safety breaker (a human resume, without touching spec.paused).
ANNOTATION_SAFETY_RESET = "kar98k.dev/safety-reset"
KOPF_PREFIX = "operator.kar98k.dev"

CONTROL_PORT_NAME = "control"
TOKEN_KEY = "token"
CONTAINER_NAME = "loadpod"


def deployment_name(loadtest: str) -> str:
    return f"{loadtest}-loadpod"


def secret_name(loadtest: str) -> str:
    return f"{loadtest}-loadpod-token"


def pod_labels(loadtest: str) -> dict[str, str]:
    """The selector labels of a LoadTest's load pods (process conventions in DESIGN.md)."""
    return {LABEL_NAME: LOADPOD_APP, LABEL_LOADTEST: loadtest}


def selector(labels: dict[str, str]) -> str:
    """A labelSelector query string for equality matches."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
