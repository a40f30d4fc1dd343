"""No service speaks WebSocket (replies stream over SSE): a request asking to upgrade is
answered as the plain HTTP request it also is, never switched to another protocol, by the
gateway and by a service behind it alike (shared.cli.server_options: ``ws="none"``)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from dev.stack import Stack

pytestmark = pytest.mark.e2e

UPGRADE = (
    "GET /healthz HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "\r\n"
)


async def status_line(base_url: str) -> str:
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(UPGRADE.format(host=url.netloc).encode())
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
    finally:
        writer.close()


@pytest.mark.parametrize("service", ["gateway", "chat"])
async def test_a_websocket_upgrade_is_served_as_plain_http(stack: Stack, service: str) -> None:
    # With a WebSocket protocol loaded, uvicorn hands the app a websocket scope instead,
    # which no route takes: 403, and 101 for any route that would.
    assert await status_line(stack.url(service)) == "HTTP/1.1 200 OK"
