"""Fault injection under load (the scenarios of docs' reliability table): users send a steady
stream of prompts from threads of their own while the main thread kills and restarts
processes and servers; afterwards the invariants hold: every accepted prompt's reply is final,
no reply exists twice, no quota unit is lost or counted twice, and the stack recovered."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import pytest
import redis

from shared.testing.fixtures import random_mobile_number

if TYPE_CHECKING:
    from .conftest import World

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


FINAL = {"completed", "failed", "blocked", "cancelled"}
TRANSIENT = (httpx.TransportError,)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _retrying(call: Callable[[], httpx.Response], ok: set[int], timeout: float) -> httpx.Response:
    """``call()`` again on transport errors and 5xx (a fault is being injected) until it
    answers one of ``ok`` or the deadline passes; the last response otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = call()
            if response.status_code in ok or response.status_code < 500:
                return response
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise
        else:
            if time.monotonic() > deadline:
                return response
        time.sleep(0.3)


class User:
    """A signed-up, logged-in user driving the gateway with its own HTTP client."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.client = httpx.Client(base_url=world.stack.url("gateway"), timeout=20, trust_env=False)
        self.headers: dict[str, str] = {}
        self.user_id = ""

    def login(self) -> User:
        """Sign up and log in with a one-time code."""

        def call(path: str, body: dict) -> httpx.Response:
            return self.client.post(path, json=body)

        number = random_mobile_number()
        signup = call("/api/v1/auth/signup", {"mobileNumber": number})
        assert signup.status_code == 201, signup.text
        self.user_id = signup.json()["userId"]
        sent = call("/api/v1/auth/send-otp", {"mobileNumber": number})
        assert sent.status_code == 200, sent.text
        verified = call(
            "/api/v1/auth/verify-otp", {"mobileNumber": number, "otp": sent.json()["otp"]}
        )
        assert verified.status_code == 200, verified.text
        self.headers = {"Authorization": f"Bearer {verified.json()['token']}"}
        return self

    def get(self, path: str) -> httpx.Response:
        return self.client.get("/api/v1" + path, headers=self.headers)

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return self.client.post("/api/v1" + path, json=body, headers=self.headers)

    def room(self, timeout: float = 40) -> str:
        response = _retrying(lambda: self.post("/chatroom", {"name": "rel"}), {201}, timeout)
        assert response.status_code == 201, response.text
        return response.json()["data"]["chatroom"]["id"]

    def messages(self, room_id: str) -> list[dict]:
        response = _retrying(lambda: self.get(f"/chatroom/{room_id}"), {200}, 30)
        assert response.status_code == 200, response.text
        return response.json()["data"]["chatroom"]["messages"]

    def status(self) -> dict:
        response = _retrying(lambda: self.get("/subscription/status"), {200}, 30)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def usage(self) -> dict:
        response = _retrying(lambda: self.get("/usage"), {200}, 30)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def pay(self, sim: httpx.Client) -> str:
        """Checkout for Pro and press Pay at the Stripe simulator; the subscription id."""
        checkout = self.post("/subscribe/pro")
        assert checkout.status_code == 200, checkout.text
        paid = sim.post(checkout.json()["data"]["checkoutUrl"] + "/pay", follow_redirects=False)
        assert paid.status_code == 303, paid.text
        state = sim.get("/_sim/state").json()
        mine = [s for s in state["subscriptions"] if s["metadata"].get("userId") == self.user_id]
        assert mine, "no subscription for this user at the simulator"
        return mine[-1]["id"]

    def close(self) -> None:
        self.client.close()


@dataclass
class Sent:
    user: User
    room: str
    prompt_id: str
    reply_id: str
    content: str
    final: dict | None = None


@dataclass
class Traffic:
    """Each user sends ``prompts`` prompts, ``interval`` seconds apart, each in a new room
    (one pending reply per room is the product's rule), from a thread of its own."""

    users: list[User]
    prompts: int
    interval: float = 0.4
    content: Callable[[int, int], str] = lambda u, i: f"reliability prompt {u}.{i}"
    accepted: list[Sent] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (user id, why)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, u: int, user: User) -> None:
        for i in range(self.prompts):
            content = f"{self.content(u, i)} ({uuid.uuid4().hex[:8]})"
            try:
                room = user.room()
                response = user.post(f"/chatroom/{room}/message", {"content": content})
            except (httpx.TransportError, AssertionError) as exc:
                with self.lock:
                    self.rejected.append((user.user_id, repr(exc)))
            else:
                with self.lock:
                    if response.status_code == 201:
                        data = response.json()["data"]
                        self.accepted.append(
                            Sent(user, room, data["message"]["id"], data["reply"]["id"], content)
                        )
                    else:
                        self.rejected.append(
                            (user.user_id, f"{response.status_code} {response.text}")
                        )
            time.sleep(self.interval)

    def start(self) -> Traffic:
        for u, user in enumerate(self.users):
            thread = threading.Thread(target=self._run, args=(u, user), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def wait_accepted(self, n: int, timeout: float = 30) -> None:
        wait_until(lambda: len(self.accepted) >= n, timeout, f"{n} accepted prompts")

    def join(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), "a traffic thread did not finish"


def settle(sent: list[Sent], timeout: float = 60) -> None:
    """Poll GET /chatroom/{id} until every accepted prompt's reply is final."""
    deadline = time.monotonic() + timeout
    for item in sent:
        while True:
            reply = next(
                (m for m in item.user.messages(item.room) if m["id"] == item.reply_id), None
            )
            assert reply is not None, f"reply {item.reply_id} is missing from its room"
            if reply["status"] in FINAL:
                item.final = reply
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"reply {item.reply_id} to {item.content!r} still {reply['status']} "
                    f"after {timeout:g}s"
                )
            time.sleep(0.2)


def statuses(sent: list[Sent]) -> Counter:
    return Counter(item.final["status"] for item in sent if item.final)


def check_invariants(world: World, users: list[User], traffic: Traffic) -> None:
    """No reply twice, exactly one reply per accepted prompt, and every user's quota equal to
    their accepted prompts minus those that ended failed."""
    sent = traffic.accepted
    duplicates = world.sql(
        "SELECT reply_to, count(*) FROM chat.messages WHERE role = 'GEMINI'"
        " AND superseded_by IS NULL GROUP BY 1 HAVING count(*) > 1"
    )
    assert duplicates == [], f"prompts with more than one live reply: {duplicates}"
    all_duplicates = world.sql(
        "SELECT reply_to, count(*) FROM chat.messages WHERE role = 'GEMINI'"
        " GROUP BY 1 HAVING count(*) > 1"
    )
    assert all_duplicates == [], f"prompts with more than one reply: {all_duplicates}"
    for item in sent:
        rows = world.sql(
            "SELECT id FROM chat.messages WHERE role = 'GEMINI' AND reply_to = %s",
            (item.prompt_id,),
        )
        assert rows == [(uuid.UUID(item.reply_id),)], (item.content, rows)
    today = datetime.now(UTC).date()
    for user in users:
        mine = [s for s in sent if s.user is user]
        failed = sum(1 for s in mine if s.final["status"] == "failed")
        expected = len(mine) - failed

        def used(user: User = user) -> int:
            rows = world.sql(
                "SELECT used FROM chat.daily_usage WHERE user_id = %s AND day = %s",
                (user.user_id, today),
            )
            return rows[0][0] if rows else 0

        stored = world.sql(
            "SELECT count(*) FROM chat.messages WHERE user_id = %s AND role = 'USER'",
            (user.user_id,),
        )[0][0]
        try:
            wait_until(lambda used=used, expected=expected: used() == expected, 5, "quota")
        except AssertionError:
            raise AssertionError(
                f"user {user.user_id}: daily_usage.used={used()} but {len(mine)} accepted - "
                f"{failed} failed = {expected} (prompts stored: {stored}; rejected: "
                f"{[r for r in traffic.rejected if r[0] == user.user_id]})"
            ) from None
        assert user.usage()["used"] == expected
        assert stored == len(mine), (
            f"user {user.user_id}: {stored} prompts stored, {len(mine)} accepted"
        )


def check_recovered(world: World) -> None:
    """Every service's /readyz answers 200 and a brand-new user's prompt completes. (The
    gateway's own says nothing of the services behind it: only its Redis.)"""
    urls = [world.stack.url(name) for name in ("gateway", "auth", "chat", "billing", "ai-worker")]

    def ready() -> bool:
        try:
            return all(
                httpx.get(url + "/readyz", timeout=3, trust_env=False).status_code == 200
                for url in urls
            )
        except httpx.TransportError:
            return False

    wait_until(ready, 30, "/readyz 200 from every service")
    # Recovered means recovered: the first request after the fault must just work (the
    # Redis clients retry a command once on a connection the restart broke).
    fresh = User(world).login()
    try:
        room = fresh.room()
        response = fresh.post(f"/chatroom/{room}/message", {"content": "still alive?"})
        assert response.status_code == 201, response.text
        item = Sent(fresh, room, "", response.json()["data"]["reply"]["id"], "still alive?")
        settle([item], timeout=30)
        assert item.final["status"] == "completed", item.final
    finally:
        fresh.close()


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def users(world: World) -> Iterator[list[User]]:
    made = [User(world).login() for _ in range(4)]
    yield made
    for user in made:
        user.close()


@pytest.fixture
def stripe(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.stack.url("stripe-sim"), timeout=20, trust_env=False) as c:
        yield c


@pytest.fixture
def gemini(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.stack.url("gemini-sim"), timeout=20, trust_env=False) as c:
        yield c


def make_pro(user: User, stripe: httpx.Client) -> str:
    subscription = user.pay(stripe)
    wait_until(lambda: user.usage()["tier"] == "PRO", 20, "tier PRO in chat")
    return subscription


def generating(world: World, sent: list[Sent]) -> bool:
    """Some accepted reply has streamed tokens already (its ``ai.reply.<id>`` stream)."""
    client = redis.Redis.from_url(world.infra.redis_url, socket_timeout=2)
    try:
        return any(client.xlen(f"ai.reply.{item.reply_id}") >= 2 for item in list(sent))
    finally:
        client.close()


# -- scenarios ---------------------------------------------------------------------------


def test_ai_worker_sigkilled_mid_stream(world: World, users: list[User], stripe) -> None:
    make_pro(users[0], stripe)
    traffic = Traffic(users, prompts=5, content=lambda u, i: f"[sim:slow] story {u}.{i}").start()
    traffic.wait_accepted(4)
    wait_until(lambda: generating(world, traffic.accepted), 20, "a reply being generated")
    world.kill_service("ai-worker")
    time.sleep(1.0)  # prompts keep arriving with no worker at all
    world.stack.restart("ai-worker")
    traffic.join()
    assert len(traffic.accepted) == 4 * 5, traffic.rejected
    settle(traffic.accepted, timeout=60)
    # A worker crash loses nothing: every reply is produced, once.
    assert statuses(traffic.accepted) == Counter(completed=20)
    for item in traffic.accepted:
        assert item.final["content"].count(item.content) == 1, item.final["content"]
    check_invariants(world, users, traffic)
    check_recovered(world)


def test_redis_restarted_empty_mid_stream(world: World, users: list[User], stripe) -> None:
    make_pro(users[0], stripe)
    traffic = Traffic(users, prompts=5, content=lambda u, i: f"[sim:slow] q {u}.{i}").start()
    traffic.wait_accepted(6)
    wait_until(lambda: generating(world, traffic.accepted), 20, "a reply being generated")
    world.restart_redis(down_seconds=1.0)  # streams, groups, caches, token state: all gone
    traffic.join()
    assert traffic.accepted, traffic.rejected
    settle(traffic.accepted, timeout=75)
    check_invariants(world, users, traffic)
    check_recovered(world)
    print("after a Redis restart:", statuses(traffic.accepted), "rejected:", traffic.rejected)


def test_postgres_restarted_mid_stream(world: World, users: list[User], stripe) -> None:
    make_pro(users[0], stripe)
    traffic = Traffic(users, prompts=5, content=lambda u, i: f"[sim:slow] q {u}.{i}").start()
    traffic.wait_accepted(6)
    wait_until(lambda: generating(world, traffic.accepted), 20, "a reply being generated")
    world.restart_postgres(down_seconds=2.0)
    traffic.join()
    assert traffic.accepted, traffic.rejected
    settle(traffic.accepted, timeout=75)
    check_invariants(world, users, traffic)
    check_recovered(world)
    print("after a Postgres restart:", statuses(traffic.accepted), "rejected:", traffic.rejected)


FAULTS = ["[sim:429x2]", "[sim:503x2]", "[sim:hang]", "[sim:safety]", ""]
EXPECTED = {
    "[sim:429x2]": {"completed"},
    "[sim:503x2]": {"completed"},
    "[sim:hang]": {"failed", "completed"},
    "[sim:safety]": {"blocked"},
    "": {"completed"},
}


def test_gemini_faults_under_load(world: World, users: list[User], gemini, stripe) -> None:
    make_pro(users[0], stripe)
    traffic = Traffic(
        users, prompts=len(FAULTS), interval=0.2, content=lambda u, i: f"{FAULTS[i]} q {u}.{i}"
    ).start()
    traffic.join()
    assert len(traffic.accepted) == len(users) * len(FAULTS), traffic.rejected
    settle(traffic.accepted, timeout=60)
    for item in traffic.accepted:
        marker = (
            next(f for f in FAULTS if f and item.content.startswith(f))
            if "[sim:" in item.content
            else ""
        )
        assert item.final["status"] in EXPECTED[marker], (item.content, item.final)
        if item.final["status"] in {"failed", "blocked"}:
            assert item.final["error"], item.final
    print("gemini faults:", statuses(traffic.accepted))
    check_invariants(world, users, traffic)

    # The 429s' RetryInfo (1 s) was honoured: no attempt came sooner after a 429.
    records = gemini.get("/_sim/requests").json()["requests"]
    for item in traffic.accepted:
        if not item.content.startswith("[sim:429x2]"):
            continue
        mine = sorted(
            (
                r
                for r in records
                if r["contents"] and r["contents"][-1]["parts"][0]["text"] == item.content
            ),
            key=lambda r: r["time"],
        )
        assert [r["status"] for r in mine] == [429, 429, 200], mine
        gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(mine)]
        assert all(gap >= 0.9 for gap in gaps), gaps
    check_recovered(world)


def test_webhook_storm(world: World, users: list[User], stripe) -> None:
    payers = users[:2]
    stripe.post("/_sim/hold", json={"hold": True}).raise_for_status()
    try:
        subscriptions = [payer.pay(stripe) for payer in payers]
        for sub in subscriptions:
            for step in ("renew", "fail_payment"):
                assert stripe.post(f"/_sim/subscriptions/{sub}/{step}").status_code == 200
            cancel = stripe.post(f"/_sim/subscriptions/{sub}/cancel", json={"at_period_end": True})
            assert cancel.status_code == 200
    finally:
        stripe.post("/_sim/hold", json={"hold": False}).raise_for_status()
    events = stripe.get("/_sim/events").json()["events"]
    ids = [
        e["id"]
        for e in events
        if any(sub in json.dumps(e["payload"]["data"]["object"]) for sub in subscriptions)
    ]
    assert len(ids) >= 12, ids
    random.Random(11).shuffle(ids)

    traffic = Traffic(users, prompts=4).start()  # prompts keep flowing through the storm

    def storm(eid: str) -> list[int | None]:
        response = stripe.post(f"/_sim/events/{eid}/deliver", json={"times": 3, "concurrent": True})
        assert response.status_code == 200, response.text
        return [attempt["status"] for attempt in response.json()["attempts"]]

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        answers = dict(zip(ids, pool.map(storm, ids), strict=True))
    # Every delivery, duplicates included, is acknowledged with a 2xx.
    assert all(
        len(codes) == 3 and all(200 <= (c or 0) < 300 for c in codes) for codes in answers.values()
    ), answers
    traffic.join()

    state = stripe.get("/_sim/state").json()["subscriptions"]
    for payer, sub in zip(payers, subscriptions, strict=True):
        truth = next(s for s in state if s["id"] == sub)
        end = truth["items"]["data"][0]["current_period_end"]

        def converged(payer: User = payer, truth: dict = truth, end: int = end) -> bool:
            status = payer.status()
            return (
                status["status"] == truth["status"]
                and status["cancelAtPeriodEnd"] == truth["cancel_at_period_end"]
                and int(datetime.fromisoformat(status["currentPeriodEnd"]).timestamp()) == end
            )

        wait_until(converged, 20, f"{sub}: the projection to equal the simulator's state")
        assert truth["status"] == "past_due" and truth["cancel_at_period_end"] is True
        # past_due within the grace period is still Pro; chat agrees with billing.
        wait_until(
            lambda payer=payer: payer.usage()["tier"] == payer.status()["tier"] == "PRO",
            20,
            "tier PRO in chat and billing",
        )

    rows = dict(
        world.sql(
            "SELECT id, count(*) FROM billing.stripe_events WHERE id = ANY(%s) GROUP BY 1", (ids,)
        )
    )
    assert rows == dict.fromkeys(ids, 1), rows
    wait_until(
        lambda: (
            world.sql(
                "SELECT count(*) FROM billing.stripe_events"
                " WHERE id = ANY(%s) AND processed_at IS NULL",
                (ids,),
            )[0][0]
            == 0
        ),
        20,
        "every stored event processed",
    )
    snapshots = world.sql(
        "SELECT event_id, count(*) FROM billing.subscription_snapshots WHERE event_id = ANY(%s)"
        " GROUP BY 1 HAVING count(*) > 1",
        (ids,),
    )
    assert snapshots == [], snapshots

    settle(traffic.accepted, timeout=40)
    check_invariants(world, users, traffic)
    check_recovered(world)
