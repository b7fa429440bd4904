"""Read and validate LoadTest manifests from YAML files or parsed documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import FieldError, SpecError, field_errors
from .loadtestschedule import SCHEDULE_KIND, LoadTestSchedule
from .model import LoadTest, LoadTestSpec

M = TypeVar("M", bound=BaseModel)


class ManifestReadError(Exception):
    """The file could not be read or is not YAML (exit code 2 territory, not a spec error)."""


def _parse(model: type[M], kind: str, data: Any) -> M:
    if not isinstance(data, dict):
        raise SpecError([FieldError("", f"a {kind} must be a mapping, got {type(data).__name__}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc, model)) from None


def parse_manifest(data: Any) -> LoadTest:
    """Validate one parsed LoadTest document; raise SpecError listing every problem."""
    return _parse(LoadTest, "LoadTest", data)


def parse_schedule(data: Any) -> LoadTestSchedule:
    """Validate one LoadTestSchedule document; raise SpecError listing every problem."""
    return _parse(LoadTestSchedule, SCHEDULE_KIND, data)


def load_schedule(path: str | Path) -> LoadTestSchedule:
    """The first LoadTestSchedule of a file (the first document if none says so)."""
    docs = read_documents(path)
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == SCHEDULE_KIND:
            return parse_schedule(doc)
    return parse_schedule(docs[0])


def parse_spec(data: Any) -> LoadTestSpec:
    """Validate a bare `spec` mapping (as the operator receives it); paths start at `spec`."""
    try:
        return LoadTestSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc, LoadTestSpec, prefix=("spec",))) from None


def read_documents(path: str | Path) -> list[Any]:
    """YAML documents of a file; ManifestReadError names the line of a syntax error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestReadError(f"{path}:{where}: YAML syntax error: {problem}") from None
    if not docs:
        raise ManifestReadError(f"{path}: no YAML document found")
    return docs


def load_manifest(path: str | Path) -> LoadTest:
    """The single LoadTest in a file (the first LoadTest document if there are several)."""
    docs = read_documents(path)
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "LoadTest":
            return parse_manifest(doc)
    return parse_manifest(docs[0])
