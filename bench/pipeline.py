"""Benchmark (a): POST a prompt → first SSE token, and POST → reply completed.

The whole stack through the gateway, the Gemini simulator at zero latency. Each of
``--clients`` concurrent users sends prompts one after another into its own chatroom,
following each reply's SSE stream until it is done; ``--messages`` prompts in all.

The measured requests go through aiohttp, whose client costs this process about half the
CPU of httpx's: the driver shares the two cores with the stack it measures (wrk, in C,
drives the HTTP rows for the same reason). Set-up (sign-up, log-in, the room) uses httpx.

    python -m bench.pipeline --messages 300 --clients 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time

import aiohttp
import httpx

from bench.stackrun import bench_stack, percentiles

SERVICES = ["auth", "chat", "gemini-sim", "ai-worker", "gateway"]
ENV = {
    "GEMINI_SIM_TOKEN_DELAY_MS": "0",
    "BASIC_TIER_DAILY_PROMPT_LIMIT": "1000000",
    "LOG_LEVEL": "WARNING",
}


async def login(api: httpx.AsyncClient) -> dict[str, str]:
    number = "+919" + "".join(secrets.choice("0123456789") for _ in range(9))
    await api.post("/api/v1/auth/signup", json={"mobileNumber": number})
    otp = (await api.post("/api/v1/auth/send-otp", json={"mobileNumber": number})).json()["otp"]
    token = (
        await api.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": otp})
    ).json()["token"]
    return {"Authorization": f"Bearer {token}"}


async def one_prompt(
    session: aiohttp.ClientSession, headers: dict, room: str, i: int
) -> tuple[float, float, float]:
    """(first token, completed, the POST's own answer), seconds after the POST was sent."""
    started = time.perf_counter()
    async with session.post(
        f"/api/v1/chatroom/{room}/message", json={"content": f"prompt {i}"}, headers=headers
    ) as sent:
        sent.raise_for_status()
        stream_url = (await sent.json())["data"]["reply"]["streamUrl"]
    accepted = time.perf_counter() - started
    first_token = None
    async with session.get(stream_url, headers=headers) as r:
        r.raise_for_status()
        event = None
        async for raw in r.content:  # one line at a time
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "token" and first_token is None:
                first_token = time.perf_counter() - started
            elif line.startswith("data:") and event == "done":
                status = json.loads(line.partition(":")[2])["status"]
                if status != "completed":
                    raise RuntimeError(f"reply ended {status}")
                break
    done = time.perf_counter() - started
    return first_token if first_token is not None else done, done, accepted


async def client_loop(
    api: httpx.AsyncClient,
    session: aiohttp.ClientSession,
    count: int,
    results: list,
    until: float,
    pace: float = 0.0,
) -> None:
    """One user: ``count`` prompts, each sent when the reply before it is done and, with
    ``pace``, no sooner than ``pace`` seconds after the one before was sent."""
    headers = await login(api)
    room = (await api.post("/api/v1/chatroom", json={"name": "bench"}, headers=headers)).json()[
        "data"
    ]["chatroom"]["id"]
    if pace:  # the users start at different moments, as people do
        await asyncio.sleep(secrets.SystemRandom().uniform(0, pace))
    for i in range(count):
        sent = time.perf_counter()
        if sent > until:
            return
        results.append(await one_prompt(session, headers, room, i))
        if pace:
            await asyncio.sleep(max(0.0, sent + pace - time.perf_counter()))


async def measure(
    base_url: str,
    messages: int,
    clients: int,
    *,
    seconds: float = float("inf"),
    quiet: bool = False,
    pace: float = 0.0,
) -> dict:
    """Run the prompts (at most ``seconds``); returns the first-token and completed
    percentiles (ms) and the rate. ``pace``: each user sends a prompt every ``pace``
    seconds (or as soon as its reply is done, if that takes longer); 0, back to back."""
    results: list[tuple[float, float, float]] = []
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as api,
        aiohttp.ClientSession(
            base_url=base_url,
            connector=aiohttp.TCPConnector(limit=clients * 2),
            timeout=aiohttp.ClientTimeout(total=60),
        ) as session,
    ):
        started = time.perf_counter()
        per_client = max(1, messages // clients)
        until = started + seconds
        await asyncio.gather(
            *(client_loop(api, session, per_client, results, until, pace) for _ in range(clients))
        )
        elapsed = time.perf_counter() - started
    first = percentiles([r[0] * 1000 for r in results])
    done = percentiles([r[1] * 1000 for r in results])
    post = percentiles([r[2] * 1000 for r in results])
    figures = {
        "clients": clients,
        "pace": pace,
        "prompts": len(results),
        "elapsed": elapsed,
        "rate": len(results) / elapsed,
        "first": first,
        "done": done,
        "post": post,
    }
    if not quiet:
        how = f"one prompt every {pace:g} s each" if pace else "back to back"
        print(f"\n{len(results)} prompts, {clients} concurrent users ({how}),", end=" ")
        print("simulator at zero latency")
        print(f"{'ms':<28}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
        for label, p in (("POST → first SSE token", first), ("POST → completed", done)):
            print(f"{label:<28}" + "".join(f"{p[k]:>8.1f}" for k in ("p50", "p95", "p99", "max")))
        print(f"throughput: {figures['rate']:.1f} prompts/s end to end")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="seconds between one user's prompts (default 0: each as soon as the last is done)",
    )
    args = parser.parse_args()
    with bench_stack(SERVICES, ENV) as stack:
        asyncio.run(measure(stack.url("gateway"), args.messages, args.clients, pace=args.pace))


if __name__ == "__main__":
    main()
