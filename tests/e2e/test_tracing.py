"""Issue 12: one prompt is one trace across the five processes — gateway → chat → outbox
relay → ai-worker → Gemini → chat — exported over OTLP to the test's receiver (the stack
runs with OTEL_EXPORTER_OTLP_ENDPOINT set: tests/conftest.py); the log lines of that work
carry its trace id and one request id key."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from dev.stack import Stack
from shared.testing.accounts import sign_up_and_in
from shared.testing.otlp import ReceivedSpan, Receiver
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e

# A client's own trace context: the public gateway must neither continue nor forward it.
CLIENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-b7ad6b7169203331-00"  # "not sampled"


def _path(span: ReceivedSpan) -> str:
    return str(span.attributes.get("url.path") or span.attributes.get("http.target") or "")


def _log_lines(stack: Stack, service: str) -> list[dict[str, object]]:
    assert stack.log_dir is not None
    lines = []
    for raw in (stack.log_dir / f"{service}.log").read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


async def test_one_prompt_is_one_trace_across_the_services(api, stack, traces: Receiver):
    account = await sign_up_and_in(api)
    created = await api.post("/api/v1/chatroom", json={"name": "traced"}, headers=account.headers)
    room = created.json()["data"]["chatroom"]["id"]
    path = f"/api/v1/chatroom/{room}/message"
    sent = await api.post(
        path,
        json={"content": "hello traces"},
        headers={**account.headers, "traceparent": CLIENT_TRACEPARENT},
    )
    assert sent.status_code == 201, sent.text
    request_id = sent.headers["x-request-id"]
    reply_id = sent.json()["data"]["reply"]["id"]

    async def completed() -> bool:
        r = await api.get(f"/api/v1/chatroom/{room}", headers=account.headers)
        messages = r.json()["data"]["chatroom"]["messages"]
        return next(m for m in messages if m["id"] == reply_id)["status"] == "completed"

    await eventually(completed, timeout=30, what="the reply to complete")

    def entry() -> ReceivedSpan | None:
        return next(
            (
                s
                for s in traces.spans()
                if s.service == "gateway" and s.kind == "SERVER" and _path(s) == path
            ),
            None,
        )

    spans: list[ReceivedSpan] = []

    def orphans(root: ReceivedSpan) -> list[ReceivedSpan]:
        """Spans whose parent is not in the trace (yet: a span is exported when it ends,
        after its children)."""
        ids = {s.span_id for s in spans}
        return [s for s in spans if s is not root and s.parent_span_id not in ids]

    async def whole() -> bool:
        """The gateway's span arrived, chat's span for the reply's result, and every span
        between them."""
        nonlocal spans
        root = entry()
        spans = traces.trace(root.trace_id) if root else []
        return (
            root is not None
            and any(s.service == "chat" and s.name == "ReplyCompleted process" for s in spans)
            and not orphans(root)
        )

    await eventually(whole, timeout=15, what="the prompt's spans to be exported")
    root = entry()
    assert root is not None
    # The client's traceparent was dropped at the edge: a trace of our own, started there.
    assert root.trace_id != CLIENT_TRACE_ID and root.parent_span_id == ""
    assert root.name == "POST /api/v1/chatroom/{id}/message"  # the gateway's route template
    assert not [s for s in traces.spans() if s.trace_id == CLIENT_TRACE_ID]

    # One tree (whole()): every span but the gateway's has its parent in the trace.
    by_id = {s.span_id: s for s in spans}
    kinds = Counter((s.service, s.kind) for s in spans)
    names = {(s.service, s.name) for s in spans}
    # Each hop, in order.
    assert kinds[("gateway", "CLIENT")] >= 1  # the forwarding to chat (aiohttp)
    assert any(s.service == "chat" and s.kind == "SERVER" and _path(s) == path for s in spans)
    assert ("chat", "MessageQueued publish") in names  # the outbox relay's XADD
    assert kinds[("chat", "CLIENT")] >= 1  # its statements (psycopg) and Redis commands

    def named(service: str, name: str) -> ReceivedSpan:
        return next(s for s in spans if (s.service, s.name) == (service, name))

    consume = named("ai-worker", "MessageQueued process")
    assert consume.attributes["messaging.consumer.group.name"] == "ai-worker"
    generate = named("ai-worker", "gemini generate")
    assert by_id[generate.parent_span_id] == consume
    assert generate.attributes["status"] == "completed"
    assert generate.attributes["gen_ai.usage.output_tokens"] > 0
    # The HTTP request to Gemini (the simulator), under the generation.
    assert any(
        s.service == "ai-worker" and s.kind == "CLIENT" and s.parent_span_id == generate.span_id
        for s in spans
    )
    result = named("chat", "ReplyCompleted process")
    # chat applied the result within the same trace, below the ai-worker's handling.
    ancestor = by_id[result.parent_span_id]
    while ancestor.parent_span_id and ancestor is not consume:
        ancestor = by_id[ancestor.parent_span_id]
    assert ancestor is consume

    # The log lines of that work carry the trace id, and the request id under one key.
    def of_trace(service: str) -> list[dict[str, object]]:
        return [
            line for line in _log_lines(stack, service) if line.get("trace_id") == root.trace_id
        ]

    async def logged() -> bool:
        return bool(of_trace("ai-worker")) and bool(of_trace("chat"))

    await eventually(logged, timeout=10, what="the trace's log lines")
    worker_lines = of_trace("ai-worker")
    assert {line["request_id"] for line in worker_lines} == {request_id}
    assert "correlation_id" not in worker_lines[0]
    assert any(line["event"] == "reply.completed" for line in worker_lines)
    assert any(line.get("request_id") == request_id for line in of_trace("chat"))
