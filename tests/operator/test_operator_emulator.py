"""The gaps of kmock 0.8 that the test emulator closes, each pinned by a test."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from k8s_emulator import label_match
from kar98k_operator.kube import JSON_PATCH, Conflict, Kube, KubeError, NotFound, path

PODS = path("v1", "pods", namespace="ns")


@pytest.fixture
async def api(bare_api: Kube) -> Kube:
    return bare_api


def pod(name: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": []}}


async def test_create_fills_metadata_and_answers_201(api: Kube) -> None:
    created = await api.create(PODS, pod("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    assert meta["generation"] == 1 and meta["namespace"] == "ns"
    named = await api.create(PODS, {"metadata": {"generateName": "kopf-event-"}})
    assert named["metadata"]["name"].startswith("kopf-event-")
    with pytest.raises(Conflict):
        await api.create(PODS, pod("a"))


async def test_label_and_field_selectors_filter_lists(api: Kube) -> None:
    await api.create(PODS, pod("a", app="x", tier="web"))
    await api.create(PODS, pod("b", app="y"))
    names = lambda listing: sorted(i["metadata"]["name"] for i in listing["items"])  # noqa: E731
    assert names(await api.list(PODS, label_selector="app=x")) == ["a"]
    assert names(await api.list(PODS, label_selector="app in (x,y),!tier")) == ["b"]
    listing = await api.get(PODS, params={"fieldSelector": "metadata.name=b"})
    assert names(listing) == ["b"]
    assert label_match("a!=1,b", {"a": "2", "b": ""})


async def test_stale_resource_version_conflicts(api: Kube) -> None:
    created = await api.create(PODS, pod("a"))
    stale = created["metadata"]["resourceVersion"]
    item = f"{PODS}/a"
    await api.merge_patch(item, {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(Conflict):
        await api.merge_patch(item, {"metadata": {"resourceVersion": stale, "labels": {"x": "2"}}})
    with pytest.raises(Conflict):
        await api.replace(item, {**created, "spec": {"containers": [{"name": "c"}]}})
    test_op = [{"op": "test", "path": "/metadata/resourceVersion", "value": stale}]
    with pytest.raises(KubeError) as info:
        await api.request("PATCH", item, body=test_op, content_type=JSON_PATCH)
    assert info.value.status == 422


async def test_status_subresource_is_isolated_and_generation_counts_spec(api: Kube) -> None:
    await api.create(PODS, {**pod("a"), "status": {"phase": "Ignored"}})
    item = f"{PODS}/a"
    assert "status" not in await api.get(item)
    after_status = await api.merge_patch(f"{item}/status", {"status": {"phase": "Running"}})
    assert after_status["status"] == {"phase": "Running"}
    assert after_status["metadata"]["generation"] == 1
    after_main = await api.merge_patch(item, {"status": {"phase": "Hacked"}, "spec": {"x": 1}})
    assert after_main["status"] == {"phase": "Running"}
    assert after_main["metadata"]["generation"] == 2
    labels_only = await api.merge_patch(item, {"metadata": {"labels": {"a": "b"}}})
    assert labels_only["metadata"]["generation"] == 2


async def test_finalizers_block_deletion_and_garbage_is_collected(api: Kube) -> None:
    owner = await api.create(
        PODS, {**pod("owner"), "metadata": {"name": "owner", "finalizers": ["f"]}}
    )
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner["metadata"]["uid"]}
    await api.create(PODS, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    await api.create(
        path("v1", "secrets", namespace="ns"), {"metadata": {"name": "s", "ownerReferences": [ref]}}
    )
    await api.delete(f"{PODS}/owner")
    marked = await api.get(f"{PODS}/owner")
    assert marked["metadata"]["deletionTimestamp"]
    await api.get(f"{PODS}/child")  # still there while the owner is
    remove = [{"op": "remove", "path": "/metadata/finalizers"}]
    await api.request("PATCH", f"{PODS}/owner", body=remove, content_type=JSON_PATCH)
    for gone in (f"{PODS}/owner", f"{PODS}/child", path("v1", "secrets", namespace="ns", name="s")):
        with pytest.raises(NotFound):
            await api.get(gone)


async def test_watch_filters_by_label_and_resumes_from_a_resource_version(api: Kube) -> None:
    first = await api.create(PODS, pod("a", app="x"))
    await api.create(PODS, pod("b", app="y"))
    await api.merge_patch(f"{PODS}/a", {"metadata": {"labels": {"app": "x", "v": "2"}}})
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for event in api.watch(
            PODS, label_selector="app=x", resource_version=first["metadata"]["resourceVersion"]
        ):
            seen.append((event["type"], event["object"]["metadata"]["name"]))

    task = asyncio.create_task(consume())
    try:
        await _until(lambda: len(seen) >= 1)
        await api.delete(f"{PODS}/a")
        await _until(lambda: len(seen) >= 2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen == [("MODIFIED", "a"), ("DELETED", "a")]


async def test_watch_misses_nothing_under_concurrent_writes(api: Kube) -> None:
    await api.create(PODS, pod("a"))
    seen: list[str] = []

    connected = asyncio.Event()

    async def consume() -> None:
        async for event in api.watch(PODS):
            if event["type"] == "ADDED":
                connected.set()  # the initial listing: the watch is live from here on
            if event["type"] == "MODIFIED":
                seen.append(event["object"]["metadata"]["labels"]["n"])

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(connected.wait(), 3)

        async def write(n: int) -> None:
            await api.merge_patch(f"{PODS}/a", {"metadata": {"labels": {"n": str(n)}}})

        for wave in range(5):
            await asyncio.gather(*(write(wave * 20 + i) for i in range(20)))
        await _until(lambda: len(seen) >= 100, within=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert sorted(map(int, seen)) == list(range(100))


async def test_namespaces_and_crds_are_served(api: Kube) -> None:
    await api.create(path("v1", "namespaces"), {"metadata": {"name": "team"}})
    listing = await api.list(path("v1", "namespaces"))
    assert [n["metadata"]["name"] for n in listing["items"]] == ["team"]
    crd = {
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "subresources": {"status": {}}}],
        },
    }  # fmt: skip
    await api.create(path("apiextensions.k8s.io/v1", "customresourcedefinitions"), crd)
    discovery = await api.get("/apis/example.dev/v1")
    names = {r["name"] for r in discovery["resources"]}
    assert names == {"widgets", "widgets/status"}
    await api.create(
        path("example.dev/v1", "widgets", namespace="team"), {"metadata": {"name": "w"}}
    )


async def _until(predicate: object, within: float = 3.0) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
