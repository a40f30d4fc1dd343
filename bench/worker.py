"""Benchmark (b): replies per second from ONE ai-worker process.

The Gemini simulator answers each request in about a second (10 chunks, 100 ms apart);
MessageQueued events are written straight to chat.events and the worker's ReplyCompleted
events counted on ai.events. The reference service's sequential worker does 1 reply/s.

    python -m bench.worker --concurrency 64 --messages 640
    python -m bench.worker --concurrency 256 --messages 2500 --spread
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid

from bench import profile
from bench.procstats import Watch, rss_now
from bench.stackrun import bench_stack
from dev.proc import free_port, stop_all
from dev.stack import Stack
from shared.events import MessageQueued, encode
from shared.events.envelope import to_json
from shared.redis import open_redis

SERVICES = ["gemini-sim", "ai-worker"]
# About 1 s per reply: 10 chunks, 100 ms apart.
ENV = {"GEMINI_SIM_TOKEN_DELAY_MS": "100", "GEMINI_SIM_REPLY_TOKENS": "10"}


REPLY_SECONDS = 1.0  # what ENV makes a reply take


def _queued(i: int) -> dict[str, str]:
    event = MessageQueued(
        reply_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
        chatroom_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        prompt=f"benchmark prompt {i}",
    )
    envelope = encode(event, producer="chat")
    return {"type": envelope.type, "envelope": to_json(envelope)}


async def _write(redis, events: list[dict[str, str]], first_over: float, first: int) -> None:
    """The first ``first`` events evenly over ``first_over`` seconds (none: all at once),
    then the rest at once."""
    paced = first if first_over else 0
    started = time.perf_counter()
    for i, fields in enumerate(events[:paced]):
        await redis.xadd("chat.events", fields)
        await asyncio.sleep(max(0.0, started + (i + 1) * first_over / paced - time.perf_counter()))
    pipe = redis.pipeline(transaction=False)
    for fields in events[paced:]:
        pipe.xadd("chat.events", fields)
    await pipe.execute()


async def measure(
    redis_url: str,
    messages: int,
    concurrency: int,
    *,
    quiet: bool = False,
    spread: bool = False,
) -> dict:
    """``spread``: the first wave of events (as many as the worker takes at once) written
    over one reply time instead of all at once. All at once, every reply starts in the
    same millisecond and the simulator, giving each the same timetable, delivers all their
    chunks in the same millisecond every 100 ms for the whole run: traffic no model
    produces, which measures how the worker queues such a burst. Spread, the replies tick
    at different moments, as they do when prompts arrive over time."""
    redis = open_redis(redis_url)
    start_id = (
        (await redis.xinfo_stream("ai.events"))["last-generated-id"]
        if await redis.exists("ai.events")
        else "0-0"
    )
    events = [_queued(i) for i in range(messages)]
    started = time.perf_counter()
    writing = asyncio.create_task(
        _write(redis, events, REPLY_SECONDS if spread else 0.0, concurrency)
    )
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
    await writing
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
    parser.add_argument(
        "--spread", action="store_true", help="write the first wave over one reply time"
    )
    args = parser.parse_args()
    env = {**ENV, "AI_WORKER_CONCURRENCY": str(args.concurrency)}
    with bench_stack(SERVICES, env) as stack:
        figures = asyncio.run(
            measure(stack.env["REDIS_URL"], args.messages, args.concurrency, spread=args.spread)
        )
    print(f"steady (10th to 90th percent of the replies): {figures['steady_rate']:.1f} replies/s")


if __name__ == "__main__":
    main()


# (AI_WORKER_CONCURRENCY, replies) for one process; then two processes at the last level.
LEVELS = [(16, 160), (64, 500), (256, 1500)]
SPREAD_REPLIES = 2500  # the top level with its arrivals spread: about 10 s


def _level(
    label: str,
    pids: dict[str, int],
    redis_url: str,
    messages: int,
    concurrency: int,
    processes: int = 1,
    *,
    spread: bool = False,
) -> dict:
    with Watch(pids) as watch:
        try:
            figures = asyncio.run(
                measure(redis_url, messages, concurrency, quiet=True, spread=spread)
            )
        except RuntimeError as exc:  # stalled, or a reply failed: say so, go on
            figures = {"concurrency": concurrency, "replies": messages, "rate": 0.0}
            figures["error"] = str(exc)[:300]
    figures.update(
        label=label,
        spread=spread,
        processes=processes,
        cpu=watch.cpu_percent,
        machine_cpu=watch.machine_cpu_percent,
        groups=watch.groups,
        peak_rss=watch.peak_rss,
    )
    workers = sum(v for n, v in watch.cpu_percent.items() if n.startswith("ai-worker"))
    print(
        f"  {label}: {figures['rate']:6.1f} replies/s (steady {figures.get('steady_rate', 0):.1f}),"
        f" worker CPU {workers:.0f}%, simulator CPU {watch.cpu_percent['gemini-sim']:.0f}%"
        + (f"; FAILED: {figures['error']}" if "error" in figures else ""),
        flush=True,
    )
    return figures


def scaling(*, quick: bool = False, profile_seconds: float = 0.0) -> dict:
    """One ai-worker process at each level of LEVELS (restarted with AI_WORKER_CONCURRENCY
    set for each), then a second process in the same consumer group beside it. Returns the
    RSS at rest, the levels (rate, CPU per process: 100 = one core, peak RSS) and, with
    ``profile_seconds``, py-spy profiles of the worker at the last level."""
    scale = 4 if quick else 1
    levels = [(c, max(c, n // scale)) for c, n in LEVELS]
    env = {**ENV, "AI_WORKER_CONCURRENCY": str(levels[0][0])}
    out: dict = {"levels": [], "profile": {}}
    with bench_stack(SERVICES, env) as stack:
        url = stack.env["REDIS_URL"]
        time.sleep(1)
        out["rest"] = rss_now({n: p.pid for n, p in stack.processes.items()})
        for concurrency, messages in levels:
            if stack.env["AI_WORKER_CONCURRENCY"] != str(concurrency):
                stop_all([(stack.processes["ai-worker"], signal.SIGTERM)], 10)
                stack.env["AI_WORKER_CONCURRENCY"] = str(concurrency)
                stack.restart("ai-worker", 60)
            pids = {n: p.pid for n, p in stack.processes.items()}
            label = f"one ai-worker process, concurrency {concurrency}"
            out["levels"].append(_level(label, pids, url, messages, concurrency))
        concurrency, messages = levels[-1]
        # The top level again, its first wave of prompts arriving over one reply time
        # (measure: spread), and longer, so most of the run is past the first wave.
        spread_messages = max(concurrency, SPREAD_REPLIES // scale)
        label = f"one ai-worker process, concurrency {concurrency}, arrivals spread"
        out["levels"].append(_level(label, pids, url, spread_messages, concurrency, spread=True))
        if profile_seconds:
            rate = max(10.0, out["levels"][-1].get("steady_rate", 0.0))
            out["profile"] = profile.record(
                {"ai-worker": pids["ai-worker"], "gemini-sim": pids["gemini-sim"]},
                profile_seconds,
                lambda: asyncio.run(
                    measure(url, int(rate * profile_seconds), concurrency, quiet=True)
                ),
            )
        # A second process in the same consumer group: the group hands each event to one.
        second_env = {**stack.env, "AI_WORKER_URL": f"http://127.0.0.1:{free_port()}"}
        with Stack(
            second_env,
            ["ai-worker"],
            log_dir=stack.log_dir,
            cwd=stack.cwd,
            service_env=stack.service_env,
        ) as second:
            second.start()
            second.wait_healthy(60)
            pids = {**pids, "ai-worker 2": second.processes["ai-worker"].pid}
            label = f"two ai-worker processes, concurrency {concurrency} each"
            out["levels"].append(_level(label, pids, url, 2 * messages, 2 * concurrency, 2))
            label += ", arrivals spread"
            out["levels"].append(
                _level(label, pids, url, 2 * spread_messages, 2 * concurrency, 2, spread=True)
            )
    return out
