"""Generate the CRDs (LoadTest, LoadTestSchedule) from the pydantic models, so the schemas can
never drift from them.

`python -m kar98k_operator.crd --write crds helm/kar98k/files/crds` writes both into both places;
a test regenerates them and compares.

pydantic emits JSON Schema (2020-12 flavour, `$ref`s, `anyOf` for optionals);
Kubernetes wants an OpenAPI v3 *structural* schema. The conversion below inlines every `$ref`,
collapses `T | None` to `T`, turns numeric `exclusiveMinimum` into the boolean form, marks free-form
objects with `x-kubernetes-preserve-unknown-fields` and int|str unions with
`x-kubernetes-int-or-string`, and refuses any field without a description.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kar98k.spec.loadtestschedule import (
    MAX_SCHEDULE_NAME,
    SCHEDULE_KIND,
    LoadTestScheduleSpec,
    LoadTestScheduleStatus,
)
from kar98k.spec.model import LoadTestSpec
from kar98k.spec.status import LoadTestStatus
from pydantic import BaseModel

from .names import (
    API_VERSION,
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SCHEDULE_PLURAL,
    SCHEDULE_SHORT_NAMES,
    SCHEDULE_SINGULAR,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)

_DROP = {"title", "$defs"}
_SIMPLE = {"integer", "string"}
_UNSUPPORTED = {"oneOf", "allOf", "not", "if", "then", "else", "prefixItems", "$dynamicRef"}


class SchemaError(ValueError):
    """The model uses something a structural schema cannot say (or lacks a description)."""


def _resolve(ref: str, defs: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
        raise SchemaError(f"unresolvable $ref {ref!r}")
    return dict(defs[ref[len(prefix) :]])


def _convert(
    node: dict[str, Any], defs: dict[str, Any], where: str, defaults: bool
) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = _resolve(node.pop("$ref"), defs)
        target.update(node)  # the field's own description/default win over the model's
        node = target
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if len(options) == 1:
            merged = dict(options[0])
            merged.update(node)
            node = merged
            if "$ref" in node:
                return _convert(node, defs, where, defaults)
        elif all(o.get("type") in _SIMPLE for o in options) and len(options) == 2:
            node["x-kubernetes-int-or-string"] = True
        else:
            raise SchemaError(f"{where}: unions other than T|None and int|str are not structural")
    bad = _UNSUPPORTED & node.keys()
    if bad:
        raise SchemaError(f"{where}: unsupported keywords {sorted(bad)}")

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default":
            if value is None or not defaults:
                continue
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _convert(value, defs, f"{where}.*", defaults)
            # False: unknown fields are pruned by the API server (and refused by kubectl's
            # strict field validation); additionalProperties:false is not allowed with properties.
        elif key == "items":
            out[key] = _convert(value, defs, f"{where}[]", defaults)
        elif key == "properties":
            required = set(node.get("required", ()))
            props: dict[str, Any] = {}
            for name, sub in value.items():
                child = _convert(sub, defs, f"{where}.{name}", defaults)
                if not child.get("description"):
                    raise SchemaError(f"{where}.{name}: every field needs a description")
                if (
                    defaults
                    and name not in required
                    and "default" not in child
                    and "default" not in sub
                    and child.get("type") == "object"
                    and "properties" in child
                ):
                    # pydantic builds nested models from default_factory; `default: {}` lets the
                    # API server apply the nested defaults the same way.
                    child["default"] = {}
                props[name] = child
            out[key] = props
        else:
            out[key] = value
    if (
        out.get("type") == "object"
        and not {
            "properties",
            "additionalProperties",
            "x-kubernetes-preserve-unknown-fields",
        }
        & out.keys()
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if (
        "type" not in out
        and not out.get("x-kubernetes-int-or-string")
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        raise SchemaError(f"{where}: a structural schema needs a type")
    return _ordered(out)


_FIRST = ("type", "description")
_LAST = ("required", "items", "additionalProperties", "properties")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """type and description first, nested schemas last: the YAML reads like kubectl explain."""
    head = [k for k in _FIRST if k in node]
    tail = [k for k in _LAST if k in node]
    middle = sorted(k for k in node if k not in _FIRST and k not in _LAST)
    return {k: node[k] for k in (*head, *middle, *tail)}


def structural_schema(model: type[BaseModel], *, defaults: bool = True) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of a pydantic model (camelCase, serialized defaults)."""
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.get("$defs", {})
    return _convert(raw, defs, model.__name__, defaults)


@dataclass(frozen=True)
class Kind:
    """One custom resource of the operator: names, models, columns, root CEL rules."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[dict[str, Any]]
    rules: tuple[dict[str, str], ...] = ()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def file_name(self) -> str:
        return f"{self.crd_name}.yaml"


def openapi_schema(kind: Kind | None = None) -> dict[str, Any]:
    """The whole object: apiVersion, kind, metadata, spec, status."""
    kind = kind or LOADTEST
    schema: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION},
            "kind": {"type": "string", "description": kind.kind},
            # The API server refuses anything but `type: object` here (name and generateName
            # aside): it owns the metadata schema.
            "metadata": {"type": "object"},
            "spec": structural_schema(kind.spec),
            "status": structural_schema(kind.status, defaults=False),
        },
    }
    if kind.rules:
        schema["x-kubernetes-validations"] = [dict(rule) for rule in kind.rules]
    return schema


LOADTEST_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
     "description": "Pending, Starting, Running, Paused, Succeeded or Failed."},
    {"name": "Target TPS", "type": "number", "jsonPath": ".status.targetTPS",
     "description": "Rate the curve asks for now, req/s."},
    {"name": "Actual TPS", "type": "number", "jsonPath": ".status.achievedTPS",
     "description": "Rate achieved by the load pods, req/s."},
    {"name": "P99", "type": "number", "jsonPath": ".status.latencyMs.p99",
     "description": "99th percentile latency, ms."},
    {"name": "Errors", "type": "integer", "jsonPath": ".status.errors",
     "description": "Failed requests in this run."},
    {"name": "Pods", "type": "string", "jsonPath": ".status.pods",
     "description": "Ready/desired load pods."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]  # fmt: skip

SCHEDULE_COLUMNS: list[dict[str, Any]] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule",
     "description": "Cron schedule of runs."},
    {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend",
     "description": "No new runs while true."},
    {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount",
     "description": "Runs not finished yet."},
    {"name": "Last Verdict", "type": "string", "jsonPath": ".status.lastVerdict",
     "description": "Verdict of the last finished run."},
    {"name": "Next", "type": "date", "jsonPath": ".status.nextScheduleTime",
     "description": "Next slot of the cron schedule of runs."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]  # fmt: skip

LOADTEST = Kind(
    kind=KIND,
    plural=PLURAL,
    singular=SINGULAR,
    short_names=SHORT_NAMES,
    description="A load test: a rate curve against targets, run by a fleet of load pods.",
    spec=LoadTestSpec,
    status=LoadTestStatus,
    columns=LOADTEST_COLUMNS,
)
SCHEDULE = Kind(
    kind=SCHEDULE_KIND,
    plural=SCHEDULE_PLURAL,
    singular=SCHEDULE_SINGULAR,
    short_names=SCHEDULE_SHORT_NAMES,
    description="A cron schedule of runs: each firing creates a LoadTest from the template.",
    spec=LoadTestScheduleSpec,
    status=LoadTestScheduleStatus,
    columns=SCHEDULE_COLUMNS,
    rules=(
        {
            "rule": f"size(self.metadata.name) <= {MAX_SCHEDULE_NAME}",
            "reason": "FieldValueInvalid",
            "message": f"metadata.name must be at most {MAX_SCHEDULE_NAME} characters: runs are "
            "named <schedule>-<yyyymmddhhmm> and that name is a label value",
        },
    ),
)
KINDS = (LOADTEST, SCHEDULE)


def crd(kind: Kind | None = None) -> dict[str, Any]:
    """The CustomResourceDefinition object of one kind (default: loadtests.kar98k.dev)."""
    kind = kind or LOADTEST
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "kar98k"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": kind.plural,
                "singular": kind.singular,
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "shortNames": list(kind.short_names),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


HEADER = (
    "# Generated from the pydantic models by `python -m kar98k_operator.crd`; do not edit.\n"
    "# tests/operator/test_crd.py fails when this file and the models disagree.\n"
)


class _NoAliases(yaml.SafeDumper):
    """Repeat shared lists (enums) instead of writing YAML anchors into the CRD."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(kind: Kind | None = None) -> str:
    """One CRD as YAML, exactly as committed in crds/ (default: the LoadTest's)."""
    body = yaml.dump(crd(kind), Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


def write(directories: list[Path]) -> list[Path]:
    """Write every CRD into each directory (crds/ and the chart's copy)."""
    written = []
    for directory in directories:
        for kind in KINDS:
            target = directory / kind.file_name
            target.write_text(render(kind), encoding="utf-8")
            written.append(target)
    return written


def main() -> None:
    """No arguments: the LoadTest CRD on stdout; `--write DIR...`: every CRD into each DIR."""
    args = sys.argv[1:]
    if args[:1] == ["--write"]:
        for target in write([Path(a) for a in args[1:]]):
            sys.stdout.write(f"wrote {target}\n")
        return
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
