"""The Gemini simulator, driven by the real google-genai SDK over a real socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from google import genai
from google.genai import errors, types

from dev.gemini_sim import SimConfig, create_app

MODEL = "gemini-2.5-flash"
# google-genai's sync client uses httpx2 (ReadTimeout); its async client uses aiohttp when that is
# installed, with a total-request timeout that raises the builtin TimeoutError.
TIMEOUTS = (httpx2.TimeoutException, TimeoutError)
REPO_ROOT = Path(__file__).resolve().parents[3]


def _wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(SimConfig(token_delay_ms=1, reply_tokens=12, hang_seconds=5))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait_until(lambda: server.started or not thread.is_alive(), 10, "the simulator to start")
    assert server.started, "the simulator did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(autouse=True)
def _reset(sim_url: str) -> None:
    httpx.post(f"{sim_url}/_sim/reset").raise_for_status()


def _control(sim_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{sim_url}/_sim/{path}", json=body)
    response.raise_for_status()
    return response.json()


def _records(sim_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{sim_url}/_sim/requests").json()["requests"]


def _client(sim_url: str, **options: Any) -> genai.Client:
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=sim_url, **options))


@pytest.fixture
def client(sim_url: str) -> Iterator[genai.Client]:
    c = _client(sim_url)
    yield c
    c.close()


@pytest.fixture
async def aclient(sim_url: str) -> AsyncIterator[Any]:
    c = _client(sim_url)
    yield c.aio
    await c.aio.aclose()


def _history(*texts: str) -> list[types.Content]:
    """Alternating user/model turns, ending with a user turn."""
    last = len(texts) - 1
    return [
        types.Content(role="user" if (last - i) % 2 == 0 else "model", parts=[types.Part(text=t)])
        for i, t in enumerate(texts)
    ]


def test_sync_generate_content_returns_a_reply_to_the_prompt(client: genai.Client) -> None:
    response = client.models.generate_content(model=MODEL, contents="Tell me about tea")

    assert response.text.startswith('Simulated Gemini reply to "Tell me about tea".')
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (4, 12)
    assert usage.total_token_count == 16
    assert response.model_version == MODEL
    assert response.response_id


async def test_async_streaming_joins_to_the_non_streaming_text(aclient: Any) -> None:
    whole = await aclient.models.generate_content(model=MODEL, contents="Tell me about tea")

    chunks = [
        c
        async for c in await aclient.models.generate_content_stream(
            model=MODEL, contents="Tell me about tea"
        )
    ]

    assert len(chunks) == 12
    assert "".join(c.text for c in chunks) == whole.text
    assert [c.candidates[0].finish_reason for c in chunks[:-1]] == [None] * 11
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 12
    assert chunks[0].usage_metadata is None


def test_v1beta_is_served_too(sim_url: str) -> None:
    client = _client(sim_url, api_version="v1beta")
    response = client.models.generate_content(model=MODEL, contents="hi")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    client.close()

    assert response.text.startswith("Simulated Gemini reply")
    assert "".join(c.text for c in chunks) == response.text

    paths = [(r["path"], r["query"]) for r in _records(sim_url)]
    assert paths == [
        (f"/v1beta/models/{MODEL}:generateContent", ""),
        (f"/v1beta/models/{MODEL}:streamGenerateContent", "alt=sse"),
    ]


def test_the_reply_depends_on_the_history_and_repeats_for_the_same_input(
    client: genai.Client,
) -> None:
    def reply(*texts: str) -> str:
        return client.models.generate_content(model=MODEL, contents=_history(*texts)).text

    with_ada = reply("My name is Ada Lovelace, hello", "Hello Ada!", "What is my name?")
    with_bob = reply("My name is Bob the builder", "Hello Bob!", "What is my name?")

    assert '(1 turn) you said: "My name is Ada"' in with_ada
    assert '"My name is Bob"' in with_bob
    assert with_ada != with_bob
    assert reply("My name is Ada Lovelace, hello", "Hello Ada!", "What is my name?") == with_ada


def test_the_history_sent_is_recorded(client: genai.Client, sim_url: str) -> None:
    client.models.generate_content(
        model=MODEL,
        contents=_history("first question", "first answer", "second question"),
        config=types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=50),
    )

    [record] = _records(sim_url)
    assert record["model"] == MODEL and record["stream"] is False
    assert [(c["role"], c["parts"][0]["text"]) for c in record["contents"]] == [
        ("user", "first question"),
        ("model", "first answer"),
        ("user", "second question"),
    ]
    assert record["systemInstruction"]["parts"] == [{"text": "be brief"}]
    assert record["generationConfig"]["maxOutputTokens"] == 50
    assert (record["fault"], record["status"]) == (None, 200)


@pytest.mark.parametrize(
    ("marker", "error", "code", "status"),
    [
        ("[sim:400]", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("[sim:403]", errors.ClientError, 403, "PERMISSION_DENIED"),
        ("[sim:429]", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("[sim:500]", errors.ServerError, 500, "INTERNAL"),
        ("[sim:503]", errors.ServerError, 503, "UNAVAILABLE"),
    ],
)
def test_error_markers_raise_the_sdk_error(
    client: genai.Client, sim_url: str, marker: str, error: type, code: int, status: str
) -> None:
    with pytest.raises(error) as raised:
        client.models.generate_content(model=MODEL, contents=f"please fail {marker}")
    with pytest.raises(error):
        list(client.models.generate_content_stream(model=MODEL, contents=f"fail {marker}"))

    assert (raised.value.code, raised.value.status) == (code, status)
    assert [(r["fault"], r["status"]) for r in _records(sim_url)] == [(str(code), code)] * 2


def _retry_delay(error: errors.APIError) -> str:
    [info] = [
        d for d in error.details["error"]["details"] if d["@type"].endswith("google.rpc.RetryInfo")
    ]
    return info["retryDelay"]


def test_429_carries_a_retry_delay_that_the_marker_can_set(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as default:
        client.models.generate_content(model=MODEL, contents="[sim:429]")
    with pytest.raises(errors.ClientError) as custom:
        client.models.generate_content(model=MODEL, contents="[sim:429:2s]")

    assert _retry_delay(default.value) == "1s"
    assert _retry_delay(custom.value) == "2s"


async def test_a_counted_fault_fails_that_prompt_n_times_then_succeeds(aclient: Any) -> None:
    for _ in range(2):
        with pytest.raises(errors.ServerError) as raised:
            await aclient.models.generate_content(model=MODEL, contents="flaky [sim:503x2]")
        assert raised.value.code == 503
    with pytest.raises(errors.ServerError):  # another prompt has its own count
        await aclient.models.generate_content(model=MODEL, contents="other [sim:503x2]")

    response = await aclient.models.generate_content(model=MODEL, contents="flaky [sim:503x2]")

    assert response.text.startswith('Simulated Gemini reply to "flaky [sim:503x2]"')


def test_configured_faults_hit_any_prompt_until_used_up_or_cleared(
    client: genai.Client, sim_url: str
) -> None:
    assert _control(sim_url, "faults", {"fault": "503", "count": 2}) == {
        "fault": "503",
        "remaining": 2,
    }
    for prompt in ("one", "two"):
        with pytest.raises(errors.ServerError):
            client.models.generate_content(model=MODEL, contents=prompt)
    assert client.models.generate_content(model=MODEL, contents="three").text

    _control(sim_url, "faults", {"fault": "429:3s"})
    for _ in range(3):
        with pytest.raises(errors.ClientError) as raised:
            client.models.generate_content(model=MODEL, contents="again")
    assert _retry_delay(raised.value) == "3s"
    _control(sim_url, "faults", {"fault": None})
    assert client.models.generate_content(model=MODEL, contents="again").text

    sources = [r["fault_source"] for r in _records(sim_url)]
    assert sources == ["config", "config", None, "config", "config", "config", None]


def test_bad_fault_requests_and_unknown_markers_are_refused(
    client: genai.Client, sim_url: str
) -> None:
    assert httpx.post(f"{sim_url}/_sim/faults", json={"fault": "418"}).status_code == 400
    assert httpx.post(f"{sim_url}/_sim/config", json={"reply_tokens": 0}).status_code == 400

    with pytest.raises(errors.ClientError, match="unknown simulator marker"):
        client.models.generate_content(model=MODEL, contents="[sim:typo]")


def test_a_request_without_an_api_key_is_denied(sim_url: str) -> None:
    response = httpx.post(
        f"{sim_url}/v1/models/{MODEL}:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )

    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
    ok = httpx.post(
        f"{sim_url}/v1/models/{MODEL}:generateContent?key=k",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert ok.status_code == 200


def test_streaming_without_alt_sse_answers_one_json_array(sim_url: str) -> None:
    # What the legacy google-generativeai SDK asks for; google-genai always sends alt=sse.
    request = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url = f"{sim_url}/v1beta/models/{MODEL}"
    headers = {"x-goog-api-key": "k"}

    chunks = httpx.post(f"{url}:streamGenerateContent", json=request, headers=headers).json()
    whole = httpx.post(f"{url}:generateContent", json=request, headers=headers).json()

    texts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks]
    assert "".join(texts) == whole["candidates"][0]["content"]["parts"][0]["text"]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_a_blocked_prompt_has_feedback_and_no_candidates(aclient: Any) -> None:
    response = await aclient.models.generate_content(model=MODEL, contents="[sim:safety] x")
    chunks = [
        c
        async for c in await aclient.models.generate_content_stream(
            model=MODEL, contents="[sim:safety] x"
        )
    ]

    for blocked in (response, chunks[-1]):
        assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
        assert not blocked.candidates
        assert blocked.text is None


async def test_a_safety_stop_mid_stream_ends_with_an_empty_safety_chunk(aclient: Any) -> None:
    chunks = [
        c
        async for c in await aclient.models.generate_content_stream(
            model=MODEL, contents="[sim:safety-mid] tell me"
        )
    ]

    assert len(chunks) > 2
    assert "".join(c.text for c in chunks[:-1]).startswith("Simulated Gemini reply")
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.SAFETY
    assert chunks[-1].text is None


def test_max_output_tokens_truncates_with_max_tokens(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(max_output_tokens=3)
    )

    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.usage_metadata.candidates_token_count == 3


def test_a_hang_makes_the_sdk_time_out_and_ends_when_the_client_leaves(sim_url: str) -> None:
    _control(sim_url, "config", {"hang_seconds": 60})
    client = _client(sim_url, timeout=300)  # milliseconds

    with pytest.raises(httpx2.TimeoutException):
        client.models.generate_content(model=MODEL, contents="[sim:hang]")
    client.close()

    # The simulator notices the disconnect instead of holding the request for 60 s.
    _wait_until(lambda: _records(sim_url)[0]["status"] == 499, 5, "the hang to end")


async def test_a_hang_mid_stream_sends_some_chunks_then_stalls(sim_url: str) -> None:
    client = _client(sim_url, timeout=300)
    received: list[str] = []

    with pytest.raises(TIMEOUTS):
        async for chunk in await client.aio.models.generate_content_stream(
            model=MODEL, contents="[sim:hang-mid]"
        ):
            received.append(chunk.text)
    await client.aio.aclose()

    assert len(received) == 3


async def test_the_token_delay_paces_the_stream(aclient: Any, sim_url: str) -> None:
    _control(sim_url, "config", {"reply_tokens": 10, "token_delay_ms": 40})

    async def stream_seconds(prompt: str) -> tuple[float, int]:
        started = time.monotonic()
        stream = await aclient.models.generate_content_stream(model=MODEL, contents=prompt)
        chunks = [c async for c in stream]
        return time.monotonic() - started, len(chunks)

    assert (await stream_seconds("pace me"))[0] >= 10 * 0.040
    _control(sim_url, "config", {"token_delay_ms": 5})
    assert (await stream_seconds("slowly [sim:slow]"))[0] >= 10 * 0.050
    _control(sim_url, "config", {"token_delay_ms": 0})
    assert (await stream_seconds("at length [sim:long]"))[1] == 200


async def test_echo_replies_with_the_prompt_as_written_a_line_a_chunk(aclient: Any) -> None:
    prompt = "[sim:echo] ```python\nprint('<b>')  # hi\n```\n"
    stream = await aclient.models.generate_content_stream(model=MODEL, contents=prompt)
    chunks = [c.text async for c in stream]
    assert chunks == ["```python\n", "print('<b>')  # hi\n", "```"]


def test_reset_restores_the_startup_config_and_clears_everything(
    client: genai.Client, sim_url: str
) -> None:
    _control(sim_url, "config", {"reply_tokens": 3})
    _control(sim_url, "faults", {"fault": "500"})
    with pytest.raises(errors.ServerError, match="500"):  # the configured fault goes first
        client.models.generate_content(model=MODEL, contents="flaky [sim:503x1]")

    _control(sim_url, "reset", {})

    assert httpx.get(f"{sim_url}/_sim/config").json()["reply_tokens"] == 12
    assert httpx.get(f"{sim_url}/_sim/faults").json() == {"fault": None, "remaining": None}
    assert _records(sim_url) == []
    with pytest.raises(errors.ServerError):  # the prompt's own count starts again
        client.models.generate_content(model=MODEL, contents="flaky [sim:503x1]")


def test_the_command_line_serves_and_logs_each_request() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "dev.gemini_sim", "--port", str(port)]
    command += ["--reply-tokens", "5", "--token-delay-ms", "0"]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, "the simulator exited"
        try:
            return httpx.get(f"{url}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait_until(healthy, 15, "the simulator process")
        client = _client(url)
        response = client.models.generate_content(model=MODEL, contents="[sim:slow] cli")
        client.close()
        assert response.usage_metadata.candidates_token_count == 5
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)

    assert f"v1 {MODEL} stream=False fault=None status=200" in stderr
