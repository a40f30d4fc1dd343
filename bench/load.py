"""The HTTP rows, driven by wrk (bench/wrk.py): the cached chatroom list through the gateway
and straight to chat, /healthz, and accepted prompts (bench/lua/post.lua).

Only the set-up (users, tokens, chatrooms) is Python; wrk does every measured request.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt

from bench import wrk
from bench.pipeline import login
from dev.stack import Stack

# One prompt per chatroom (a pending reply makes the room refuse the next): enough rooms for
# a measured run (8 s) and its profiled repeat (5 s) at up to ~1,500 accepted prompts/s.
POST_USERS, ROOMS_PER_USER = 16, 1250
POST_RATE_ROOM = 1500


async def _retrying(call, attempts: int = 3):
    """Set-up only (not measured): retry a request that lost its connection. Under load a
    pooled keep-alive connection is now and then closed by the server as it is reused."""
    for attempt in range(attempts):
        try:
            return await call()
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def _users(base_url: str, count: int) -> list[dict[str, str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as api:
        return await asyncio.gather(*(_retrying(lambda: login(api)) for _ in range(count)))


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@dataclass
class Workload:
    """What the wrk runs need: a user whose list is cached, and a file of (token, room)."""

    reader: dict[str, str]
    rooms_file: Path
    rooms: int


def prepare(stack: Stack, workdir: Path) -> Workload:
    gateway = stack.url("gateway")

    async def reader() -> dict[str, str]:
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as api:
            headers = await login(api)
            for i in range(3):
                body = {"name": f"bench {i}"}
                (await api.post("/api/v1/chatroom", json=body, headers=headers)).raise_for_status()
            (await api.get("/api/v1/chatroom", headers=headers)).raise_for_status()
            return headers

    headers = asyncio.run(reader())
    senders = asyncio.run(_users(gateway, POST_USERS))
    tokens = {
        jwt.decode(_token(h), options={"verify_signature": False})["sub"]: _token(h)
        for h in senders
    }
    tokens_file, made_file = workdir / "tokens.txt", workdir / "made.txt"
    tokens_file.write_text("".join(f"{t}\n" for t in tokens.values()))
    wanted = POST_USERS * ROOMS_PER_USER
    wrk.run(
        "create chatrooms",
        gateway + "/api/v1/chatroom",
        script="rooms.lua",
        script_args=[str(tokens_file), str(made_file), str(wanted)],
        seconds=300,
        until=lambda: made_file.exists() and _lines(made_file) >= wanted,
    )
    lines = [line.split() for line in made_file.read_text().splitlines() if line.strip()]
    rooms_file = workdir / "rooms.txt"
    rooms_file.write_text("".join(f"{tokens[user]} {room}\n" for user, room in lines))
    return Workload(headers, rooms_file, len(lines))


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


class Rooms:
    """Hands each POST run the next part of the rooms list, from where the last run stopped,
    wrapping round: a room can take a prompt again once the pipeline has drained (its reply
    completed), which the benchmark waits for between the paused and the working rows."""

    def __init__(self, workload: Workload) -> None:
        self.lines = workload.rooms_file.read_text().splitlines(keepends=True)
        self.next = 0
        self._dir = tempfile.mkdtemp(prefix="bench-rooms-")

    def take(self, count: int) -> Path:
        count = min(count, len(self.lines))
        part = [self.lines[(self.next + i) % len(self.lines)] for i in range(count)]
        self.next = (self.next + count) % len(self.lines)
        path = Path(self._dir) / f"rooms-{self.next}.txt"
        path.write_text("".join(part))
        return path


def post(label: str, stack: Stack, rooms: Rooms, seconds: float) -> wrk.WrkRun:
    """Accepted prompts through the gateway, each into a room no other prompt of this run
    (or of the run before it, if the pipeline has not drained since) has used: as many rooms
    as 1,500 prompts/s would need. A reused room shows up as 409s in the errors."""
    path = rooms.take(int(POST_RATE_ROOM * seconds))
    return wrk.run(
        label,
        stack.url("gateway") + "/api/v1/chatroom/ID/message",
        script="post.lua",
        script_args=[str(path)],
        seconds=seconds,
    )
