"""Secrets stay secret (issue 12, section 3): the control token never leaves the pod, through an
error page, a log line or a target header, and header values are never logged."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from kar98k.demo.http_server import DemoHttpServer
from kar98k_loadpod.targets import expand_env, expand_header
from kit.loadpod import TOKEN, clean_env, loadpod_command, read_line
from kit.wire import plan_body as plan
from kit.wire import target_body as target

pytestmark = pytest.mark.slow

OK_SECRET = "user-provided-5150"
CRLF_SECRET = "crlf-secret-7331\r\nX-Injected: 1"


@dataclass
class PodProcess:
    proc: subprocess.Popen[str]
    base: str

    def stderr(self) -> str:
        """Everything the pod logged, after stopping it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@pytest.fixture
def pod_process() -> Iterator[PodProcess]:
    env = clean_env(
        KAR98K_TOKEN=TOKEN,
        KAR98K_POD_NAME="secret-pod",
        K98_USER_SECRET=OK_SECRET,
        K98_CRLF_SECRET=CRLF_SECRET,
    )
    proc = subprocess.Popen(
        [*loadpod_command(), "--listen", "127.0.0.1:0", "--log-level", "debug"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield PodProcess(proc, read_line(proc, "listening on ").removeprefix("listening on "))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


async def raw_request(base: str, head: str) -> tuple[int, bytes]:
    """Send a hand-written request head; (status, body) of the answer."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode("latin-1"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), body


@pytest.mark.parametrize(
    "head",
    [
        # An Authorization header past aiohttp's 8,190-byte field limit...
        "PUT /v1/plan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}{pad}\r\n"
        "Content-Length: 0\r\n\r\n",
        # ...a request line past it, with the token in the query...
        "GET /v1/stats?token={token}{pad} HTTP/1.1\r\nHost: x\r\n\r\n",
        # ...and a header line broken in the middle of the token.
        "GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\x01{pad}\r\n\r\n",
    ],
    ids=["long header", "long request line", "bad byte"],
)
async def test_a_bad_request_head_gets_a_bland_400_and_is_not_logged(
    pod_process: PodProcess, head: str
) -> None:
    text = head.format(token=TOKEN, pad="A" * 9000)
    status, body = await raw_request(pod_process.base, text)
    assert status == 400
    assert json.loads(body) == {
        "error": "bad request",
        "details": ["malformed or oversized request line or headers"],
    }
    async with (  # the pod still serves
        aiohttp.ClientSession() as session,
        session.get(f"{pod_process.base}/healthz") as resp,
    ):
        assert resp.status == 200
    logged = pod_process.stderr()
    assert "refused a malformed HTTP request" in logged
    for leak in (TOKEN, "Bearer", "AAAAAAAA", "Traceback"):
        assert leak not in logged


async def test_expansion_never_reaches_the_pods_own_variables(
    pod_process: PodProcess, http1_server: DemoHttpServer
) -> None:
    headers = {
        "X-Token": "${KAR98K_TOKEN}",
        "X-Pod": "${KAR98K_POD_NAME}",
        "X-Lower": "${kar98k_token}",
        "X-User": "Bearer ${K98_USER_SECRET}",
    }
    body = plan([target("t", http1_server.url + "/fast", headers=headers)], rate=50.0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.put(f"{pod_process.base}/v1/plan", json=body) as resp:
            assert resp.status == 200, await resp.text()
        deadline = time.monotonic() + 10
        while not http1_server.last_headers:
            assert time.monotonic() < deadline, "no request reached the target"
            await asyncio.sleep(0.02)
    seen = http1_server.last_headers
    assert seen["x-user"] == f"Bearer {OK_SECRET}"  # what the user provided expands
    assert seen["x-token"] == seen["x-pod"] == seen["x-lower"] == ""
    assert TOKEN not in json.dumps(seen)
    logged = pod_process.stderr()
    assert "plan applied" in logged  # debug logs on, and still:
    for leak in (TOKEN, OK_SECRET, "K98_USER_SECRET"):
        assert leak not in logged


@pytest.mark.parametrize("protocol", ["http", "http2"])
async def test_an_expanded_value_with_crlf_is_refused_and_never_logged(
    pod_process: PodProcess, http1_server: DemoHttpServer, protocol: str
) -> None:
    bad = target(
        "crlf", "http://127.0.0.1:9/", protocol=protocol, headers={"X-A": "${K98_CRLF_SECRET}"}
    )
    good = target("good", http1_server.url + "/fast")
    body = plan([bad, good], rate=100.0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.put(f"{pod_process.base}/v1/plan", json=body) as resp:
            assert resp.status == 200, await resp.text()

        async def outcomes() -> dict[str, Any]:
            async with session.get(f"{pod_process.base}/v1/stats") as resp:
                return dict((await resp.json())["targets"]["crlf"]["outcomes"])

        deadline = time.monotonic() + 10
        while (await outcomes()).get("error", 0) < 5:
            assert time.monotonic() < deadline, await outcomes()
            await asyncio.sleep(0.05)
        assert set(await outcomes()) == {"error"}  # never sent: nothing but errors
    logged = pod_process.stderr()
    assert "expanded value contains CR, LF or NUL" in logged
    for leak in ("crlf-secret", "X-Injected", TOKEN):
        assert leak not in logged


def test_expand_env_refuses_reserved_names_in_any_case() -> None:
    env = {"KAR98K_TOKEN": "t", "Kar98k_Token": "t2", "API_TOKEN": "a", "KAR98KX": "k"}
    assert expand_env("${KAR98K_TOKEN}|${Kar98k_Token}|${API_TOKEN}|${KAR98KX}", env) == "||a|k"
    assert expand_env("${MISSING}-${API_TOKEN}", env) == "-a"


def test_expand_header_error_never_quotes_the_value() -> None:
    with pytest.raises(ValueError) as caught:
        expand_header("X-A", "${S}", {"S": "hunter2\r\nX-B: 1"})
    assert "hunter2" not in str(caught.value)
    assert "X-A" in str(caught.value)


async def test_the_token_leaves_the_environment_once_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import os  # noqa: PLC0415 - the process environment is what is under test

    from kar98k_loadpod.main import read_token  # noqa: PLC0415

    monkeypatch.setenv("KAR98K_TOKEN", "env-token-1")
    assert read_token(None) == "env-token-1"
    assert "KAR98K_TOKEN" not in os.environ
