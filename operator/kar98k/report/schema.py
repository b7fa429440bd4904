"""The stable JSON report schema, shipped as package data so consumers and tests share one file."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_FILE = "report-schema.json"


@cache
def _schema_text() -> str:
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def report_schema() -> dict[str, Any]:
    """A fresh copy of the JSON Schema (draft 2020-12) every `.json` report validates against."""
    loaded: dict[str, Any] = json.loads(_schema_text())
    return loaded
