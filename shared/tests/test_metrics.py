"""/metrics: counted by route template, read only from private networks, gauges read from
Redis and Postgres when scraped."""

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from shared.consumer import StreamConsumer
from shared.http import create_app
from shared.redis import open_redis
from shared.testing.asgi import app_client


def make_app() -> FastAPI:
    app = create_app(title="t", max_body_bytes=1024, readiness_details=False)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict:
        return {"id": item_id}

    return app


def samples(text: str, name: str) -> dict[tuple, float]:
    """``name``'s samples as {sorted labels: value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def count(text: str, name: str, **labels: str) -> float:
    return samples(text, name).get(tuple(sorted(labels.items())), 0.0)


async def test_requests_are_counted_by_route_template_never_the_raw_path():
    async with app_client(make_app(), client_ip="10.1.2.3") as client:
        before = (await client.get("/metrics")).text
        tag = uuid.uuid4().hex
        for _ in range(2):
            assert (await client.get(f"/items/{tag}")).status_code == 200
        assert (await client.get(f"/nothing/{tag}")).status_code == 404
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert tag not in text  # no raw path, ever
    route = {"route": "/items/{item_id}", "method": "GET", "status": "200"}
    assert (
        count(text, "http_requests_total", **route) - count(before, "http_requests_total", **route)
        == 2
    )
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert count(text, "http_requests_total", **unmatched) >= 1
    duration = count(
        text, "http_request_duration_seconds_count", route="/items/{item_id}", method="GET"
    )
    assert duration >= 2
    # The scrape itself and the probes are not counted.
    assert not any(("route", "/metrics") in key for key in samples(text, "http_requests_total"))


@pytest.mark.parametrize("peer", ["203.0.113.7", "8.8.8.8", "2001:db8::1"])
async def test_metrics_are_refused_to_a_public_address(peer):
    async with app_client(make_app(), client_ip=peer) as client:
        response = await client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert "http_requests_total" not in response.text


async def test_a_scrape_reads_the_groups_lag_pending_and_dead_letters(redis_url):
    redis = open_redis(redis_url)
    stream = f"test-metrics-{uuid.uuid4().hex[:8]}"
    try:

        async def process(envelope, event, stream):  # never called: nothing is decodable
            raise AssertionError

        consumer = StreamConsumer(
            redis, streams=[stream], group="g1", name="c1", process=process, types={"X"}
        )
        await consumer.ensure_groups()
        for _ in range(3):
            await redis.xadd(stream, {"type": "X", "envelope": "not json"})
        async with asyncio.timeout(10):
            await consumer.drain()  # all three undecodable: each is dead-lettered
        await redis.xadd(stream, {"type": "X", "envelope": "later"})  # unread: lag 1
        await consumer.collect_metrics()
        async with app_client(make_app(), client_ip="127.0.0.1") as client:
            text = (await client.get("/metrics")).text
        assert count(text, "stream_group_lag", stream=stream, group="g1") == 1
        assert count(text, "stream_group_pending", stream=stream, group="g1") == 0
        assert count(text, "stream_dead_letters", stream=stream) == 3
        assert count(text, "stream_dead_lettered_total", stream=stream, group="g1") == 3
    finally:
        await redis.delete(stream, f"{stream}.dlq")
        await redis.aclose()
