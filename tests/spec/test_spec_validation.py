"""The LoadTest model rejects bad specs with the right path and a useful message, all at once."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kar98k.spec import (
    FieldError,
    ManifestReadError,
    SpecError,
    load_manifest,
    parse_manifest,
    parse_spec,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "loadtest.yaml"
Doc = dict[str, Any]


def example() -> Doc:
    data: Doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return data


def spec(doc: Doc) -> Doc:
    value: Doc = doc["spec"]
    return value


def pattern(doc: Doc) -> Doc:
    value: Doc = doc["spec"]["pattern"]
    return value


def target(doc: Doc, index: int) -> Doc:
    value: Doc = doc["spec"]["targets"][index]
    return value


def setter(get: Callable[[Doc], Doc], key: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        get(doc)[key] = value

    return mutate


def dropper(get: Callable[[Doc], Doc], key: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        del get(doc)[key]

    return mutate


def spikes(doc: Doc) -> Doc:
    value: Doc = pattern(doc)["spikes"]
    return value


def noise(doc: Doc) -> Doc:
    value: Doc = pattern(doc)["noise"]
    return value


def entry(index: int) -> Callable[[Doc], Doc]:
    def get(doc: Doc) -> Doc:
        value: Doc = pattern(doc)["schedule"][index]
        return value

    return get


def nth_target(index: int) -> Callable[[Doc], Doc]:
    return lambda doc: target(doc, index)


def health(doc: Doc) -> Doc:
    value: Doc = target(doc, 0)["healthCheck"]
    return value


def section(name: str) -> Callable[[Doc], Doc]:
    def get(doc: Doc) -> Doc:
        value: Doc = spec(doc)[name]
        return value

    return get


def latency(doc: Doc) -> Doc:
    value: Doc = spec(doc)["thresholds"]["latency"]
    return value


def all_weights_zero(doc: Doc) -> None:
    for item in spec(doc)["targets"]:
        item["weight"] = 0


def top(key: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc[key] = value

    return mutate


def lambda_instead(value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        del spikes(doc)["meanInterval"]
        spikes(doc)["lambda"] = value

    return mutate


# (mutation, expected path, fragment of the message)
INVALID: list[tuple[str, Callable[[Doc], None], str, str]] = [
    (
        "factor<1",
        setter(spikes, "factor", 0.5),
        "spec.pattern.spikes.factor",
        "must be >= 1, got 0.5",
    ),
    ("factor inf", setter(spikes, "factor", float("inf")), "spec.pattern.spikes.factor", "finite"),
    (
        "lambda and mean",
        setter(spikes, "lambda", 0.1),
        "spec.pattern.spikes.meanInterval",
        "not both",
    ),
    (
        "no rate",
        dropper(spikes, "meanInterval"),
        "spec.pattern.spikes.lambda",
        "give lambda or meanInterval",
    ),
    ("lambda 0", lambda_instead(0), "spec.pattern.spikes.lambda", "must be > 0"),
    (
        "meanInterval 0",
        setter(spikes, "meanInterval", "0s"),
        "spec.pattern.spikes.meanInterval",
        "> 0",
    ),
    (
        "max<min interval",
        setter(spikes, "maxInterval", "1m"),
        "spec.pattern.spikes.maxInterval",
        ">= minInterval",
    ),
    (
        "spike rampUp text",
        setter(spikes, "rampUp", "soon"),
        "spec.pattern.spikes.rampUp",
        "duration",
    ),
    ("baseTPS 0", setter(pattern, "baseTPS", 0), "spec.pattern.baseTPS", "must be > 0, got 0"),
    ("baseTPS nan", setter(pattern, "baseTPS", float("nan")), "spec.pattern.baseTPS", ""),
    ("baseTPS missing", dropper(pattern, "baseTPS"), "spec.pattern.baseTPS", "required"),
    (
        "maxTPS<base",
        setter(pattern, "maxTPS", 100),
        "spec.pattern.maxTPS",
        "must be >= baseTPS (200), got 100",
    ),
    ("minTPS>base", setter(pattern, "minTPS", 300), "spec.pattern.minTPS", "must be <= baseTPS"),
    ("minTPS<0", setter(pattern, "minTPS", -1), "spec.pattern.minTPS", "must be >= 0"),
    ("timeZone", setter(pattern, "timeZone", "Mars/Olympus"), "spec.pattern.timeZone", "IANA"),
    ("seed<0", setter(pattern, "seed", -1), "spec.pattern.seed", "must be >= 0"),
    ("seed text", setter(pattern, "seed", "abc"), "spec.pattern.seed", "integer"),
    ("ramp text", setter(pattern, "rampUp", "2 minutes"), "spec.pattern.rampUp", "duration"),
    ("hour 24", setter(entry(0), "hours", [24]), "spec.pattern.schedule[0].hours", "0-23"),
    (
        "hour range backwards",
        setter(entry(0), "hours", ["7-3"]),
        "spec.pattern.schedule[0].hours",
        "ascending",
    ),
    ("hour bool", setter(entry(0), "hours", [True]), "spec.pattern.schedule[0].hours", "boolean"),
    ("day name", setter(entry(1), "days", ["monday"]), "spec.pattern.schedule[1].days[0]", "'mon'"),
    (
        "multiplier<0",
        setter(entry(1), "multiplier", -1),
        "spec.pattern.schedule[1].multiplier",
        ">= 0",
    ),
    (
        "multiplier missing",
        dropper(entry(2), "multiplier"),
        "spec.pattern.schedule[2].multiplier",
        "required",
    ),
    (
        "amplitude>1",
        setter(noise, "amplitude", 1.5),
        "spec.pattern.noise.amplitude",
        "must be <= 1, got 1.5",
    ),
    (
        "noise type",
        setter(noise, "type", "pink"),
        "spec.pattern.noise.type",
        "'spring' or 'perlin'",
    ),
    (
        "url scheme",
        setter(nth_target(0), "url", "ftp://x.svc"),
        "spec.targets[0].url",
        "http or https",
    ),
    ("url empty", setter(nth_target(0), "url", ""), "spec.targets[0].url", "at least 1 character"),
    (
        "grpc port",
        setter(nth_target(2), "url", "grpc://inventory.svc"),
        "spec.targets[2].url",
        "explicit port",
    ),
    (
        "grpc on http",
        setter(nth_target(0), "grpc", {}),
        "spec.targets[0].grpc",
        "only allowed when protocol is grpc",
    ),
    (
        "grpc method",
        lambda d: target(d, 2)["grpc"].update(method="GetStock"),
        "spec.targets[2].grpc.method",
        "/package.Service/Method",
    ),
    ("target name", setter(nth_target(0), "name", "Bad_Name"), "spec.targets[0].name", "DNS-1123"),
    ("duplicate names", setter(nth_target(1), "name", "checkout-api"), "spec.targets", "unique"),
    ("weight<0", setter(nth_target(1), "weight", -1), "spec.targets[1].weight", ">= 0"),
    ("all weights 0", all_weights_zero, "spec.targets", "weight > 0"),
    ("http method", setter(nth_target(0), "method", "FETCH"), "spec.targets[0].method", "GET"),
    ("protocol", setter(nth_target(0), "protocol", "http3"), "spec.targets[0].protocol", "'http2'"),
    ("timeout 0", setter(nth_target(0), "timeout", "0s"), "spec.targets[0].timeout", "> 0"),
    (
        "header value",
        setter(nth_target(0), "headers", {"X-Count": 1}),
        "spec.targets[0].headers.X-Count",
        "string",
    ),
    (
        "health path",
        setter(health, "path", "healthz"),
        "spec.targets[0].healthCheck.path",
        "start with '/'",
    ),
    (
        "health interval",
        setter(health, "interval", "0s"),
        "spec.targets[0].healthCheck.interval",
        "> 0",
    ),
    ("no targets", setter(spec, "targets", []), "spec.targets", "at least 1 item"),
    ("duration text", setter(spec, "duration", "10 minutes"), "spec.duration", "'1h30m'"),
    ("duration 0", setter(spec, "duration", "0s"), "spec.duration", "must be > 0"),
    ("duration inf", setter(spec, "duration", float("inf")), "spec.duration", "finite"),
    ("paused text", setter(spec, "paused", "maybe"), "spec.paused", "boolean"),
    ("runId long", setter(spec, "runId", "x" * 64), "spec.runId", "at most 63 characters"),
    (
        "errorRate>1",
        setter(section("thresholds"), "errorRate", 2),
        "spec.thresholds.errorRate",
        "<= 1",
    ),
    (
        "ratio<0",
        setter(section("thresholds"), "minAchievedRatio", -0.1),
        "spec.thresholds.minAchievedRatio",
        ">= 0",
    ),
    (
        "latency basis",
        setter(section("thresholds"), "latencyBasis", "both"),
        "spec.thresholds.latencyBasis",
        "'corrected'",
    ),
    ("p99 text", setter(latency, "p99", "fast"), "spec.thresholds.latency.p99", "duration"),
    ("replicas 0", setter(section("loadPods"), "replicas", 0), "spec.loadPods.replicas", ">= 1"),
    (
        "perPodMaxTPS 0",
        setter(section("loadPods"), "perPodMaxTPS", 0),
        "spec.loadPods.perPodMaxTPS",
        "> 0",
    ),
    (
        "maxInFlight 0",
        setter(section("loadPods"), "maxInFlight", 0),
        "spec.loadPods.maxInFlight",
        ">= 1",
    ),
    (
        "arrival",
        setter(section("loadPods"), "arrival", "burst"),
        "spec.loadPods.arrival",
        "'poisson'",
    ),
    (
        "nodeSelector value",
        setter(section("loadPods"), "nodeSelector", {"a": 1}),
        "spec.loadPods.nodeSelector.a",
        "string",
    ),
    (
        "tolerations",
        setter(section("loadPods"), "tolerations", "x"),
        "spec.loadPods.tolerations",
        "list",
    ),
    (
        "cleanup action",
        setter(section("cleanup"), "onSuccess", "everything"),
        "spec.cleanup.onSuccess",
        "'pods'",
    ),
    (
        "ttl<0",
        setter(section("cleanup"), "ttlSecondsAfterFinished", -1),
        "spec.cleanup.ttlSecondsAfterFinished",
        ">= 0",
    ),
    ("apiVersion", top("apiVersion", "kar98k.dev/v1"), "apiVersion", "kar98k.dev/v1alpha1"),
    ("kind", top("kind", "LoadTests"), "kind", "'LoadTest'"),
    ("metadata.name", lambda d: d["metadata"].update(name="Checkout"), "metadata.name", "DNS-1123"),
    ("spec missing", dropper(lambda d: d, "spec"), "spec", "required"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [pytest.param(m, p, f, id=name) for name, m, p, f in INVALID],
)
def test_invalid_spec_names_path_and_expectation(
    mutate: Callable[[Doc], None], path: str, fragment: str
) -> None:
    doc = example()
    mutate(doc)
    with pytest.raises(SpecError) as caught:
        parse_manifest(doc)
    errors = caught.value.errors
    assert [e.path for e in errors] == [path], errors
    assert fragment in errors[0].message


def test_at_least_thirty_distinct_invalid_specs() -> None:
    assert len({path for _, _, path, _ in INVALID}) >= 30


def test_example_is_valid_and_uses_every_section() -> None:
    loadtest = load_manifest(EXAMPLE)
    s = loadtest.spec
    assert {t.protocol.value for t in s.targets} == {"http", "http2", "grpc"}
    assert s.pattern.spikes.enabled and s.pattern.noise.enabled and s.pattern.schedule
    assert s.thresholds.latency.p99 == 0.5
    assert s.load_pods.env and s.cleanup.ttl_seconds_after_finished == 3600


def test_example_targets_are_never_public() -> None:
    for item in load_manifest(EXAMPLE).spec.targets:
        host = item.authority.rsplit(":", 1)[0]
        assert host.endswith(".svc.cluster.local") or host in ("127.0.0.1", "localhost")


@pytest.mark.parametrize(
    ("where", "typo", "suggestion"),
    [
        (pattern, "baseTps", "baseTPS"),
        (spikes, "rampDwn", "rampDown"),
        (spec, "patern", "pattern"),
        (nth_target(0), "tlsInsecureSkipVerfy", "tlsInsecureSkipVerify"),
    ],
)
def test_unknown_field_suggests_the_close_name(
    where: Callable[[Doc], Doc], typo: str, suggestion: str
) -> None:
    doc = example()
    where(doc)[typo] = 1
    with pytest.raises(SpecError) as caught:
        parse_manifest(doc)
    (error,) = caught.value.errors
    assert error.message == f"unknown field; did you mean {suggestion!r}?"


def test_unknown_field_without_close_name_has_no_suggestion() -> None:
    doc = example()
    pattern(doc)["zzzzzz"] = 1
    with pytest.raises(SpecError) as caught:
        parse_manifest(doc)
    assert caught.value.errors == [FieldError("spec.pattern.zzzzzz", "unknown field")]


def test_every_error_is_reported_at_once() -> None:
    doc = example()
    spikes(doc)["factor"] = 0.5
    target(doc, 0)["weight"] = -2
    spec(doc)["loadPods"]["replicas"] = 0
    pattern(doc)["timeZone"] = "Nowhere/Special"
    spec(doc)["bogus"] = True
    with pytest.raises(SpecError) as caught:
        parse_manifest(doc)
    paths = {e.path for e in caught.value.errors}
    assert paths == {
        "spec.pattern.spikes.factor",
        "spec.targets[0].weight",
        "spec.loadPods.replicas",
        "spec.pattern.timeZone",
        "spec.bogus",
    }
    text = str(caught.value)
    assert "spec.pattern.spikes.factor: must be >= 1, got 0.5" in text.splitlines()


def test_parse_spec_paths_start_at_spec() -> None:
    data = spec(example())
    data["pattern"]["baseTPS"] = -1
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    assert [e.path for e in caught.value.errors] == ["spec.pattern.baseTPS"]


@pytest.mark.parametrize("document", [None, [], "text", 3])
def test_a_manifest_must_be_a_mapping(document: Any) -> None:
    with pytest.raises(SpecError) as caught:
        parse_manifest(document)
    assert "must be a mapping" in caught.value.errors[0].message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: kar98k.dev/v1alpha1\nkind: LoadTest\nspec: [unclosed\n")
    with pytest.raises(ManifestReadError, match=r"line \d+"):
        load_manifest(path)


def test_unreadable_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestReadError, match="cannot read"):
        load_manifest(tmp_path / "missing.yaml")


def test_hour_strings_and_ranges_expand() -> None:
    doc = example()
    pattern(doc)["schedule"] = [{"hours": ["22-23", "7", 0], "multiplier": 2}]
    (only,) = parse_manifest(copy.deepcopy(doc)).spec.pattern.schedule
    assert only.hour_set() == frozenset({0, 7, 22, 23})
    assert only.day_set() == frozenset(range(7))


def test_the_manifest_literal_is_the_api_version() -> None:
    from typing import get_args  # noqa: PLC0415

    from kar98k.spec.model import API_VERSION, KIND, LoadTest  # noqa: PLC0415

    assert get_args(LoadTest.model_fields["api_version"].annotation) == (API_VERSION,)
    assert get_args(LoadTest.model_fields["kind"].annotation) == (KIND,)
