"""Read and validate LoadTest manifests from YAML files or parsed documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import FieldError, SpecError, field_errors
from .model import LoadTest, LoadTestSpec


class ManifestReadError(Exception):
    """The file could not be read or is not YAML (exit code 2 territory, not a spec error)."""


def parse_manifest(data: Any) -> LoadTest:
    """Validate one parsed document; raise SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(
            [FieldError("", f"a LoadTest must be a mapping, got {type(data).__name__}")]
        )
    try:
        return LoadTest.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc, LoadTest)) from None


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
