"""Answering one queued prompt: the real SDK against the simulator, real Redis."""

from __future__ import annotations

import asyncio
import socket

from ai_worker.service import answer_message
from shared.events import ReplyCompleted, ReplyFailed
from shared.events.envelope import decode
from shared.testing.wait import eventually


async def entries(redis, reply_id) -> list[dict[str, str]]:
    return [fields for _, fields in await redis.xrange(f"ai.reply.{reply_id}")]


async def results(redis, ctx) -> list[tuple[object, object]]:
    return [decode(fields["envelope"]) for _, fields in await redis.xrange(ctx.result_stream)]


async def answer(ctx, queued_pair) -> None:
    event, envelope = queued_pair
    async with asyncio.timeout(20):
        await answer_message(ctx, event, correlation_id=envelope.correlation_id)


async def test_reply_streams_token_by_token_and_completes(redis, ctx, sim, queued):
    await sim.configure(token_delay_ms=20)  # chunks spaced out, as a model's are
    event, envelope = pair = queued("Tell me about tea")

    await answer(ctx, pair)

    stream = await entries(redis, event.reply_id)
    tokens = [e["text"] for e in stream if e["type"] == "token"]
    # An entry per chunk, as they came (two share one only when the loop was held up
    # longer than the 20 ms between them: a loaded CI machine).
    assert len(tokens) >= 10, tokens
    assert stream[-1]["type"] == "end" and stream[-1]["status"] == "completed"
    [(result_envelope, result)] = await results(redis, ctx)
    assert isinstance(result, ReplyCompleted)
    assert result.text == "".join(tokens)
    assert result.text.startswith('Simulated Gemini reply to "Tell me about tea')
    assert (result.reply_id, result.chatroom_id, result.user_id) == (
        event.reply_id,
        event.chatroom_id,
        event.user_id,
    )
    assert result.finish_reason == "STOP"
    assert result.model == "gemini-2.5-flash"
    assert result.usage.output_tokens == 12
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + 12
    assert result_envelope.producer == "ai-worker"
    assert result_envelope.correlation_id == envelope.correlation_id
    assert len(await sim.requests()) == 1


async def test_chunks_that_arrive_together_share_an_entry(redis, ctx, sim, queued):
    """Chunks that come faster than Redis takes them (here 200 at once) are joined while an
    append is in flight: fewer entries, the same text, in order."""
    await sim.configure(token_delay_ms=0, reply_tokens=200)
    event, _ = pair = queued("Tell me about tea")

    await answer(ctx, pair)

    stream = await entries(redis, event.reply_id)
    tokens = [e["text"] for e in stream if e["type"] == "token"]
    [(_, result)] = await results(redis, ctx)
    assert isinstance(result, ReplyCompleted) and result.usage.output_tokens == 200
    assert 1 <= len(tokens) < 100, len(tokens)
    assert "".join(tokens) == result.text
    assert [e["type"] for e in stream][-1] == "end"


async def test_the_model_chat_chose_is_asked_and_reported(redis, ctx, sim, queued):
    """The model travels in MessageQueued (chat chose it by tier); without one, the worker's
    GEMINI_MODEL (events queued before chat chose models)."""
    chosen = queued("Which model are you?", model="gemini-2.5-pro")
    await answer(ctx, chosen)
    unchosen = queued("And you?")
    await answer(ctx, unchosen)

    asked = [r["model"] for r in await sim.requests()]
    assert asked == ["gemini-2.5-pro", ctx.settings.gemini_model]
    reported = {r.reply_id: r.model for _, r in await results(redis, ctx)}
    assert reported == {
        chosen[0].reply_id: "gemini-2.5-pro",
        unchosen[0].reply_id: ctx.settings.gemini_model,
    }


async def test_history_reaches_the_model_with_the_prompt_once(ctx, sim, queued):
    history = [
        ("user", "What is green tea?"),
        ("model", "Green tea is unoxidised."),
        ("user", "And oolong?"),
        ("model", "Oolong is partly oxidised."),
    ]
    event, _ = pair = queued("Which has more caffeine?", history)

    await answer(ctx, pair)

    [request] = await sim.requests()
    sent = [(c["role"], c["parts"][0]["text"]) for c in request["contents"]]
    assert sent == [*history, ("user", event.prompt)]
    assert [text for _, text in sent].count(event.prompt) == 1
    assert request["generationConfig"]["maxOutputTokens"] == 2048


async def test_system_instruction_and_output_limit_are_sent(make_ctx, make_settings, sim, queued):
    ctx = make_ctx(make_settings(system_instruction="Be brief.", gemini_max_output_tokens=5))
    await answer(ctx, queued("Long story please"))

    [request] = await sim.requests()
    assert request["systemInstruction"]["parts"][0]["text"] == "Be brief."
    [(_, result)] = await results(ctx.redis, ctx)
    assert result.finish_reason == "MAX_TOKENS"
    assert result.usage.output_tokens == 5


async def test_overloaded_model_is_retried_and_completes(redis, ctx, sim, queued):
    event, _ = pair = queued("[sim:503x2] hello")

    await answer(ctx, pair)

    assert [r["status"] for r in await sim.requests()] == [503, 503, 200]
    [(_, result)] = await results(redis, ctx)
    assert isinstance(result, ReplyCompleted)
    stream = await entries(redis, event.reply_id)
    assert not any(e["type"] == "reset" for e in stream)  # nothing had been streamed


async def test_rate_limit_waits_at_least_the_servers_retry_delay(redis, ctx, sim, queued):
    await answer(ctx, queued("[sim:429:1.2sx1] hello"))

    first, second = await sim.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 1.2  # backoff alone would be ~0.01 s
    [(_, result)] = await results(redis, ctx)
    assert isinstance(result, ReplyCompleted)


async def test_prompt_blocked_by_safety_fails_as_blocked(redis, ctx, sim, queued):
    event, _ = pair = queued("[sim:safety] something dangerous")

    await answer(ctx, pair)

    [(_, result)] = await results(redis, ctx)
    assert isinstance(result, ReplyFailed)
    assert (result.status, result.reason, result.partial_text) == ("blocked", "safety_block", "")
    assert "safety" in result.message
    assert len(await sim.requests()) == 1
    end = (await entries(redis, event.reply_id))[-1]
    assert end == {
        "type": "end",
        "status": "blocked",
        "reason": "safety_block",
        "message": result.message,
    }


async def test_reply_stopped_by_safety_keeps_its_partial_text(redis, ctx, sim, queued):
    event, _ = pair = queued("[sim:safety-mid] tell me more")

    await answer(ctx, pair)

    [(_, result)] = await results(redis, ctx)
    assert (result.status, result.reason) == ("blocked", "safety_block")
    tokens = [e["text"] for e in await entries(redis, event.reply_id) if e["type"] == "token"]
    # Events strip surrounding whitespace from text fields (shared CamelModel).
    assert tokens and result.partial_text == "".join(tokens)
    assert len(await sim.requests()) == 1


async def test_bad_request_fails_after_exactly_one_request(redis, ctx, sim, queued):
    event, _ = pair = queued("[sim:400] hello")

    await answer(ctx, pair)

    assert [r["status"] for r in await sim.requests()] == [400]
    [(_, result)] = await results(redis, ctx)
    assert (result.status, result.reason) == ("failed", "model_rejected")
    assert "not counted" in result.message
    end = (await entries(redis, event.reply_id))[-1]
    assert (end["type"], end["status"], end["reason"]) == ("end", "failed", "model_rejected")


async def test_persistent_overload_fails_after_the_attempt_limit(redis, ctx, sim, queued):
    await answer(ctx, queued("[sim:503] hello"))

    assert [r["status"] for r in await sim.requests()] == [503] * 4  # retry_max_attempts
    [(_, result)] = await results(redis, ctx)
    assert (result.status, result.reason) == ("failed", "model_unavailable")
    assert result.message.startswith("Gemini is overloaded right now.")


async def test_retry_budget_stops_retries_before_the_attempt_limit(
    make_ctx, make_settings, sim, queued
):
    ctx = make_ctx(
        make_settings(
            retry_max_attempts=10,
            retry_budget_seconds=0.5,
            retry_initial_delay_seconds=0.2,
            retry_max_delay_seconds=0.2,
        )
    )
    await answer(ctx, queued("[sim:503] hello"))

    assert 2 <= len(await sim.requests()) <= 4
    [(_, result)] = await results(ctx.redis, ctx)
    assert result.reason == "model_unavailable"


async def test_hanging_model_is_retried_then_fails(make_ctx, make_settings, sim, queued):
    ctx = make_ctx(make_settings(gemini_chunk_timeout_seconds=0.3, retry_max_attempts=2))

    await answer(ctx, queued("[sim:hang] hello"))

    assert len(await sim.requests()) == 2
    [(_, result)] = await results(ctx.redis, ctx)
    assert (result.status, result.reason) == ("failed", "model_unavailable")
    assert result.message.startswith("Gemini took too long")


async def test_a_reply_longer_than_the_chunk_timeout_completes_while_chunks_keep_coming(
    make_ctx, make_settings, sim, queued
):
    # 10 chunks 60 ms apart: 0.6 s in all, each wait far under the 0.25 s chunk timeout.
    await sim.configure(token_delay_ms=60, reply_tokens=10)
    ctx = make_ctx(make_settings(gemini_chunk_timeout_seconds=0.25, retry_max_attempts=1))
    pair = queued("hello")

    await answer(ctx, pair)

    assert len(await sim.requests()) == 1
    [(_, result)] = await results(ctx.redis, ctx)
    assert isinstance(result, ReplyCompleted), result
    assert result.finish_reason == "STOP"


async def test_whole_attempt_timeout_counts_as_a_hang(make_ctx, make_settings, sim, queued):
    # Chunks keep coming (so the chunk timeout never fires) but the attempt is too slow.
    await sim.configure(token_delay_ms=100)
    ctx = make_ctx(
        make_settings(
            gemini_request_timeout_seconds=0.5,
            gemini_chunk_timeout_seconds=5,
            retry_max_attempts=2,
        )
    )
    event, _ = pair = queued("hello")

    await answer(ctx, pair)

    assert len(await sim.requests()) == 2
    [(_, result)] = await results(ctx.redis, ctx)
    assert (result.status, result.reason) == ("failed", "model_unavailable")
    kinds = [e["type"] for e in await entries(ctx.redis, event.reply_id)]
    assert "reset" in kinds  # the first attempt had streamed tokens


async def test_retry_after_partial_tokens_writes_a_reset(
    redis, make_ctx, make_settings, sim, queued
):
    ctx = make_ctx(make_settings(gemini_chunk_timeout_seconds=0.3))
    await sim.configure(token_delay_ms=20)  # chunks spaced out, as a model's are
    event, _ = pair = queued("[sim:hang-midx1] hello")

    await answer(ctx, pair)

    stream = await entries(redis, event.reply_id)
    kinds = [e["type"] for e in stream]
    first_reset = kinds.index("reset")
    assert set(kinds[:first_reset]) == {"token"}
    assert set(kinds[first_reset + 1 : -1]) == {"token"} and kinds[-1] == "end"
    [(_, result)] = await results(redis, ctx)
    assert isinstance(result, ReplyCompleted)
    before_reset = "".join(e["text"] for e in stream[:first_reset])
    after_reset = [e["text"] for e in stream[first_reset + 1 :] if e["type"] == "token"]
    assert result.text == "".join(after_reset)
    # The stall came before the fourth chunk (a word each): three words were streamed.
    assert result.text.startswith(before_reset) and len(before_reset.split()) == 3
    assert [r["status"] for r in await sim.requests()] == [200, 200]


async def test_duplicate_of_a_finished_reply_republishes_without_calling_gemini(
    redis, ctx, sim, queued
):
    event, envelope = pair = queued("hello")
    await answer(ctx, pair)
    stream_before = await entries(redis, event.reply_id)

    await answer(ctx, pair)

    assert len(await sim.requests()) == 1
    assert await entries(redis, event.reply_id) == stream_before
    (_, first), (second_envelope, second) = await results(redis, ctx)
    assert isinstance(second, ReplyCompleted)
    assert second == first  # text, finish reason, usage and model from the stream
    assert second_envelope.correlation_id == envelope.correlation_id


async def test_duplicate_of_a_failed_reply_republishes_the_failure(redis, ctx, sim, queued):
    pair = queued("[sim:safety-mid] hello")
    await answer(ctx, pair)

    await answer(ctx, pair)

    assert len(await sim.requests()) == 1
    (_, first), (_, second) = await results(redis, ctx)
    assert isinstance(second, ReplyFailed)
    assert second == first


async def test_delivery_after_a_crash_mid_reply_resets_and_generates_again(redis, ctx, sim, queued):
    event, _ = pair = queued("hello")
    key = f"ai.reply.{event.reply_id}"
    await redis.xadd(key, {"type": "token", "text": "half an ans"})  # what the dead one wrote

    await answer(ctx, pair)

    stream = await entries(redis, event.reply_id)
    kinds = [e["type"] for e in stream]
    assert kinds[:2] == ["token", "reset"] and kinds[-1] == "end"
    assert set(kinds[2:-1]) == {"token"}
    [(_, result)] = await results(redis, ctx)
    assert "half an ans" not in result.text
    assert result.text == "".join(e["text"] for e in stream[2:-1])


async def test_two_deliveries_at_once_generate_once(redis, ctx, sim, queued):
    await sim.configure(token_delay_ms=20)
    event, envelope = queued("hello")

    async with asyncio.timeout(20):
        await asyncio.gather(
            answer_message(ctx, event, correlation_id=envelope.correlation_id),
            answer_message(ctx, event, correlation_id=envelope.correlation_id),
        )

    assert len(await sim.requests()) == 1
    [(_, result)] = await results(redis, ctx)
    assert isinstance(result, ReplyCompleted)
    stream = await entries(redis, event.reply_id)
    assert [e["type"] for e in stream][-1] == "end"
    assert {e["type"] for e in stream[:-1]} == {"token"}
    assert "".join(e["text"] for e in stream[:-1]) == result.text  # written once
    assert not await redis.exists(f"ai-worker.lease.{event.reply_id}")


async def test_unreachable_model_is_retried_then_fails(make_ctx, make_settings, sim, queued):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = make_ctx(make_settings(gemini_base_url=f"http://127.0.0.1:{port}", retry_max_attempts=3))

    await answer(ctx, queued("hello"))

    [(_, result)] = await results(ctx.redis, ctx)
    assert (result.status, result.reason) == ("failed", "model_unavailable")
    assert result.message.startswith("Gemini could not be reached")


async def test_a_long_reply_keeps_its_lease_past_the_lease_ttl(redis, ctx, sim, queued):
    # claim_idle_seconds=5 gives a lease of ~1.7 s; this reply takes ~2.4 s.
    await sim.configure(token_delay_ms=200)
    event, envelope = queued("hello")
    first = asyncio.create_task(answer_message(ctx, event, correlation_id=envelope.correlation_id))

    async def tokens_so_far() -> int:
        return sum(1 for e in await entries(redis, event.reply_id) if e["type"] == "token")

    async def past_the_lease_ttl() -> bool:
        return await tokens_so_far() >= 10  # about 2 s in

    await eventually(past_the_lease_ttl, what="ten tokens")
    await answer(ctx, (event, envelope))  # a duplicate delivery meanwhile: refused at once
    assert await tokens_so_far() < 12
    async with asyncio.timeout(10):
        await first

    assert len(await sim.requests()) == 1
    assert len(await results(redis, ctx)) == 1
