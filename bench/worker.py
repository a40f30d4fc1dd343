"""Benchmark (b): replies per second from ONE ai-worker process.

The Gemini simulator answers each request in about a second (10 chunks, 100 ms apart);
MessageQueued events are written straight to chat.events and the worker's ReplyCompleted
events counted on ai.events. The reference service's sequential worker does 1 reply/s.

    python -m bench.worker --concurrency 64 --messages 640
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid

from bench.stackrun import bench_stack
from shared.events import MessageQueued, encode
from shared.events.envelope import to_json
from shared.redis import open_redis

SERVICES = ["gemini-sim", "ai-worker"]
# About 1 s per reply: 10 chunks, 100 ms apart.
ENV = {"GEMINI_SIM_TOKEN_DELAY_MS": "100", "GEMINI_SIM_REPLY_TOKENS": "10"}


async def measure(redis_url: str, messages: int, concurrency: int, *, quiet: bool = False) -> dict:
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
    stamps: list[float] = []
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
                    stamps.append(time.perf_counter())
                else:
                    raise RuntimeError(f"a reply failed: {fields}")
    elapsed = time.perf_counter() - started
    await redis.aclose()
    if not quiet:
        print(f"\none ai-worker process, AI_WORKER_CONCURRENCY={concurrency}, ~1 s per reply")
        print(f"{messages} replies in {elapsed:.1f} s: {messages / elapsed:.1f} replies/s")
        print(f"(first reply after {first_done:.2f} s; the reference service manages ~1 reply/s)")
    return {
        "concurrency": concurrency,
        "replies": messages,
        "elapsed": elapsed,
        "rate": messages / elapsed,
        "first_done": first_done,
        # Between the 10th and the 90th percent of the replies: without the ramp-up (the
        # first replies take a whole reply time) and the partly filled last round.
        "steady_rate": _steady(stamps),
    }


def _steady(stamps: list[float]) -> float:
    lo, hi = int(0.1 * len(stamps)), int(0.9 * len(stamps)) - 1
    if hi <= lo or stamps[hi] <= stamps[lo]:
        return len(stamps) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return (hi - lo) / (stamps[hi] - stamps[lo])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--messages", type=int, default=640)
    args = parser.parse_args()
    env = {**ENV, "AI_WORKER_CONCURRENCY": str(args.concurrency)}
    with bench_stack(SERVICES, env) as stack:
        asyncio.run(measure(stack.env["REDIS_URL"], args.messages, args.concurrency))


if __name__ == "__main__":
    main()


def scaling(levels: list[tuple[int, int]]) -> tuple[dict[str, int], list[dict]]:
    """Step 4: one ai-worker process at each (concurrency, replies) level, restarted with
    AI_WORKER_CONCURRENCY set for each; returns the RSS at rest and, per level, the rate
    with the worker's and the simulator's CPU (100 = one core) and peak RSS."""
    from bench.procstats import Watch, rss_now
    from dev.proc import stop_all

    results = []
    env = {**ENV, "AI_WORKER_CONCURRENCY": str(levels[0][0])}
    # redis-py's pool holds at most 100 connections and raises MaxConnectionsError instead
    # of waiting; one reply holds one, so above ~90 concurrent replies the worker's handlers
    # fail. The benchmark raises the cap through REDIS_URL so that 256 can be measured.
    with bench_stack(SERVICES, env) as stack:
        time.sleep(1)
        rest = rss_now({n: p.pid for n, p in stack.processes.items()})
        for concurrency, messages in levels:
            if stack.env["AI_WORKER_CONCURRENCY"] != str(concurrency):
                stop_all([(stack.processes["ai-worker"], signal.SIGTERM)], 10)
                stack.env["AI_WORKER_CONCURRENCY"] = str(concurrency)
                stack.restart("ai-worker", 60)
            with Watch({n: p.pid for n, p in stack.processes.items()}) as watch:
                try:
                    figures = asyncio.run(
                        measure(stack.env["REDIS_URL"], messages, concurrency, quiet=True)
                    )
                except RuntimeError as exc:  # stalled, or a reply failed: say so, go on
                    figures = {"concurrency": concurrency, "replies": messages, "rate": 0.0}
                    figures["error"] = str(exc)[:300]
                    print(f"  concurrency {concurrency}: {exc}", flush=True)
            figures.update(
                cpu=watch.cpu_percent,
                machine_cpu=watch.machine_cpu_percent,
                groups=watch.groups,
                peak_rss=watch.peak_rss,
            )
            print(
                f"  concurrency {concurrency:>3}: {figures['rate']:6.1f} replies/s"
                f" (steady {figures.get('steady_rate', 0):.1f}), worker CPU"
                f" {watch.cpu_percent['ai-worker']:.0f}%, simulator CPU"
                f" {watch.cpu_percent['gemini-sim']:.0f}%",
                flush=True,
            )
            results.append(figures)
    return rest, results
