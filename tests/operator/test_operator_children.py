"""Children are idempotent: ensured twice, written once; a changed spec is patched in place."""

from __future__ import annotations

from typing import Any

from kar98k.spec import parse_spec
from kar98k_operator.children import Children, replacing
from kar98k_operator.config import OperatorConfig
from kar98k_operator.kube import Kube, path

OWNER = {
    "apiVersion": "kar98k.dev/v1alpha1",
    "kind": "LoadTest",
    "metadata": {"name": "shop", "namespace": "perf", "uid": "uid-1"},
}
DEPLOYMENT = path("apps/v1", "deployments", namespace="perf", name="shop-loadpod")
SECRET = path("v1", "secrets", namespace="perf", name="shop-loadpod-token")


def spec(**load_pods: Any) -> Any:
    return parse_spec(
        {"targets": [{"name": "a", "url": "http://svc/"}], "pattern": {"baseTPS": 5},
         "loadPods": load_pods}
    )  # fmt: skip


async def test_ensure_twice_writes_once_and_keeps_the_token(bare_api: Kube) -> None:
    children = Children(bare_api, OperatorConfig())
    token = await children.ensure_secret(OWNER)
    first = await children.ensure_deployment(OWNER, spec(replicas=2), 2)
    assert await children.ensure_secret(OWNER) == token
    again = await children.ensure_deployment(OWNER, spec(replicas=2), 2)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    secret = await bare_api.get(SECRET)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


async def test_changed_spec_is_patched_in_place(bare_api: Kube) -> None:
    children = Children(bare_api, OperatorConfig())
    first = await children.ensure_deployment(OWNER, spec(nodeSelector={"pool": "load"}), 1)
    second = await children.ensure_deployment(OWNER, spec(replicas=3), 3)
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert second["spec"]["replicas"] == 3
    assert "nodeSelector" not in second["spec"]["template"]["spec"]
    await children.scale(OWNER, 0)
    assert (await bare_api.get(DEPLOYMENT))["spec"]["replicas"] == 0
    await children.delete_all(OWNER)
    assert (await bare_api.get_or_none(DEPLOYMENT)) is None
    assert (await bare_api.get_or_none(SECRET)) is None


def test_replacing_nulls_what_is_no_longer_wanted() -> None:
    actual = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    desired = {"a": 1, "b": {"c": 5}, "e": [3]}
    assert replacing(actual, desired) == {"a": 1, "b": {"c": 5, "d": None}, "e": [3]}
