"""shared/tracing.py: off without OTEL_EXPORTER_OTLP_ENDPOINT (nothing of the SDK loaded),
and when on, the trace context rides in the envelope and only entry points start traces.

Each case runs in a fresh interpreter: OpenTelemetry's tracer provider is set once per
process, and the rest of the suite must run untraced. (tests/e2e/test_tracing.py follows a
prompt through the five real processes.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run(script: str) -> list[str]:
    """What ``script`` printed with ``out(...)`` (logging may print too), one line each."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    script = "def out(*values):\n    print('=>', *values)\n" + textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line[3:] for line in done.stdout.splitlines() if line.startswith("=> ")]


def test_off_without_an_endpoint_and_nothing_of_the_sdk_is_imported():
    out = run(
        """
        import sys
        from shared import tracing
        from shared.events import UserRegistered
        from shared.events.envelope import encode
        from shared.http import create_app

        assert tracing.configure_tracing("chat") is False
        create_app(title="t", max_body_bytes=10, readiness_details=False)
        event = UserRegistered(
            user_id="00000000-0000-0000-0000-000000000001",
            mobile_number="+15555550100",
            registered_at="2026-11-29T00:00:00Z",
        )
        assert encode(event, producer="auth").trace_context is None
        with tracing.consuming(None, event_type="E", event_id="1", stream="s", group="g"):
            assert tracing.current_trace_id() is None
        out(sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")))
        """
    )
    assert out == ["[]"]


def test_the_envelope_carries_the_context_and_the_consumer_continues_it():
    out = run(
        """
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind
        from shared import tracing
        from shared.events import UserRegistered
        from shared.events.envelope import decode, encode, to_json

        exporter = InMemorySpanExporter()
        assert tracing.configure_tracing("auth", exporter=exporter)
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
        tracer = trace.get_tracer("test")
        event = UserRegistered(
            user_id="00000000-0000-0000-0000-000000000001",
            mobile_number="+15555550100",
            registered_at="2026-11-29T00:00:00Z",
        )
        with tracer.start_as_current_span("POST /signup", kind=SpanKind.SERVER) as request:
            envelope, _ = decode(to_json(encode(event, producer="auth")))
        assert envelope.trace_context["traceparent"].split("-")[1] == format(
            request.get_span_context().trace_id, "032x"
        )
        with tracing.publishing([("auth.events", "UserRegistered", to_json(envelope))]):
            pass
        with tracing.consuming(
            envelope.trace_context, event_type="UserRegistered", event_id="1",
            stream="auth.events", group="chat",
        ):
            logged = tracing.current_trace_id()
        # A root span that is no entry point (a background loop's command) starts nothing.
        with tracer.start_as_current_span("XREADGROUP", kind=SpanKind.CLIENT) as polled:
            assert not polled.is_recording()
        spans = {s.name: s for s in exporter.get_finished_spans()}
        root = spans["POST /signup"]
        for name in ("UserRegistered publish", "UserRegistered process"):
            assert spans[name].context.trace_id == root.context.trace_id, name
            assert spans[name].parent.span_id == root.context.span_id, name
        assert spans["UserRegistered process"].kind == SpanKind.CONSUMER
        assert logged == format(root.context.trace_id, "032x")
        out("ok")
        """
    )
    assert out == ["ok"]


def test_a_public_app_neither_continues_nor_forwards_a_client_trace():
    out = run(
        """
        import asyncio
        import httpx
        from fastapi import Request
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from shared import tracing
        from shared.http import create_app

        exporter = InMemorySpanExporter()
        tracing.configure_tracing("gateway", exporter=exporter)
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
        client_trace = "0af7651916cd43dd8448eb211c80319c"
        header = f"00-{client_trace}-b7ad6b7169203331-01"

        async def main():
            for public in (False, True):
                app = create_app(
                    title="t", max_body_bytes=100, readiness_details=False, public=public
                )
                seen = []

                @app.get("/echo")
                async def echo(request: Request) -> dict:
                    seen.append(request.headers.get("traceparent"))
                    return {}

                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    response = await c.get("/echo", headers={"traceparent": header})
                    assert response.status_code == 200
                server = [s for s in exporter.get_finished_spans() if s.name == "GET /echo"][-1]
                out(public, format(server.context.trace_id, "032x") == client_trace, seen)

        asyncio.run(main())
        """
    )
    private, public = out
    assert private.startswith("False True")  # behind the gateway: the trace continues
    assert public == "True False [None]"  # at the edge: a new trace, the header gone


def test_a_share_links_token_never_reaches_a_client_spans_url() -> None:
    from shared.tracing import redacted_url

    token = "q3V8fJx2L0bM7cR1tY9wN4sK6hD5gA0zE2uP8iO3lXy"
    assert redacted_url(f"http://chat:8002/api/v1/shared/{token}") == (
        "http://chat:8002/api/v1/shared/{token}"
    )
    assert redacted_url(f"http://gw/s/{token}?x=1") == "http://gw/s/{token}?x=1"
    assert redacted_url("http://chat:8002/api/v1/chatroom/r1/share") == (
        "http://chat:8002/api/v1/chatroom/r1/share"
    )
