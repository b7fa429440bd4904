"""The CRD in crds/ is generated from the pydantic models, and the two agree on real documents."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kar98k.spec import parse_schedule, parse_spec
from kar98k.spec.errors import SpecError
from kar98k.spec.status import LoadTestStatus
from kar98k_operator import crd
from pydantic import BaseModel, Field

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "loadtests.kar98k.dev.yaml"
MINIMAL = {"targets": [{"name": "a", "url": "http://svc:8080/"}], "pattern": {"baseTPS": 10}}


def _schema() -> dict[str, Any]:
    doc = yaml.safe_load(CRD_FILE.read_text())
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    """OpenAPI v3.0 numeric keywords are Draft 4's (boolean exclusiveMinimum); `nullable` and
    int-or-string become type lists."""
    return jsonschema.Draft4Validator(_int_or_string(copy.deepcopy(schema)))


def _int_or_string(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            node["type"] = ["integer", "string"]
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]  # OpenAPI 3.0 `nullable`, in Draft 4 words
        for value in node.values():
            _int_or_string(value)
    elif isinstance(node, list):
        for value in node:
            _int_or_string(value)
    return node


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does with a document."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for key, sub in schema["properties"].items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = _apply_defaults(sub, out[key])
        return out
    if isinstance(value, list) and "items" in schema:
        return [_apply_defaults(schema["items"], v) for v in value]
    return value


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def _walk(node: dict[str, Any], where: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(where or "<root>", node)]
    for key, sub in (node.get("properties") or {}).items():
        out += _walk(sub, f"{where}.{key}")
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{where}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{where}.*")
    return out


@pytest.mark.parametrize("directory", ["crds", "helm/kar98k/files/crds"])
@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_committed_crds_are_what_the_models_generate(directory: str, kind: crd.Kind) -> None:
    committed = REPO / directory / kind.file_name
    assert committed.read_text() == crd.render(kind), (
        f"{committed} is stale: run "
        "`python -m kar98k_operator.crd --write crds helm/kar98k/files/crds`"
    )


def test_schedule_crd_names_columns_and_the_two_schedules_kept_apart() -> None:
    doc = yaml.safe_load((REPO / "crds" / "loadtestschedules.kar98k.dev.yaml").read_text())
    spec = doc["spec"]
    assert spec["names"]["shortNames"] == ["lts"] and spec["names"]["categories"] == ["kar98k"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Schedule", "Suspend", "Active", "Last Verdict", "Next", "Age"]
    schema = version["schema"]["openAPIV3Schema"]
    props = schema["properties"]["spec"]["properties"]
    assert "cron schedule of runs" in props["schedule"]["description"].lower()
    assert props["concurrencyPolicy"]["enum"] == ["Allow", "Forbid", "Replace"]
    assert props["successfulRunsHistoryLimit"]["default"] == 3
    assert props["failedRunsHistoryLimit"]["default"] == 1
    # The template's spec is the LoadTest's spec schema, CEL rules and all.
    template_spec = dict(props["template"]["properties"]["spec"])
    loadtest_spec = dict(_schema()["properties"]["spec"])
    template_spec.pop("description"), loadtest_spec.pop("description")
    assert template_spec == loadtest_spec
    inner = props["template"]["properties"]["spec"]["properties"]["pattern"]["properties"]
    assert "time-of-day" in inner["schedule"]["description"].lower()
    status = schema["properties"]["status"]["properties"]
    for column in version["additionalPrinterColumns"]:
        json_path = column["jsonPath"].lstrip(".").split(".")
        if json_path[0] == "status":
            expected = "string" if column["type"] == "date" else column["type"]
            assert status[json_path[1]]["type"] == expected, column
    assert any("metadata.name" in r["rule"] for r in schema["x-kubernetes-validations"])


def test_crd_metadata_names_columns_and_subresource() -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "loadtests.kar98k.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["lt"]
    assert spec["names"]["categories"] == ["kar98k"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Target TPS", "Actual TPS", "P99", "Errors", "Pods", "Age"]
    status = _schema()["properties"]["status"]
    for column in version["additionalPrinterColumns"]:
        json_path = column["jsonPath"].lstrip(".").split(".")
        if json_path[0] != "status":
            continue
        node = status
        for part in json_path[1:]:
            node = node["properties"][part]
        assert node["type"] == column["type"], column


def test_schema_is_structural_and_explained() -> None:
    for where, node in _walk(_schema()):
        text = yaml.safe_dump(node)
        assert "$ref" not in text and "anyOf" not in text and "$defs" not in text, where
        assert node.get("additionalProperties") is not False, where
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{where} has no type"
        if isinstance(node.get("exclusiveMinimum"), bool):
            assert "minimum" in node, where
    spec = _schema()["properties"]["spec"]
    for where, node in _walk(spec):
        if where.endswith("[]") or where.endswith(".*") or where == "<root>":
            continue
        assert node.get("description"), f"spec{where} has no description (kubectl explain)"


def test_defaults_enums_minimums_patterns_come_through() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    pattern = spec["pattern"]["properties"]
    assert pattern["baseTPS"] == {
        "type": "number",
        "description": pattern["baseTPS"]["description"],
        "exclusiveMinimum": True,
        "minimum": 0,
    }
    assert pattern["noise"]["properties"]["type"]["enum"] == ["spring", "perlin"]
    assert pattern["spikes"]["properties"]["rampDown"]["default"] == "10s"
    assert spec["loadPods"]["properties"]["startTimeout"]["default"] == "2m"
    assert spec["cleanup"]["properties"]["onSuccess"]["enum"] == ["none", "pods", "all"]
    hours = pattern["schedule"]["items"]["properties"]["hours"]["items"]
    assert hours == {"x-kubernetes-int-or-string": True}
    limits = spec["loadPods"]["properties"]["resources"]["properties"]["limits"]
    assert limits["additionalProperties"]["x-kubernetes-int-or-string"] is True
    assert "pattern" in limits["additionalProperties"]
    target = spec["targets"]["items"]["properties"]
    assert target["name"]["pattern"].startswith("^[a-z0-9]")
    assert spec["targets"]["minItems"] == 1


def test_server_side_defaults_equal_the_models_defaults() -> None:
    spec_schema = _schema()["properties"]["spec"]
    defaulted = _apply_defaults(spec_schema, copy.deepcopy(MINIMAL))
    model = parse_spec(MINIMAL).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _drop_empty(defaulted) == _drop_empty(model)
    # And the defaulted document means the same to the model.
    assert parse_spec(defaulted) == parse_spec(MINIMAL)


def _loadtests_in(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for file in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "LoadTest":
                docs.append((f"{file.name}:{doc['metadata']['name']}", doc))
    return docs


EXAMPLES = _loadtests_in(REPO / "examples")


def test_the_examples_are_there_to_check() -> None:
    assert len(EXAMPLES) >= 2, "examples/ lost its LoadTests: nothing below would be checked"


@pytest.mark.parametrize("doc", [d for _, d in EXAMPLES], ids=[n for n, _ in EXAMPLES])
def test_examples_pass_the_crd_schema_and_the_model(doc: dict[str, Any]) -> None:
    errors = sorted(_validator(_schema()).iter_errors(doc), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    parse_spec(doc["spec"])


def test_the_schedule_example_passes_its_crd_schema_and_the_model() -> None:
    doc = yaml.safe_load((REPO / "examples" / "loadtestschedule.yaml").read_text())
    crd_doc = yaml.safe_load((REPO / "crds" / "loadtestschedules.kar98k.dev.yaml").read_text())
    schema = crd_doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    errors = sorted(_validator(schema).iter_errors(doc), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    parse_schedule(doc)
    broken = copy.deepcopy(doc)
    broken["spec"]["schedule"] = "every day"
    assert list(_validator(schema).iter_errors(broken)), "the CRD pattern accepted 'every day'"


REJECTED_BY_BOTH = [
    {"pattern": {"baseTPS": 0}},
    {"pattern": {"baseTPS": 10, "noise": {"type": "brownian"}}},
    {"pattern": {"baseTPS": 10, "rampUp": "ten seconds"}},
    {"pattern": {"baseTPS": 10, "spikes": {"factor": 0.5}}},
    {"targets": []},
    {"targets": [{"name": "Bad_Name", "url": "http://x/"}]},
    {"loadPods": {"replicas": 0}},
    {"cleanup": {"onSuccess": "everything"}},
    {"thresholds": {"errorRate": 1.5}},
    {"pattern": {"baseTPS": 10, "schedule": [{"multiplier": -1}]}},
]


@pytest.mark.parametrize("change", REJECTED_BY_BOTH, ids=lambda c: yaml.safe_dump(c).strip())
def test_schema_and_model_reject_the_same_mistakes(change: dict[str, Any]) -> None:
    spec = {**copy.deepcopy(MINIMAL), **change}
    doc = {"apiVersion": "kar98k.dev/v1alpha1", "kind": "LoadTest", "metadata": {}, "spec": spec}
    assert list(_validator(_schema()).iter_errors(doc)), "the CRD schema accepted it"
    with pytest.raises(SpecError):
        parse_spec(spec)


def test_semantic_errors_pass_the_schema_but_not_the_model() -> None:
    """What only the operator can catch: it answers with phase Failed (see the scenarios)."""
    spec = {**copy.deepcopy(MINIMAL), "pattern": {"baseTPS": 100, "maxTPS": 10}}
    doc = {"apiVersion": "kar98k.dev/v1alpha1", "kind": "LoadTest", "metadata": {}, "spec": spec}
    assert not list(_validator(_schema()).iter_errors(doc))
    with pytest.raises(SpecError, match=r"spec\.pattern\.maxTPS"):
        parse_spec(spec)


def test_status_model_round_trips_through_its_schema() -> None:
    status = LoadTestStatus.model_validate(
        {"phase": "Running", "targetTPS": 12.5, "latencyMs": {"p99": 3.5}, "pods": "1/2"}
    )
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert not list(_validator(_schema()["properties"]["status"]).iter_errors(dumped))


def test_generator_refuses_fields_without_description() -> None:
    class Bad(BaseModel):
        documented: int = Field(default=1, description="fine")
        undocumented: int = 2

    with pytest.raises(crd.SchemaError, match="undocumented"):
        crd.structural_schema(Bad)
