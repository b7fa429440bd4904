"""Children are idempotent: ensured twice, written once; a changed spec is patched in place.

Against a real API server (defaulting, strategic fields, resourceVersions are its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import BARE_NAMESPACE as NS
from kar98k.spec import parse_spec
from kar98k_operator.children import Children, replacing
from kar98k_operator.config import OperatorConfig
from kar98k_operator.kube import JSON, Kube, path
from lt_helpers import apply, manifest

DEPLOYMENT = path("apps/v1", "deployments", namespace=NS, name="shop-loadpod")
SECRET = path("v1", "secrets", namespace=NS, name="shop-loadpod-token")


@pytest.fixture
async def owner(bare_api: Kube) -> AsyncIterator[JSON]:
    """A real LoadTest (the garbage collector deletes children of owners that do not exist)."""
    created = await apply(bare_api, NS, manifest("shop", "http://svc/"))
    yield created
    await bare_api.delete(path("kar98k.dev/v1alpha1", "loadtests", namespace=NS, name="shop"))


def spec(**load_pods: Any) -> Any:
    return parse_spec(
        {"targets": [{"name": "a", "url": "http://svc/"}], "pattern": {"baseTPS": 5},
         "loadPods": load_pods}
    )  # fmt: skip


async def test_ensure_twice_writes_once_and_keeps_the_token(bare_api: Kube, owner: JSON) -> None:
    children = Children(bare_api, OperatorConfig())
    token = await children.ensure_secret(owner)
    first = await children.ensure_deployment(owner, spec(replicas=2), 2)
    assert await children.ensure_secret(owner) == token
    again = await children.ensure_deployment(owner, spec(replicas=2), 2)
    # The Deployment controller writes status (and so resourceVersion); a spec write would
    # have raised the generation.
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    assert again["metadata"]["generation"] == first["metadata"]["generation"] == 1
    secret = await bare_api.get(SECRET)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    await children.delete_all(owner)


async def test_changed_spec_is_patched_in_place(bare_api: Kube, owner: JSON) -> None:
    children = Children(bare_api, OperatorConfig())
    first = await children.ensure_deployment(owner, spec(nodeSelector={"pool": "load"}), 1)
    second = await children.ensure_deployment(owner, spec(replicas=3), 3)
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert second["spec"]["replicas"] == 3
    assert "nodeSelector" not in second["spec"]["template"]["spec"]
    await children.scale(owner, 0)
    assert (await bare_api.get(DEPLOYMENT))["spec"]["replicas"] == 0
    await children.delete_all(owner)
    assert (await bare_api.get_or_none(DEPLOYMENT)) is None
    assert (await bare_api.get_or_none(SECRET)) is None


def test_replacing_nulls_what_is_no_longer_wanted() -> None:
    actual = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    desired = {"a": 1, "b": {"c": 5}, "e": [3]}
    assert replacing(actual, desired) == {"a": 1, "b": {"c": 5, "d": None}, "e": [3]}
