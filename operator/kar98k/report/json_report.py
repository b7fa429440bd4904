"""The `.json` report: RunSummary in snake_case plus `schema_version` (docs/report-schema.md)."""

from __future__ import annotations

import json
import math
from typing import Any

from kar98k.results import RunSummary

from .schema import SCHEMA_VERSION


def report_dict(summary: RunSummary) -> dict[str, Any]:
    """The report document; schema_version first so a reader can dispatch before parsing more."""
    body = summary.model_dump(mode="json")
    return {"schema_version": SCHEMA_VERSION, **_finite(body)}


def render_json(summary: RunSummary) -> str:
    """Strict JSON (no NaN/Infinity, which many parsers reject), UTF-8, two-space indent."""
    return json.dumps(report_dict(summary), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    """Replace NaN and ±Infinity with null: a figure that could not be measured is absent."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
