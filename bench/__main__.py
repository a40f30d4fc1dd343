"""`make bench`: every benchmark in one run, then BENCHMARKS.md and docs/bench-latency.png.

    python -m bench            # ~4 minutes on 2 cores
    python -m bench --quick    # shorter runs, to check the harness (figures not written)

1. the gateway's cost: GET /api/v1/chatroom (cached) through the gateway, straight to chat,
   and a bare uvicorn hello-world, at a fixed concurrency
2. sustained accepted prompts/s from many users, each with its own chatrooms
3. POST → first SSE token → completed at 1, 4 and 10 concurrent users (the plot)
4. replies/s from one ai-worker process at concurrency 1, 16, 64 and 256, ~1 s per reply
5. RSS of every process at rest and under load (psutil)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path

import psycopg
import redis

from bench import load, pipeline, report, worker
from bench.procstats import Watch, rss_now, wait_for_quiet
from bench.stackrun import bench_stack
from dev.stack import REPO_ROOT

# (concurrent users, prompts) for step 3; (concurrency, replies) for step 4: ~6–10 s each.
PIPELINE_POINTS = [(1, 60), (4, 160), (10, 300)]
WORKER_LEVELS = [(1, 8), (16, 120), (64, 400), (256, 1000)]
STEP1 = {"concurrency": 16, "duration": 8.0, "warmup": 2.0}
STEP2 = {"users": 50, "rooms": 20, "max_seconds": 20.0}
# The ai-worker paused (SIGSTOP) for the second: the acceptance path alone, as with the
# reference service, whose worker does one reply a second.
STEP2_VARIANTS = [("pipeline working the backlog", False), ("ai-worker paused", True)]


def versions(stack) -> tuple[str, str]:
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    info = redis.Redis.from_url(stack.env["REDIS_URL"]).info("server")
    name = "Valkey" if "valkey_version" in info else "Redis"
    return (
        f"PostgreSQL {pg.split()[0]}",
        f"{name} {info.get('valkey_version') or info['redis_version']}",
    )


def run(quick: bool) -> dict:
    scale = 0.25 if quick else 1.0
    r: dict = {"machine": report.machine()}
    r["busy_before"] = wait_for_quiet(0 if quick else 60)
    started = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:3.0f} s] {text}", flush=True)

    print("starting the stack (auth, chat, gemini-sim at zero latency, ai-worker, gateway)...")
    with bench_stack(pipeline.SERVICES, pipeline.ENV) as stack:
        pids = {name: proc.pid for name, proc in stack.processes.items()}
        r["postgres"], r["redis"] = versions(stack)
        time.sleep(1.0)
        r["rest"] = rss_now(pids)

        say("step 1: GET /api/v1/chatroom through the gateway vs a bare uvicorn app...")
        s1 = {**STEP1, "duration": STEP1["duration"] * scale, "warmup": STEP1["warmup"] * scale}
        r["step1_cfg"] = s1
        with load.hello_server() as (hello_url, _), Watch(pids) as w1:
            r["step1"] = asyncio.run(load.gateway_cost(stack, hello_url, **s1))
        for run_ in r["step1"]:
            p = run_.pct()
            print(
                f"  {run_.label:<40}{run_.rate:8,.0f} req/s  p50 {p['p50']:.1f} ms  "
                f"p99 {p['p99']:.1f} ms  errors {len(run_.errors)}"
            )

        say("step 3: POST → first SSE token → completed...")
        r["step3"] = []
        with Watch(pids) as w3:
            for clients, messages in PIPELINE_POINTS:
                messages = max(clients, int(messages * scale))
                pt = asyncio.run(
                    pipeline.measure(stack.url("gateway"), messages, clients, quiet=True)
                )
                r["step3"].append(pt)
                print(
                    f"  {clients:>2} users: {pt['rate']:.1f} prompts/s, first token p50 "
                    f"{pt['first']['p50']:.1f} ms, completed p50 {pt['done']['p50']:.1f} ms"
                )
        r["load"] = {"step 1": w1.groups, "step 3": w3.groups}
        r["peak13"] = {n: max(w1.peak_rss[n], w3.peak_rss[n]) for n in pids}

        say("step 2: sustained POST /chatroom/{id}/message from many users...")
        users, rooms = STEP2["users"], max(4, int(STEP2["rooms"] * scale))
        r["step2_users"], r["step2"], r["peak2"] = users, [], dict.fromkeys(pids, 0)
        for label, pause in STEP2_VARIANTS:
            senders = asyncio.run(load.prepare_senders(stack, users, rooms))
            say(f"  {users} users, {rooms} rooms each; {label}")
            worker_pid = stack.processes["ai-worker"].pid
            try:
                if pause:
                    os.kill(worker_pid, signal.SIGSTOP)
                with Watch(pids) as w2:
                    post = asyncio.run(load.post_acceptance(stack, senders, STEP2["max_seconds"]))
            finally:
                if pause:
                    os.kill(worker_pid, signal.SIGCONT)
            r["step2"].append(
                {
                    "label": label,
                    "run": post,
                    "cpu": w2.cpu_percent,
                    "machine": w2.machine_cpu_percent,
                }
            )
            r["peak2"] = {n: max(r["peak2"][n], w2.peak_rss[n]) for n in pids}
            r["load"][f"step 2, {label}"] = w2.groups
            say(
                f"  {post.requests - len(post.errors)} accepted in {post.elapsed:.1f} s, "
                f"errors {len(post.errors)}"
            )
            for error in post.errors[:20]:
                print(f"    error: {error}")

    say("step 4: replies/s from one ai-worker process, ~1 s per reply...")
    levels = [(c, max(c, int(n * scale))) for c, n in WORKER_LEVELS]
    r["rest4"], r["step4"] = worker.scaling(levels)
    for level in r["step4"]:
        r["load"][f"step 4, concurrency {level['concurrency']}"] = level["groups"]
    for step, groups in r["load"].items():
        say(f"CPU in {step}: " + ", ".join(f"{k} {v:.0f}%" for k, v in groups.items()))
    r["elapsed"] = time.perf_counter() - started
    return r


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="short runs; writes nothing")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=REPO_ROOT / "docs" / "bench-latency.png")
    args = parser.parse_args()
    r = run(args.quick)
    text = report.document(r, args.plot.relative_to(args.out.parent))
    print("\n" + text)
    if not args.quick:
        report.plot(r["step3"], args.plot)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} and {args.plot} ({r['elapsed']:.0f} s)")


if __name__ == "__main__":
    main()
