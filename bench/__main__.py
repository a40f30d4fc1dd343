"""`make bench`: every figure of BENCHMARKS.md in one run, then the file and the latency plot.

    python -m bench            # ~5 minutes on 2 cores
    python -m bench --quick    # shorter runs, to check the harness (nothing written)

One stack (auth, chat, gateway, the ai-worker, the Gemini simulator at zero latency, access
logs on) serves the HTTP rows, driven by wrk (bench/wrk.py, bench/lua/post.lua): /healthz,
the cached chatroom list through the gateway and straight to chat, and accepted prompts
with the ai-worker paused and working. The Python drivers measure POST → first SSE token
(bench/pipeline.py) and the ai-worker's replies/s, one process and two (bench/worker.py).
After each measurement the same load runs again under py-spy for the "where the time goes"
section; psutil samples CPU and RSS throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from bench import load, pipeline, profile, report, worker, wrk
from bench.procstats import (
    Watch,
    import_profile,
    import_rss,
    not_in_its_install,
    process_round_trip_us,
    rss_now,
    wait_for_quiet,
)
from bench.stackrun import bench_stack, wait_drained
from dev.infra import unix_socket_dir
from dev.stack import REPO_ROOT

# (concurrent users, prompts, pace): back to back (pace 0), each user sending its next
# prompt the moment the last reply is done; then the 10 users at one prompt a second each.
PIPELINE_POINTS = [(1, 60, 0.0), (4, 160, 0.0), (10, 300, 0.0), (10, 200, 1.0)]
PROFILE_SECONDS = 5.0
# What a process costs before it does anything: Python, the web framework, the Gemini SDK,
# and each service's app module with everything it imports.
IMPORTS = ["", "fastapi", "google.genai", "auth.app", "chat.app", "gateway.app", "ai_worker.app"]
# Each service's app module and the distribution its image installs (deploy/docker).
APPS = {
    "auth.app": "gemini-auth",
    "chat.app": "gemini-chat",
    "gateway.app": "gemini-gateway",
    "ai_worker.app": "gemini-ai-worker",
}
ENV = {
    **pipeline.ENV,
    "LOG_LEVEL": "INFO",  # every request's access log line is written, as in production
    "MAX_CHATROOMS_PER_USER": str(load.ROOMS_PER_USER + 10),
}


def versions(stack) -> tuple[str, str]:
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    info = redis.Redis.from_url(stack.env["REDIS_URL"]).info("server")
    name = "Valkey" if "valkey_version" in info else "Redis"
    over = "over its Unix socket" if unix_socket_dir(stack.env["DATABASE_URL"]) else "over TCP"
    return (
        f"PostgreSQL {pg.split()[0]} ({over})",
        f"{name} {info.get('valkey_version') or info['redis_version']}",
    )


def metrics_cost_us() -> float:
    """What every request's metrics cost (shared.http: a counter and a histogram), in
    microseconds: the best of five timeit rounds."""
    import timeit

    from shared.metrics import HTTP_DURATION, HTTP_REQUESTS

    def record() -> None:
        HTTP_REQUESTS.labels("/bench", "GET", "200").inc()
        HTTP_DURATION.labels("/bench", "GET").observe(0.01)

    return min(timeit.repeat(record, number=20_000, repeat=5)) / 20_000 * 1e6


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.seconds = 2.0 if quick else float(wrk.SECONDS)
        self.r: dict = {"machine": report.machine(), "http": [], "profiles": {}, "load": {}}
        self.started = time.perf_counter()

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:3.0f} s] {text}", flush=True)

    def http(self, key: str, pids: dict[str, int], measure, profiled: list[str] | None = None):
        """One wrk row: measured under psutil's watch; then, for ``profiled`` processes,
        the same load again under py-spy."""
        with Watch(pids) as watch:
            run = measure(self.seconds)
        self.r["http"].append({"key": key, "run": run, "watch": watch})
        self.r["load"][run.label] = watch.groups
        cpu = ", ".join(f"{n} {v:.0f}%" for n, v in watch.cpu_percent.items() if v >= 1)
        self.say(
            f"  {run.label}: {run.rate:,.0f} req/s, p50 {run.latency_ms.get('p50', 0):.1f} ms,"
            f" p99 {run.latency_ms.get('p99', 0):.1f} ms, errors {run.errors}; CPU {cpu}"
        )
        if profiled and not self.quick:
            self.r["profiles"][key] = profile.record(
                {n: pids[n] for n in profiled}, PROFILE_SECONDS, lambda: measure(PROFILE_SECONDS)
            )
        return run

    def stack_steps(self) -> None:
        self.say("starting the stack (auth, chat, gemini-sim at zero latency, ai-worker, gateway)")
        with bench_stack(pipeline.SERVICES, ENV) as stack, tempfile.TemporaryDirectory() as tmp:
            pids = {name: proc.pid for name, proc in stack.processes.items()}
            self.r["postgres"], self.r["redis"] = versions(stack)
            time.sleep(1.0)
            self.r["rest"] = rss_now(pids)
            self.say("set-up: users, and chatrooms for the POST rows (wrk, bench/lua/rooms.lua)")
            work = load.prepare(stack, Path(tmp))
            rooms = load.Rooms(work)
            self.say(f"  {work.rooms:,} chatrooms")
            gateway, chat = stack.url("gateway"), stack.url("chat")
            auth = work.reader

            self.say("HTTP rows (wrk -t1 -c16, access logs on)")
            with Watch(pids) as peak_http:
                for key, label, url in (
                    ("healthz_gateway", "GET /healthz, gateway", gateway + "/healthz"),
                    ("healthz_chat", "GET /healthz, chat", chat + "/healthz"),
                ):
                    self.http(
                        key, pids, lambda s, label=label, url=url: wrk.run(label, url, seconds=s)
                    )
                list_url = "/api/v1/chatroom"
                self.http(
                    "list_gateway",
                    pids,
                    lambda s: wrk.run(
                        "GET /api/v1/chatroom through the gateway",
                        gateway + list_url,
                        headers=auth,
                        seconds=s,
                    ),
                    ["gateway", "chat"],
                )
                self.http(
                    "list_chat",
                    pids,
                    lambda s: wrk.run(
                        "GET /api/v1/chatroom straight to chat",
                        chat + list_url,
                        headers=auth,
                        seconds=s,
                    ),
                    ["chat"],
                )
                worker_pid = stack.processes["ai-worker"].pid
                os.kill(worker_pid, signal.SIGSTOP)
                try:
                    self.http(
                        "post_paused",
                        pids,
                        lambda s: load.post("POST a prompt, ai-worker paused", stack, rooms, s),
                        ["gateway", "chat"],
                    )
                finally:
                    os.kill(worker_pid, signal.SIGCONT)
                self.say("  the paused prompts' replies drain...")
                wait_drained(stack)
                self.http(
                    "post_working",
                    pids,
                    lambda s: load.post("POST a prompt, pipeline working", stack, rooms, s),
                    ["gateway", "chat", "ai-worker"],
                )
                self.say("  the backlog drains...")
                wait_drained(stack)
            self.r["peak_http"] = peak_http.peak_rss

            self.say("POST → first SSE token → completed (Python driver, bench/pipeline.py)")
            self.r["sse"] = []
            with Watch(pids) as peak_sse:
                for clients, messages, pace in PIPELINE_POINTS:
                    messages = max(clients, messages // (4 if self.quick else 1))
                    pt = asyncio.run(
                        pipeline.measure(gateway, messages, clients, quiet=True, pace=pace)
                    )
                    self.r["sse"].append(pt)
                    how = f", one prompt every {pace:g} s each" if pace else ""
                    self.say(
                        f"  {clients:>2} users{how}: first token p50 {pt['first']['p50']:.1f} ms,"
                        f" p99 {pt['first']['p99']:.1f} ms; completed p50"
                        f" {pt['done']['p50']:.1f} ms ({pt['rate']:.0f} prompts/s)"
                    )
            self.r["peak_sse"] = peak_sse.peak_rss
            if not self.quick:
                self.r["profiles"]["first_token"] = profile.record(
                    {n: pids[n] for n in ("gateway", "chat", "ai-worker")},
                    PROFILE_SECONDS,
                    lambda: asyncio.run(
                        pipeline.measure(gateway, 10_000, 1, seconds=PROFILE_SECONDS, quiet=True)
                    ),
                )

    def worker_steps(self) -> None:
        self.say("the ai-worker: replies/s at ~1 s per reply (bench/worker.py)")
        self.r["worker"] = worker.scaling(
            quick=self.quick, profile_seconds=0 if self.quick else PROFILE_SECONDS
        )
        for lv in self.r["worker"]["levels"]:
            self.r["load"][lv["label"]] = lv["groups"]

    def run(self) -> dict:
        self.r["busy_before"] = wait_for_quiet(0 if self.quick else 60)
        self.r["round_trip_us"] = process_round_trip_us()
        self.say(f"a round trip between two processes: {self.r['round_trip_us']:.1f} µs")
        self.stack_steps()
        self.worker_steps()
        self.say("RSS of the imports alone; the cost of a request's metrics")
        self.r["imports"] = import_rss(IMPORTS)
        self.r["import_profiles"] = {}
        for module, distribution in APPS.items():
            own = import_profile(module)
            self.r["import_profiles"][module] = {
                "own": own,
                "not_installed": not_in_its_install(list(own), distribution),
            }
        self.r["metrics_us"] = metrics_cost_us()
        for step, groups in self.r["load"].items():
            self.say(f"CPU in {step}: " + ", ".join(f"{k} {v:.0f}%" for k, v in groups.items()))
        self.r["elapsed"] = time.perf_counter() - self.started
        return self.r


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="short runs; writes nothing")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=REPO_ROOT / "docs" / "bench-latency.png")
    args = parser.parse_args()
    wrk.require()
    r = Bench(args.quick).run()
    text = report.document(r, args.plot.relative_to(args.out.parent))
    print("\n" + text)
    if not args.quick:
        report.plot(report.back_to_back(r), args.plot)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} and {args.plot} ({r['elapsed']:.0f} s)")


if __name__ == "__main__":
    main()
