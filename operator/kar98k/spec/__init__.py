"""The LoadTest spec: model, validation with precise paths, YAML loading."""

from .errors import FieldError, SpecError
from .load import (
    ManifestReadError,
    load_manifest,
    load_schedule,
    parse_manifest,
    parse_schedule,
    parse_spec,
    read_documents,
)
from .loadtestschedule import SCHEDULE_KIND, LoadTestSchedule
from .model import API_VERSION, KIND, LoadTest, LoadTestSpec, Pattern

__all__ = [
    "API_VERSION",
    "KIND",
    "SCHEDULE_KIND",
    "FieldError",
    "LoadTest",
    "LoadTestSchedule",
    "LoadTestSpec",
    "ManifestReadError",
    "Pattern",
    "SpecError",
    "load_manifest",
    "load_schedule",
    "parse_manifest",
    "parse_schedule",
    "parse_spec",
    "read_documents",
]
