"""The CRD's CEL rules, proven on the real API server, agree with the Python model.

Each case breaks one rule. The real kube-apiserver must refuse it at create (server-side dry run,
what `kubectl apply` meets) with a message naming the field, and the model (`kar98k validate`, the
local runner, the operator) must refuse it naming the same field. A last test checks that every
rule in the generated CRD has a case here, so a new rule cannot ship unproven.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from conftest import BARE_NAMESPACE as NS
from conftest import CRD_FILE as CRD
from kar98k.spec import SpecError, parse_schedule, parse_spec
from kar98k_operator import names
from kar98k_operator.kube import JSON, Kube, KubeError, path
from lt_helpers import lt_path, manifest

GRPC_TARGET = {"name": "g", "url": "grpc://127.0.0.1:50051", "protocol": "grpc"}

# (what breaks, the spec change, the field the API server names, the field the model names)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("maxTPS below baseTPS", {"pattern": {"baseTPS": 100, "maxTPS": 10}},
     "spec.pattern.maxTPS", "spec.pattern.maxTPS"),
    ("minTPS above baseTPS", {"pattern": {"baseTPS": 10, "minTPS": 20}},
     "spec.pattern.minTPS", "spec.pattern.minTPS"),
    ("spikes with no rate", {"pattern": {"baseTPS": 10, "spikes": {"enabled": True}}},
     "spec.pattern.spikes.lambda", "spec.pattern.spikes.lambda"),
    ("lambda and meanInterval",
     {"pattern": {"baseTPS": 10, "spikes": {"lambda": 0.1, "meanInterval": "10s"}}},
     "spec.pattern.spikes.meanInterval", "spec.pattern.spikes.meanInterval"),
    ("zero meanInterval", {"pattern": {"baseTPS": 10, "spikes": {"meanInterval": "0s"}}},
     "spec.pattern.spikes.meanInterval", "spec.pattern.spikes.meanInterval"),
    ("maxInterval below minInterval",
     {"pattern": {"baseTPS": 10, "spikes": {"minInterval": "1m", "maxInterval": "30s"}}},
     "spec.pattern.spikes.maxInterval", "spec.pattern.spikes.maxInterval"),
    ("duplicate target names",
     {"targets": [{"name": "a", "url": "http://x/"}, {"name": "a", "url": "http://y/"}]},
     "spec.targets[1]", "spec.targets"),
    ("no target with weight", {"targets": [{"name": "a", "url": "http://x/", "weight": 0}]},
     "spec.targets", "spec.targets"),
    ("http URL for grpc", {"targets": [{**GRPC_TARGET, "url": "http://127.0.0.1:50051"}]},
     "spec.targets[0].url", "spec.targets[0].url"),
    ("grpc URL for http", {"targets": [{"name": "a", "url": "grpc://127.0.0.1:1"}]},
     "spec.targets[0].url", "spec.targets[0].url"),
    ("grpc block on http", {"targets": [{"name": "a", "url": "http://x/", "grpc": {}}]},
     "spec.targets[0].grpc", "spec.targets[0].grpc"),
    ("zero request timeout", {"targets": [{"name": "a", "url": "http://x/", "timeout": "0s"}]},
     "spec.targets[0].timeout", "spec.targets[0].timeout"),
    ("zero health interval",
     {"targets": [{"name": "a", "url": "http://x/", "healthCheck": {"interval": "0ms"}}]},
     "spec.targets[0].healthCheck.interval", "spec.targets[0].healthCheck.interval"),
    ("zero health timeout",
     {"targets": [{"name": "a", "url": "http://x/", "healthCheck": {"timeout": "0"}}]},
     "spec.targets[0].healthCheck.timeout", "spec.targets[0].healthCheck.timeout"),
    ("minReady above replicas", {"loadPods": {"replicas": 2, "minReady": 3}},
     "spec.loadPods.minReady", "spec.loadPods.minReady"),
    ("zero startTimeout", {"loadPods": {"startTimeout": "0s"}},
     "spec.loadPods.startTimeout", "spec.loadPods.startTimeout"),
    ("zero duration", {"duration": "0s"}, "spec.duration", "spec.duration"),
    ("operator's pod label in the overlay",
     {"loadPods": {"template": {"metadata": {"labels": {"kar98k.dev/loadtest": "other"}}}}},
     "spec.loadPods.template.metadata.labels", "spec.loadPods.template.metadata.labels"),
    ("zero search window", {"search": {"window": "0s"}}, "spec.search.window",
     "spec.search.window"),
    ("zero confirm window", {"search": {"confirmWindow": "0ms"}}, "spec.search.confirmWindow",
     "spec.search.confirmWindow"),
    ("safety with no rule", {"safety": {"sustainedFor": "5s"}}, "spec.safety.errorRateAbove",
     "spec.safety.errorRateAbove"),
    ("safety scale without scaleTo", {"safety": {"errorRateAbove": 0.5, "action": "scale"}},
     "spec.safety.scaleTo", "spec.safety.scaleTo"),
    ("safety scaleTo without scale", {"safety": {"errorRateAbove": 0.5, "scaleTo": 0.5}},
     "spec.safety.scaleTo", "spec.safety.scaleTo"),
    ("zero safety p95Above", {"safety": {"p95Above": "0ms"}}, "spec.safety.p95Above",
     "spec.safety.p95Above"),
    ("zero safety sustainedFor", {"safety": {"errorRateAbove": 0.1, "sustainedFor": "0s"}},
     "spec.safety.sustainedFor", "spec.safety.sustainedFor"),
    ("zero safety window", {"safety": {"errorRateAbove": 0.1, "window": "0"}},
     "spec.safety.window", "spec.safety.window"),
    ("zero safety resumeAfter", {"safety": {"errorRateAbove": 0.1, "resumeAfter": "0s"}},
     "spec.safety.resumeAfter", "spec.safety.resumeAfter"),
]  # fmt: skip


def broken(change: dict[str, Any]) -> dict[str, Any]:
    body = manifest("broken", "http://127.0.0.1:9/")
    body["spec"].pop("loadPods")
    body["spec"].update(copy.deepcopy(change))
    return body


async def refusal(api: Kube, body: dict[str, Any]) -> str:
    """The API server's answer to a server-side dry-run create (nothing is stored)."""
    with pytest.raises(KubeError) as refused:
        await api.request("POST", lt_path(NS), body=body, params={"dryRun": "All"})
    assert refused.value.status == 422, refused.value
    return refused.value.message


@pytest.mark.parametrize(("case", "change", "api_field", "model_field"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
async def test_the_api_server_and_the_model_refuse_the_same_field(
    bare_api: Kube, case: str, change: dict[str, Any], api_field: str, model_field: str
) -> None:
    message = await refusal(bare_api, broken(change))
    assert f"{api_field}:" in message, f"{case}: the API server said {message!r}"
    with pytest.raises(SpecError) as model:
        parse_spec(broken(change)["spec"])
    assert str(model.value).startswith(f"{model_field}:") or f"\n{model_field}:" in str(
        model.value
    ), f"{case}: the model said {model.value}"


async def test_a_valid_spec_passes_the_rules(bare_api: Kube) -> None:
    body = broken({"targets": [GRPC_TARGET, {"name": "web", "url": "https://x/", "weight": 2}]})
    body["spec"]["pattern"] = {"baseTPS": 10, "maxTPS": 10, "minTPS": 10,
                               "spikes": {"enabled": True, "meanInterval": "1m"}}  # fmt: skip
    body["spec"]["loadPods"] = {"replicas": 2, "minReady": 2}
    body["spec"]["safety"] = {"p95Above": "300ms", "action": "scale", "scaleTo": 0.5,
                              "resumeAfter": "30s"}  # fmt: skip
    answer = await bare_api.request("POST", lt_path(NS), body=body, params={"dryRun": "All"})
    assert answer["spec"]["targets"][0]["protocol"] == "grpc"
    parse_spec(body["spec"])


def _rules(schema: dict[str, Any], where: str) -> list[str]:
    found = [f"{where}{r['fieldPath']}" for r in schema.get("x-kubernetes-validations", [])]
    for name, sub in (schema.get("properties") or {}).items():
        found += _rules(sub, f"{where}.{name}")
    if "items" in schema:
        found += _rules(schema["items"], f"{where}[0]")
    return found


def test_every_rule_in_the_crd_has_a_case() -> None:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = set(_rules(schema["properties"]["spec"], "spec"))
    covered = {api for _, _, api, _ in CASES} | {"spec.targets"}
    missing = sorted(rules - covered)
    assert not missing, f"CEL rules with no case in CASES: {missing}"
    assert len(rules) >= 14


async def test_a_seed_is_accepted_up_to_its_documented_maximum(bare_api: Kube) -> None:
    """The API server reads `maximum` as a float: a bound near 2**63 once overflowed there."""
    from kar98k.spec.model import MAX_SEED  # noqa: PLC0415

    for seed in (7, MAX_SEED):
        body = broken({"pattern": {"baseTPS": 10, "seed": seed}})
        answer = await bare_api.request("POST", lt_path(NS), body=body, params={"dryRun": "All"})
        assert answer["spec"]["pattern"]["seed"] == seed
    with pytest.raises(SpecError):
        parse_spec(broken({"pattern": {"baseTPS": 10, "seed": MAX_SEED + 1}})["spec"])
    assert "spec.pattern.seed" in await refusal(
        bare_api, broken({"pattern": {"baseTPS": 10, "seed": MAX_SEED + 1}})
    )


def schedule_body(name: str, cron: str, spec_change: dict[str, Any] | None = None) -> JSON:
    run = broken(spec_change or {})
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.SCHEDULE_KIND,
        "metadata": {"name": name},
        "spec": {"schedule": cron, "template": {"spec": run["spec"]}},
    }


async def schedule_refusal(api: Kube, body: JSON) -> str:
    collection = path(names.API_VERSION, names.SCHEDULE_PLURAL, namespace=NS)
    with pytest.raises(KubeError) as refused:
        await api.request("POST", collection, body=body, params={"dryRun": "All"})
    assert refused.value.status == 422, refused.value
    return refused.value.message


async def test_the_schedule_crd_refuses_what_its_model_refuses(bare_api: Kube) -> None:
    """On the real API server: the run-name room (CEL on metadata.name), the cron pattern, and
    the template's LoadTest rules; the model says the same."""
    long_name = schedule_body("x" * 51, "@daily")
    assert "at most 50 characters" in await schedule_refusal(bare_api, long_name)
    with pytest.raises(SpecError, match=r"metadata\.name"):
        parse_schedule(long_name)
    not_cron = schedule_body("words", "every day at nine")
    assert "spec.schedule" in await schedule_refusal(bare_api, not_cron)
    with pytest.raises(SpecError, match=r"spec\.schedule"):
        parse_schedule(not_cron)
    bad_template = schedule_body("tpl", "@daily", {"pattern": {"baseTPS": 100, "maxTPS": 10}})
    message = await schedule_refusal(bare_api, bad_template)
    assert "spec.template.spec.pattern.maxTPS" in message, message
    with pytest.raises(SpecError, match=r"spec\.template\.spec\.pattern\.maxTPS"):
        parse_schedule(bad_template)
    fine = schedule_body("x" * 50, "0 9 * * 1-5")
    collection = path(names.API_VERSION, names.SCHEDULE_PLURAL, namespace=NS)
    answer = await bare_api.request("POST", collection, body=fine, params={"dryRun": "All"})
    assert answer["spec"]["concurrencyPolicy"] == "Forbid"  # defaults applied by the server
    assert answer["spec"]["successfulRunsHistoryLimit"] == 3
    parse_schedule(fine)
