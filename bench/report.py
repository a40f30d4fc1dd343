"""BENCHMARKS.md and the latency plot from one `python -m bench` run."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.procstats import MB

# The reference (Node) service on the same kind of 2-core machine, wrk -t1 -c16 -d10s.
REFERENCE = {
    "get": "627–678 req/s, p50 23–25 ms, p99 32–57 ms",
    "post": "330–344 req/s, p50 46 ms",
    "worker": "0.97 replies/s (one job at a time)",
    "memory": "server 99 MB at rest, 170 MB after load; worker 61 → 108 MB",
}


def machine() -> dict[str, str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "cpu": f"{os.cpu_count()} cores ({model})",
        "memory": f"{psutil.virtual_memory().total / 1024**3:.0f} GiB",
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [p["clients"] for p in points]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colors = {"p50": "tab:blue", "p95": "tab:orange", "p99": "tab:red"}
    for key, label, style in (
        ("done", "POST → completed", "-"),
        ("first", "POST → first SSE token", "--"),
    ):
        for q, color in colors.items():
            ax.plot(
                users,
                [p[key][q] for p in points],
                style,
                marker="o" if style == "-" else "s",
                color=color,
                label=f"{label} {q}",
            )
    ax.set_xticks(users)
    ax.set_xticklabels([f"{p['clients']}\n({p['rate']:.0f} prompts/s)" for p in points])
    ax.set_xlabel("concurrent users (each sends its next prompt when the reply is done)")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("Pipeline latency through the gateway, simulator at zero latency (2 cores)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _mb(value: int | None) -> str:
    return "–" if not value else f"{value / MB:.0f}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def tables(r: dict) -> dict[str, str]:
    """The Markdown tables, by step."""
    out = {}
    step1 = r["step1"]
    hello = step1[0]
    lines = [
        _row("target", "req/s", "p50 ms", "p99 ms", "vs bare app", "errors"),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in step1:
        p = run.pct()
        ratio = f"{run.rate / hello.rate:.2f}×" if hello.rate else "–"
        lines.append(
            _row(
                run.label,
                f"{run.rate:,.0f}",
                f"{p['p50']:.1f}",
                f"{p['p99']:.1f}",
                ratio,
                len(run.errors),
            )
        )
    lines.append(
        _row("reference service, GET /api/v1/chatroom (wrk)", REFERENCE["get"], "", "", "", "")
    )
    out["step1"] = "\n".join(lines)

    lines = [
        _row("50 users", "accepted/s", "p50 ms", "p99 ms", "prompts", "errors"),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant in r["step2"]:
        post = variant["run"]
        p = post.pct()
        accepted = post.requests - len(post.errors)
        lines.append(
            _row(
                variant["label"],
                f"**{accepted / post.elapsed:,.0f}**",
                f"{p['p50']:.1f}",
                f"{p['p99']:.1f}",
                post.requests,
                len(post.errors),
            )
        )
    lines.append(_row("reference service (wrk, 16 connections)", REFERENCE["post"], "", "", "", ""))
    out["step2"] = "\n".join(lines)

    lines = [
        _row(
            "users",
            "prompts",
            "prompts/s",
            "first token p50 / p95 / p99 ms",
            "completed p50 / p95 / p99 ms",
        ),
        "|---:|---:|---:|---:|---:|",
    ]
    for pt in r["step3"]:
        f, d = pt["first"], pt["done"]
        lines.append(
            _row(
                pt["clients"],
                pt["prompts"],
                f"{pt['rate']:.1f}",
                f"{f['p50']:.1f} / {f['p95']:.1f} / {f['p99']:.1f}",
                f"{d['p50']:.1f} / {d['p95']:.1f} / {d['p99']:.1f}",
            )
        )
    out["step3"] = "\n".join(lines)

    lines = [
        _row(
            "AI_WORKER_CONCURRENCY",
            "replies",
            "replies/s",
            "steady replies/s",
            "ceiling",
            "worker CPU",
            "simulator CPU",
            "machine CPU (all cores)",
            "worker peak RSS MB",
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in r["step4"]:
        rate = f"{lv['rate']:.1f}" if "error" not in lv else f"failed: {lv['error']}"
        steady = f"**{lv['steady_rate']:.1f}**" if "error" not in lv else ""
        lines.append(
            _row(
                lv["concurrency"],
                lv["replies"],
                rate,
                steady,
                f"{lv['concurrency'] / 1.0:.0f}",
                f"{lv['cpu']['ai-worker']:.0f}%",
                f"{lv['cpu']['gemini-sim']:.0f}%",
                f"{(os.cpu_count() or 1) * lv['machine_cpu']:.0f}%",
                _mb(lv["peak_rss"]["ai-worker"]),
            )
        )
    lines.append(_row("reference service", "", "0.97", "", "1", "", "", "", ""))
    out["step4"] = "\n".join(lines)

    rest, p13, p2 = r["rest"], r["peak13"], r["peak2"]
    rest4 = r["rest4"]
    peak4 = {}
    for lv in r["step4"]:
        for name, value in lv["peak_rss"].items():
            peak4[name] = max(peak4.get(name, 0), value)
    lines = [
        _row(
            "process (RSS MB)",
            "at rest",
            "peak, steps 1 + 3",
            "peak, step 2 (POSTs)",
            "at rest, worker stack",
            "peak, step 4 (worker levels)",
        ),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in rest:
        lines.append(
            _row(
                name,
                _mb(rest[name]),
                _mb(p13.get(name)),
                _mb(p2.get(name)),
                _mb(rest4.get(name)),
                _mb(peak4.get(name)),
            )
        )
    total = sum(rest.values())
    lines.append(
        _row(
            "**all of the stack**",
            _mb(total),
            _mb(sum(p13.values())),
            _mb(sum(p2.values())),
            "",
            "",
        )
    )
    out["memory"] = "\n".join(lines)
    lines = [_row("step", "this run", "Postgres + Redis", "other"), "|---|---:|---:|---:|"]
    for step, g in r["load"].items():
        lines.append(
            _row(step, *(f"{g[k]:.0f}%" for k in ("this run", "Postgres + Redis", "other")))
        )
    out["load"] = "\n".join(lines)
    return out


def _scaling_sentence(levels: list[dict]) -> str:
    """Where one worker stops scaling, from the measured rates and CPU."""
    levels = [lv for lv in levels if "error" not in lv]
    if not levels:
        return "No level completed."
    eff = ", ".join(
        f"{100 * lv['steady_rate'] / lv['concurrency']:.0f}% at {lv['concurrency']}"
        for lv in levels
    )
    text = f"Steady rate ÷ ceiling: {eff}. "
    bound = next((lv for lv in levels if lv["cpu"]["ai-worker"] >= 80), None)
    if bound is None:
        top = levels[-1]
        return text + (
            f"The worker process never reached 80% of a core (at most "
            f"{top['cpu']['ai-worker']:.0f}% at {top['concurrency']}): it did not run out "
            f"of CPU in this run."
        )
    machine = (os.cpu_count() or 1) * bound["machine_cpu"]
    return text + (
        f"It stops scaling at {bound['concurrency']}: {bound['steady_rate']:.0f} replies/s, "
        f"{100 * bound['steady_rate'] / bound['concurrency']:.0f}% of the ceiling, with the "
        f"worker process at {bound['cpu']['ai-worker']:.0f}% CPU — all of the one core a "
        f"single asyncio process can use — while the simulator used "
        f"{bound['cpu']['gemini-sim']:.0f}% and the machine {machine:.0f}% of "
        f"{100 * (os.cpu_count() or 1)}% (other processes "
        f"{bound['groups']['other']:.0f}%). So the limit is the worker's own CPU per reply "
        f"(google-genai's stream parsing, a Redis append per chunk, the completion event "
        f"and the ack), not the model and not the simulator; below that level the rate "
        f"tracks the ceiling, a little under it as each reply takes a little over 1 s. "
        f"More replies/s need more worker processes (replicas), on more cores."
    )


def document(r: dict, plot_path: Path) -> str:
    t = tables(r)
    m = r["machine"]
    s1 = r["step1"]
    gw, hello = s1[-1], s1[0]
    return f"""# Benchmarks

Written by `make bench` (`python -m bench`, {r["elapsed"]:.0f} s): do not edit by hand, run
it again. Each run starts its own stack — the services as processes, the Gemini simulator,
a fresh database and Redis db 13 — and measures through the public API. They are
measurements, not tests: nothing asserts on them.

**Machine:** {m["cpu"]}, {m["memory"]}, {m["os"]}, Python {m["python"]}, {r["postgres"]}
and {r["redis"]} on the same host. **Date:** {m["date"]}.

Every process of the stack *and the load driver* (an asyncio client in the `python -m bench`
process: aiohttp for steps 1–2, httpx for step 3) share the same 2 cores, so every figure
below is a lower bound for the services: the driver takes CPU they would otherwise have.
Other work on the machine competes too (see "Machine load" at the end).
The reference figures are the reference (Node) service measured on the same kind of
machine with `wrk -t1 -c16 -d10s`, whose C driver costs far less CPU than ours.

## 1. Gateway cost on a cached read

{STEP1_TEXT.format(**r["step1_cfg"])}

{t["step1"]}

The gateway adds JWT verification, a token-state check and an aiohttp forward to chat,
which verifies the JWT again and answers from Redis. Through the gateway it serves
{gw.rate / hello.rate:.2f}× the requests/s of a hello-world app on the same server, and
{gw.rate / s1[1].rate:.2f}× what chat serves when called directly: most of the gap to the
bare app is chat's own work per request (a FastAPI app with its middleware, JWT check and
Redis round trips), and the hop through the gateway costs the rest.

## 2. Sustained prompt acceptance

`POST /api/v1/chatroom/{{id}}/message` through the gateway from {r["step2_users"]} users at
once, each with its own chatrooms (one prompt per room: a room refuses a second prompt while
its reply is pending), each user sending its next prompt as soon as the last was accepted
(closed loop, so p50 ≈ users ÷ rate); the Basic daily limit raised to 1,000,000. Each
accepted prompt is a chat transaction (quota unit, prompt, queued reply, outbox row) and a
MessageQueued event. Twice: first with the pipeline working the backlog meanwhile (the
relay publishes, the ai-worker generates the replies at zero model latency, chat stores
them, all on the same 2 cores); then with the ai-worker paused (SIGSTOP), the acceptance
path alone, as with the reference service, whose worker does one reply a second.

{t["step2"]}

CPU during each (CPU time over wall time, 100% = one core):

{_step2_cpu(r["step2"])}

{_errors(r["step2"])}
## 3. Pipeline latency: POST a prompt → first SSE token → completed

`bench.pipeline.measure`: each user sends prompts one after another into its own chatroom
and follows each reply's SSE stream through the gateway until `done`; simulator at zero
latency (30 chunks a reply, no delay), so the figures are the pipeline's own cost: gateway,
auth, chat's transaction and outbox, relay, Redis Streams, the worker and google-genai, the
token stream, SSE. The offered load is closed-loop: more users, more prompts in flight.

{t["step3"]}

![latency percentiles against concurrent users]({plot_path.as_posix()})

## 4. Replies per second from one ai-worker process

`bench.worker`: MessageQueued events written straight to `chat.events`, one `python -m
ai_worker serve` process restarted with each `AI_WORKER_CONCURRENCY`, the simulator
answering each request in about 1 s (10 chunks, 100 ms apart), ReplyCompleted events
counted on `ai.events`. The ceiling is concurrency ÷ 1 s. "replies/s" is over the whole
level; "steady" between the 10th and the 90th percent of its replies, without the first
second (no reply can finish sooner) and the partly filled last round. CPU is each process's
CPU time over the level's wall time (psutil; 100% = one core).

{t["step4"]}

{_scaling_sentence(r["step4"])}

Each reply in flight holds a Redis connection of the worker; `shared/redis.py` uses a
blocking pool of up to 1,024 connections (it waits for a free one rather than fail).

## 5. Memory

Resident set size of each process (and its children; none here), psutil: at rest 1 s after
start-up, and the peak sampled every 0.2 s during the steps. The worker stack (step 4) is a
second stack with only the simulator and the ai-worker. Billing is not started by the
benchmark. Reference service: {REFERENCE["memory"]}.

{t["memory"]}

## Machine load during the run

CPU time over wall time of every process on the machine (psutil; 100% = one core, 200% =
the machine), in three groups: this run (the `python -m bench` driver and the stack it
started), the Postgres and Redis servers (shared: they also serve anything else running),
and every other process. Before it started, the run waited (up to 60 s) for the machine to
be quiet; at the start the machine was at {r["busy_before"]:.0f}% CPU. "Other" well above
zero means something else — another test run, say — took CPU from the stack during that
step, and its figures are low by about that much.

{t["load"]}
"""


STEP1_TEXT = (
    "GET `/api/v1/chatroom` (the first page of one user's three chatrooms, cached in Redis "
    "after the first read) at {concurrency} connections for {duration:.0f} s after a "
    "{warmup:.0f} s warm-up, closed loop (each connection sends its next request when the "
    "last answered), through the gateway and straight to chat; against `bench/hello.py`, a "
    "bare FastAPI hello-world under `python -m uvicorn` with the services' options (uvloop, "
    "httptools, no access log)."
)


def _errors(variants: list[dict]) -> str:
    errors = [e for v in variants for e in v["run"].errors]
    if not errors:
        return "No errors.\n"
    shown = "\n".join(f"    {e}" for e in errors[:20])
    return f"**{len(errors)} errors**, the first ones:\n\n{shown}\n"


def _step2_cpu(variants: list[dict]) -> str:
    return "\n".join(f"- {v['label']}: {_cpu(v['cpu'], v['machine'])}" for v in variants)


def _cpu(per_process: dict[str, float], machine: float) -> str:
    parts = [f"{name} {value:.0f}%" for name, value in per_process.items()]
    total = (os.cpu_count() or 1) * machine
    return ", ".join(parts) + f"; the whole machine {total:.0f}% of {100 * (os.cpu_count() or 1)}%"
