"""Hostile plans: refused with a 400 that names the field, never a 500, never a change to the
plan in force, and bounded memory however targets churn (issue 12, section 2)."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from kar98k_loadpod.histogram import LatencyHistogram
from kar98k_loadpod.plan import MAX_PLAN_BYTES, Plan
from kar98k_loadpod.recorder import MAX_RETIRED_KEPT, RETIRED
from kar98k_loadpod.runtime import PodRuntime
from kar98k_loadpod.targets import MAX_TARGETS, Target
from kit.counting_server import CountServer
from kit.loadpod import TOKEN, Pod, clean_env, loadpod_command, read_line
from kit.wait import wait_until
from kit.wire import plan_body as plan
from kit.wire import put_raw_plan
from kit.wire import target_body as target

Mutation = Callable[[dict[str, Any]], None]


def setter(key: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body[key] = value

    return mutate


def target_setter(key: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body["targets"][0][key] = value

    return mutate


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def many_targets(body: dict[str, Any]) -> None:
    first = body["targets"][0]
    body["targets"] = [{**first, "name": f"t{i}"} for i in range(MAX_TARGETS + 1)]


# (id, mutation, field path the 400 must name)
HOSTILE: list[tuple[str, Mutation, str]] = [
    ("rate true", setter("rate", True), "rate"),
    ("rate NaN", setter("rate", math.nan), "rate"),
    ("rate Infinity", setter("rate", math.inf), "rate"),
    ("epoch true", setter("epoch", True), "epoch"),
    ("epoch float", setter("epoch", 3.0), "epoch"),
    ("epoch string", setter("epoch", "4"), "epoch"),
    ("lease Infinity", setter("leaseSeconds", math.inf), "leaseSeconds"),
    ("lease NaN", setter("leaseSeconds", math.nan), "leaseSeconds"),
    ("maxInFlight true", setter("maxInFlight", True), "maxInFlight"),
    ("maxInFlight float", setter("maxInFlight", 8.0), "maxInFlight"),
    ("seed true", setter("seed", True), "seed"),
    ("seed huge", setter("seed", 10**40), "seed"),
    ("labels too many", setter("labels", {f"k{i}": "v" for i in range(40)}), "labels"),
    ("labels value long", setter("labels", {"loadtest": "x" * 300}), "labels"),
    ("timeout NaN", target_setter("timeout", math.nan), "targets[0].timeout"),
    ("timeout Infinity", target_setter("timeout", math.inf), "targets[0].timeout"),
    ("timeout 1e309", target_setter("timeout", 1e309), "targets[0].timeout"),
    ("timeout huge int", target_setter("timeout", 10**400), "targets[0].timeout"),
    ("timeout huge text", target_setter("timeout", "9" * 400 + "s"), "targets[0].timeout"),
    ("timeout over 1h", target_setter("timeout", "2h"), "targets[0].timeout"),
    ("timeout true", target_setter("timeout", True), "targets[0].timeout"),
    (
        "health interval NaN",
        target_setter("healthCheck", {"interval": math.nan}),
        "targets[0].healthCheck.interval",
    ),
    (
        "health timeout NaN",
        target_setter("healthCheck", {"timeout": math.nan}),
        "targets[0].healthCheck.timeout",
    ),
    (
        "health interval Infinity",
        target_setter("healthCheck", {"interval": math.inf}),
        "targets[0].healthCheck.interval",
    ),
    ("weight Infinity", target_setter("weight", math.inf), "targets[0].weight"),
    ("weight NaN", target_setter("weight", math.nan), "targets[0].weight"),
    ("weight true", target_setter("weight", True), "targets[0].weight"),
    ("weight string", target_setter("weight", "3"), "targets[0].weight"),
    ("weight huge", target_setter("weight", 1e300), "targets[0].weight"),
    (
        "tls string",
        target_setter("tlsInsecureSkipVerify", "yes"),
        "targets[0].tlsInsecureSkipVerify",
    ),
    ("header CRLF", target_setter("headers", {"X-A": "v\r\nX-Evil: 1"}), "targets[0].headers"),
    ("header name", target_setter("headers", {"Bad Name": "v"}), "targets[0].headers"),
    ("header too long", target_setter("headers", {"X-A": "v" * 9000}), "targets[0].headers"),
    (
        "headers too many",
        target_setter("headers", {f"X-{i}": "v" for i in range(70)}),
        "targets[0].headers",
    ),
    ("method long", target_setter("method", "G" * 5000), "targets[0].method"),
    ("too many targets", many_targets, "targets"),
]


@pytest.fixture
async def live(pod: Pod, count_server: CountServer) -> dict[str, Any]:
    """A plan in force, sending 200/s: what no hostile plan may change."""
    body = plan([target("live", count_server.url("/hostile-live"))], epoch=5, rate=200.0)
    await put_raw_plan(pod, body)
    return body


def _in_force(pod: Pod) -> tuple[int, float, list[str]]:
    runtime = pod.runtime
    assert runtime.plan is not None
    return runtime.epoch, runtime.pacer.rate, [t.name for t in runtime.plan.targets]


@pytest.mark.parametrize(
    ("mutate", "path"), [pytest.param(m, p, id=name) for name, m, p in HOSTILE]
)
async def test_hostile_plan_is_400_naming_the_field_and_changes_nothing(
    pod: Pod, live: dict[str, Any], mutate: Mutation, path: str
) -> None:
    before = _in_force(pod)
    body = json.loads(json.dumps(live))
    body["epoch"] = 6  # would be accepted if it were valid
    mutate(body)
    # json.dumps writes NaN/Infinity as JSON extensions, as a hostile client would.
    status, answer = await pod.call("PUT", "/v1/plan", data=json.dumps(body))
    assert status == 400, answer
    assert answer["error"] in ("invalid plan", "malformed JSON"), answer
    assert any(d.startswith((f"{path}: ", f"{path}.")) for d in answer["details"]), answer
    assert "X-Evil" not in json.dumps(answer)  # a refused header value is never echoed
    assert _in_force(pod) == before == (5, 200.0, ["live"])


async def test_a_huge_target_list_is_refused_before_validating_targets(pod: Pod) -> None:
    """~20k targets fit in 1 MiB; they are counted, not validated one by one."""
    one = target("t", "http://127.0.0.1:9/x")
    count = MAX_PLAN_BYTES // (len(json.dumps({**one, "name": "t00000"})) + 2) - 100
    body = plan([{**one, "name": f"t{i}"} for i in range(count)], rate=0)
    data = json.dumps(body)
    assert len(data) <= MAX_PLAN_BYTES
    started = time.perf_counter()
    status, answer = await pod.call("PUT", "/v1/plan", data=data)
    elapsed = time.perf_counter() - started
    assert status == 400
    assert answer["details"] == [f"targets: at most {MAX_TARGETS} targets, got {count}"]
    assert elapsed < 2.0  # validating ~20k targets one by one took seconds before the cap


@pytest.mark.parametrize("path", ["/v1/plan", "/v1/drain"])
@pytest.mark.parametrize("depth", [1000, 5000, 100_000])
async def test_deeply_nested_json_is_400_never_500(
    pod: Pod, live: dict[str, Any], path: str, depth: int
) -> None:
    method = "PUT" if path == "/v1/plan" else "POST"
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        status, answer = await pod.call(method, path, data=text)
        assert status == 400, answer
        assert answer["error"] == "malformed JSON", answer
        assert answer["details"] == ["nested too deeply"], answer
    assert _in_force(pod) == (5, 200.0, ["live"])
    assert pod.runtime.ready  # the drain never started


async def test_nesting_inside_a_grpc_message_is_bounded(pod: Pod, live: dict[str, Any]) -> None:
    grpc = target(
        "g", "grpc://127.0.0.1:9", protocol="grpc", grpc={"method": "/a.B/C", "message": {}}
    )
    for depth in (40, 900):
        grpc["grpc"]["message"] = nested(depth)
        body = {**live, "epoch": 6, "targets": [*live["targets"], grpc]}
        status, answer = await pod.call("PUT", "/v1/plan", data=json.dumps(body))
        assert status == 400, answer
        assert answer["details"] == ["targets[1].grpc.message: nested deeper than 32 levels"]
    assert _in_force(pod) == (5, 200.0, ["live"])


@pytest.mark.parametrize(
    "body", ['{"timeoutSeconds": true}', '{"timeoutSeconds": NaN}', '{"timeoutSeconds": "5"}']
)
async def test_hostile_drain_body_is_400_and_drains_nothing(
    pod: Pod, live: dict[str, Any], body: str
) -> None:
    status, answer = await pod.call("POST", "/v1/drain", data=body)
    assert status == 400, answer
    assert answer["details"][0].startswith("timeoutSeconds: "), answer
    assert _in_force(pod) == (5, 200.0, ["live"])


async def test_counters_of_targets_gone_from_the_plan_are_bounded_and_totals_kept(
    pod: Pod, count_server: CountServer
) -> None:
    url = count_server.url("/hostile-churn")
    first = [target(f"a{i}", url) for i in range(3)]
    await put_raw_plan(pod, plan(first, epoch=1, rate=300.0))

    async def some_sent() -> bool:
        return sum(pod.runtime.recorder.targets[f"a{i}"].requests for i in range(3)) >= 60

    await wait_until(some_sent, within=10)
    await put_raw_plan(pod, plan(first, epoch=2, rate=0.0))
    await wait_until(lambda: _idle(pod), within=10)
    sent = (await pod.raw_stats())["requests"]

    # Many plans, each with a whole new set of names: what is kept must stay bounded.
    rounds = 5
    for epoch in range(3, 3 + rounds):
        names = [target(f"r{epoch}-{i}", url) for i in range(MAX_TARGETS)]
        await put_raw_plan(pod, plan(names, epoch=epoch, rate=0.0))
    recorder = pod.runtime.recorder
    assert len(recorder.targets) <= MAX_TARGETS + MAX_RETIRED_KEPT + 1
    assert len(recorder.targets) < rounds * MAX_TARGETS  # would be 1283 if all were kept

    stats = await pod.raw_stats()
    assert not {"a0", "a1", "a2"} & stats["targets"].keys()  # folded away...
    assert stats["targets"][RETIRED]["requests"] == sent  # ...into one entry, counts intact
    assert stats["requests"] == sent == sum(t["requests"] for t in stats["targets"].values())


async def _idle(pod: Pod) -> bool:
    return pod.runtime.pacer.in_flight == 0


async def test_a_target_back_in_the_plan_keeps_its_counters(
    pod: Pod, count_server: CountServer
) -> None:
    url = count_server.url("/hostile-back")
    await put_raw_plan(pod, plan([target("back", url)], epoch=1, rate=200.0))

    async def some_sent() -> bool:
        return pod.runtime.recorder.targets["back"].requests >= 20

    await wait_until(some_sent, within=10)
    await put_raw_plan(pod, plan([target("other", url)], epoch=2, rate=0.0))
    await wait_until(lambda: _idle(pod), within=10)
    kept = (await pod.raw_stats())["targets"]["back"]["requests"]
    await put_raw_plan(pod, plan([target("back", url)], epoch=3, rate=0.0))
    assert (await pod.raw_stats())["targets"]["back"]["requests"] == kept >= 20


async def test_refused_builds_leave_no_counters_behind(pod: Pod) -> None:
    def failing(*_: Any) -> Any:
        raise RuntimeError("no executor for you")

    pod.runtime._make_executor = failing  # type: ignore[method-assign]
    for epoch in range(1, 40):
        body = plan([target(f"x{epoch}-{i}", "http://127.0.0.1:9/") for i in range(8)], rate=0)
        status, answer = await pod.call("PUT", "/v1/plan", json={**body, "epoch": epoch})
        assert status == 400, answer
        assert answer["details"][0].startswith("targets: cannot build an executor")
    assert len(pod.runtime.recorder.targets) <= MAX_RETIRED_KEPT
    assert pod.runtime.epoch == -1


def max_plan(url: str, epoch: int, prefix: str, rate: float) -> dict[str, Any]:
    """MAX_TARGETS targets filling ~1 MiB; only the first gets traffic, all get executors."""
    pad = "p" * 3550
    targets = [
        target(
            f"{prefix}{i}",
            url if i == 0 else f"http://127.0.0.{2 + i % 200}:9/x{i}",
            weight=1 if i == 0 else 0,
            method="POST",
            body=pad,
            headers={"X-Pad": "h" * 300},
        )
        for i in range(MAX_TARGETS)
    ]
    return plan(targets, epoch=epoch, rate=rate, arrival="uniform", max_in_flight=256)


@pytest.fixture
def pod_process() -> Iterator[str]:
    """The real `kar98k-loadpod` (uvloop, frozen start-up heap), as deployed."""
    proc = subprocess.Popen(
        [*loadpod_command(), "--listen", "127.0.0.1:0", "--log-level", "warning"],
        env=clean_env(KAR98K_TOKEN=TOKEN, KAR98K_POD_NAME="hostile-pod"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield read_line(proc, "listening on ").removeprefix("listening on ")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.slow
async def test_a_max_size_plan_never_stalls_pacing(
    pod_process: str, count_server: CountServer
) -> None:
    """PUT ~1 MiB plans of MAX_TARGETS new targets to a pod pacing 2,000/s: no more drops than
    in a window of small plan pushes measured just before, and late sends within 5 % of the
    sends made (built in one go, each such plan blocked the loop ~0.5 s: ~1,000 late sends
    per plan). The 5 % is CPU contention, not the pod's loop: client, pod and target share 2
    cores, and in-process the loop never stalled more than ~7 ms (bench/max_plan.py). Timing on
    a shared box: up to three attempts, one must pass."""
    rate = 2000.0
    url = count_server.url("/hostile-max")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    problems: list[str] = []
    async with aiohttp.ClientSession(base_url=pod_process, headers=headers) as session:

        async def put(data: str) -> None:
            async with session.put("/v1/plan", data=data) as resp:
                assert resp.status == 200, await resp.text()

        async def window(bodies: list[str]) -> tuple[int, int, int, float]:
            """(sent, late, dropped, seconds) while `bodies` are pushed, then 0.3 s more."""
            async with session.get("/v1/stats") as resp:
                before = await resp.json()
            started = time.perf_counter()
            for data in bodies:
                await put(data)
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.3)
            async with session.get("/v1/stats") as resp:
                after = await resp.json()
            sent = after["requests"] + after["inFlight"] - before["requests"] - before["inFlight"]
            late = after["lateSends"] - before["lateSends"]
            return sent, late, after["dropped"] - before["dropped"], elapsed

        for attempt in range(3):
            epoch = 10 * (attempt + 1)
            small = json.dumps(plan([target("warm", url)], epoch=epoch, rate=rate))
            bodies = [  # two sets of new targets, then a renewal of the second
                json.dumps(max_plan(url, epoch + 1 + min(k, 1), f"m{attempt}x{min(k, 1)}-", rate))
                for k in range(3)
            ]
            assert all(0.95 * MAX_PLAN_BYTES < len(data) <= MAX_PLAN_BYTES for data in bodies)
            await put(small)
            await asyncio.sleep(0.5)  # warm-up: connections open, pacing steady
            base_sent, base_late, base_dropped, _ = await window([small] * 3)
            sent, late, dropped, elapsed = await window(bodies)
            print(
                f"attempt {attempt + 1}: 3 max PUTs in {elapsed * 1000:.0f} ms; sent {sent}, "
                f"late {late}, dropped {dropped}; small PUTs: sent {base_sent}, "
                f"late {base_late}, dropped {base_dropped}"
            )
            if (
                dropped <= base_dropped
                and late <= base_late + 0.05 * sent
                and sent > 0.8 * rate * (elapsed + 0.3)
            ):
                return
            problems.append(f"late {late} vs {base_late}, dropped {dropped} vs {base_dropped}")
    raise AssertionError("; ".join(problems))


def test_a_dropped_histogram_is_freed_without_waiting_for_the_cycle_collector() -> None:
    """hdrh's histogram and encoder refer to each other; dropped histograms (~190 KB each)
    piled up until a full collection: 8 churned plans of 256 busy targets reached 440 MB."""
    gc.disable()
    try:
        for make in (
            LatencyHistogram,
            lambda: LatencyHistogram.decode(LatencyHistogram().encode()),
        ):
            hist = make()
            hist.record_seconds(0.01)
            inner = weakref.ref(hist._h)
            del hist
            assert inner() is None
    finally:
        gc.enable()


class _SlowExecutor:
    """Costs ~2 ms to build, so a plan of many targets is built in several slices."""

    def __init__(self, target: Target, _: int) -> None:
        deadline = time.perf_counter() + 0.002
        while time.perf_counter() < deadline:
            pass
        self.name = target.name
        self.closed = False

    async def send(self) -> str:
        return "2xx"

    async def probe(self) -> bool:
        return True

    async def close(self) -> None:
        self.closed = True


async def test_a_drain_during_a_sliced_build_never_installs_retired_targets() -> None:
    runtime = PodRuntime("race", executor_factory=_SlowExecutor)  # type: ignore[arg-type]
    runtime.start()
    try:
        first = [target("keep", "http://127.0.0.1:9/")]
        runtime.apply(Plan.model_validate(plan(first, epoch=1, rate=0)))
        kept = runtime._entries["keep"]
        more = [target(f"n{i}", "http://127.0.0.1:9/") for i in range(20)]
        build = asyncio.create_task(
            runtime.apply_plan(Plan.model_validate(plan(first + more, epoch=5, rate=0)))
        )
        drain = asyncio.create_task(runtime.drain(1.0))
        await drain
        assert not build.done()  # the drain ran while the plan was being built
        await build
        entry = runtime._entries["keep"]
        assert kept.slot.retired  # the drain retired the old one...
        assert entry is not kept and not entry.slot.retired  # ...and it was not reinstalled
        assert not entry.executor.closed  # type: ignore[attr-defined]
        assert runtime.epoch == 5 and len(runtime._entries) == 21
    finally:
        await runtime.close()
