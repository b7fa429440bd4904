"""The JSON report is RunSummary plus schema_version and validates against its shipped schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kar98k import results as summary_models
from kar98k.report import (
    SCHEMA_VERSION,
    ReportFormatError,
    check_report_path,
    report_schema,
    write_report,
)
from kar98k.results import Check, RunSummary
from pydantic import BaseModel

DOC = Path(__file__).resolve().parents[2] / "docs" / "report-schema.md"


def _validate(doc: dict[str, Any]) -> None:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_json_report_validates_and_round_trips(tmp_path: Path, summary: RunSummary) -> None:
    path = tmp_path / "out.json"
    write_report(summary, path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    _validate(doc)
    assert next(iter(doc)) == "schema_version"
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    for key in ("verdict", "requests_total", "errors_total", "achieved_tps", "target_tps_mean"):
        assert key in doc
    assert set(doc["latency_ms"]["corrected"]) >= {"p50", "p95", "p99"}
    assert doc["targets"]["web-flaky"]["errors"] == 150
    assert {"t", "target_tps", "achieved_tps"} <= set(doc["series"][0])
    assert RunSummary.model_validate(doc) == summary


def test_schema_rejects_a_broken_report(summary: RunSummary) -> None:
    doc = json.loads(summary.model_dump_json())
    doc["schema_version"] = 1
    doc["verdict"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)
    del doc["verdict"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


def test_non_finite_numbers_become_null(tmp_path: Path, make: Callable[..., RunSummary]) -> None:
    summary = make(failing=False, seconds=5)
    summary.checks.append(
        Check(name="latency.p99", threshold=250.0, observed=float("nan"), passed=False, message="x")
    )
    path = tmp_path / "nan.json"
    write_report(summary, path)
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text
    doc = json.loads(text)
    assert doc["checks"][-1]["observed"] is None
    _validate(doc)


def test_minimal_summary_validates(tmp_path: Path) -> None:
    path = tmp_path / "min.json"
    write_report(RunSummary(name="x", seed=0, started_at="2025-01-01T00:00:00Z"), path)
    _validate(json.loads(path.read_text(encoding="utf-8")))


def _model_defs() -> list[tuple[type[BaseModel], dict[str, Any]]]:
    schema = report_schema()
    defs = schema["$defs"]
    pairs: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (RunSummary, schema),
        (summary_models.LatencySummary, defs["latency"]),
        (summary_models.LatencyPair, defs["latencyPair"]),
        (summary_models.TargetSummary, defs["target"]),
        (summary_models.PodSummary, defs["pod"]),
        (summary_models.Check, defs["check"]),
        (summary_models.SeriesPoint, defs["seriesPoint"]),
    ]
    figures = getattr(summary_models, "ControllerFigures", None)
    if figures is not None:
        pairs.append((figures, defs["controller"]))
    return pairs


@pytest.mark.parametrize(
    "model, definition", _model_defs(), ids=lambda v: getattr(v, "__name__", "")
)
def test_schema_documents_every_summary_field(
    model: type[BaseModel], definition: dict[str, Any]
) -> None:
    """A field added to RunSummary must be added to the schema (and docs) too."""
    missing = set(model.model_fields) - set(definition["properties"])
    assert not missing, f"{model.__name__} fields missing from report-schema.json: {missing}"


@pytest.mark.parametrize(
    "model, name",
    [
        (summary_models.SearchSummary, "search"),
        (summary_models.SearchStep, "searchStep"),
        (summary_models.FirstFailure, "firstFailure"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_schema_documents_every_search_field_by_its_camel_case_name(
    model: type[BaseModel], name: str
) -> None:
    written = {f.alias or key for key, f in model.model_fields.items()}
    missing = written - set(report_schema()["$defs"][name]["properties"])
    assert not missing, f"{model.__name__} fields missing from report-schema.json: {missing}"


def test_a_search_report_validates_with_camel_case_figures(
    tmp_path: Path, summary: RunSummary
) -> None:
    step = summary_models.SearchStep(
        index=1, phase="bracket", rate=100, p99_ms=12.5, passed=True, reason="passed"
    )
    summary.search = summary_models.SearchSummary(
        found=True, max_sustainable_tps=100, last_passing_tps=100, steps=[step]
    )
    path = tmp_path / "search.json"
    write_report(summary, path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    _validate(doc)
    assert doc["search"]["maxSustainableTPS"] == 100
    assert doc["search"]["steps"][0]["p99Ms"] == 12.5
    assert RunSummary.model_validate(doc) == summary
    doc["search"]["limitedBy"] = "nobody"
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


def test_markdown_documents_every_top_level_field() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, flags=re.MULTILINE))
    missing = set(report_schema()["properties"]) - documented
    assert not missing, f"docs/report-schema.md lacks rows for {missing}"


def test_unknown_extension_is_refused_before_writing(tmp_path: Path, summary: RunSummary) -> None:
    for bad in ("out.txt", "out", "out.json.bak"):
        with pytest.raises(ReportFormatError, match=r"\.json, \.html, \.xml"):
            check_report_path(tmp_path / bad)
        with pytest.raises(ReportFormatError):
            write_report(summary, tmp_path / bad)
    assert list(tmp_path.iterdir()) == []
    check_report_path(tmp_path / "OUT.JSON")
    check_report_path(tmp_path / "page.htm")


def test_write_is_atomic_and_creates_directories(tmp_path: Path, summary: RunSummary) -> None:
    path = tmp_path / "deep" / "er" / "r.json"
    path.parent.mkdir(parents=True)
    path.write_text("old", encoding="utf-8")
    write_report(summary, path)
    assert json.loads(path.read_text(encoding="utf-8"))["name"] == "checkout"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    write_report(summary, tmp_path / "new" / "dir" / "r.xml")
    assert (tmp_path / "new" / "dir" / "r.xml").is_file()
