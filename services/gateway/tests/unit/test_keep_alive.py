"""The gateway gives up an idle upstream connection before the service closes it: else a
request sent on a connection the service is closing fails with a 502 ("Can not write
request body"), seen under load."""

from __future__ import annotations

from gateway.proxy import upstream_session
from gateway.settings import Settings
from shared.cli import server_options


async def test_idle_upstream_connections_are_dropped_before_the_service_drops_them(
    jwt_secret: str,
):
    session = upstream_session(4)
    try:
        kept = session.connector._keepalive_timeout  # aiohttp has no public getter
        served = server_options(Settings(_env_file=None, jwt_secret=jwt_secret))[
            "timeout_keep_alive"
        ]
        assert 0 < kept < served
    finally:
        await session.close()
