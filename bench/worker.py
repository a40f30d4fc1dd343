"""Benchmark (b): replies per second from ONE ai-worker process.

The Gemini simulator answers each request in about a second (10 chunks, 100 ms apart);
MessageQueued events are written straight to chat.events and the worker's ReplyCompleted
events counted on ai.events. The reference service's sequential worker does 1 reply/s.

    python -m bench.worker --concurrency 64 --messages 640
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bench.stackrun import bench_stack
from shared.events import MessageQueued, encode
from shared.events.envelope import to_json
from shared.redis import open_redis


async def measure(redis_url: str, messages: int, concurrency: int) -> None:
    redis = open_redis(redis_url)
    start_id = (
        (await redis.xinfo_stream("ai.events"))["last-generated-id"]
        if await redis.exists("ai.events")
        else "0-0"
    )
    pipe = redis.pipeline(transaction=False)
    for i in range(messages):
        event = MessageQueued(
            reply_id=uuid.uuid4(),
            message_id=uuid.uuid4(),
            chatroom_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            prompt=f"benchmark prompt {i}",
        )
        envelope = encode(event, producer="chat")
        pipe.xadd("chat.events", {"type": envelope.type, "envelope": to_json(envelope)})
    started = time.perf_counter()
    await pipe.execute()
    done = 0
    first_done = None
    cursor = start_id
    while done < messages:
        response = await redis.xread({"ai.events": cursor}, count=1000, block=5000)
        if not response:
            raise RuntimeError(f"stalled at {done}/{messages} replies")
        for _, entries in response:
            for entry_id, fields in entries:
                cursor = entry_id
                if fields.get("type") == "ReplyCompleted":
                    done += 1
                    first_done = first_done or time.perf_counter() - started
                else:
                    raise RuntimeError(f"a reply failed: {fields}")
    elapsed = time.perf_counter() - started
    await redis.aclose()
    print(f"\none ai-worker process, AI_WORKER_CONCURRENCY={concurrency}, ~1 s per reply")
    print(f"{messages} replies in {elapsed:.1f} s: {messages / elapsed:.1f} replies/s")
    print(f"(first reply after {first_done:.2f} s; the reference service manages ~1 reply/s)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--messages", type=int, default=640)
    args = parser.parse_args()
    env = {
        "GEMINI_SIM_TOKEN_DELAY_MS": "100",
        "GEMINI_SIM_REPLY_TOKENS": "10",
        "AI_WORKER_CONCURRENCY": str(args.concurrency),
    }
    with bench_stack(["gemini-sim", "ai-worker"], env) as stack:
        asyncio.run(measure(stack.env["REDIS_URL"], args.messages, args.concurrency))


if __name__ == "__main__":
    main()
