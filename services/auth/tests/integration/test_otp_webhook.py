"""OTP delivery through an SMS gateway webhook (a stand-in provider on a real socket)."""

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from shared.testing.fixtures import random_mobile_number


async def new_user(client) -> str:
    number = random_mobile_number()
    assert (
        await client.post("/api/v1/auth/signup", json={"mobileNumber": number})
    ).status_code == 201
    return number


async def send(client, number: str):
    return await client.post("/api/v1/auth/send-otp", json={"mobileNumber": number})


class SmsGateway:
    """A stand-in SMS provider on a real socket that records what it was asked to send."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.fail = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.json_response({"error": "down"}, status=502)
        self.messages.append(json.loads(await request.text()))
        return web.json_response({"ok": True})


@pytest.fixture
async def sms_gateway() -> AsyncIterator[tuple[SmsGateway, str]]:
    gateway = SmsGateway()
    app = web.Application()
    app.router.add_post("/sms", gateway.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield gateway, f"http://127.0.0.1:{port}/sms"
    finally:
        await runner.cleanup()


@pytest.fixture
def settings_overrides(sms_gateway):
    return {"otp_delivery": "webhook", "otp_webhook_url": sms_gateway[1]}


async def test_webhook_delivery_posts_the_code(client, sms_gateway, auth_database_url):
    gateway, _ = sms_gateway
    number = await new_user(client)
    response = await send(client, number)
    assert response.status_code == 200
    assert "otp" not in response.json()
    [message] = gateway.messages
    assert message["to"] == number
    code = message["message"].split()[0]
    verified = await client.post(
        "/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": code}
    )
    assert verified.status_code == 200


async def test_failed_webhook_delivery_keeps_the_previous_code(client, sms_gateway):
    gateway, _ = sms_gateway
    number = await new_user(client)
    assert (await send(client, number)).status_code == 200
    first_code = gateway.messages[0]["message"].split()[0]
    gateway.fail = True
    failed = await send(client, number)
    assert failed.status_code == 503
    assert failed.json()["code"] == "otp_delivery_failed"
    verified = await client.post(
        "/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": first_code}
    )
    assert verified.status_code == 200


async def test_webhook_credentials_never_reach_the_log(auth_settings, sms_gateway):
    """The SMS gateway's URL may carry its credentials (user info, a key in the query)."""
    from structlog.testing import capture_logs

    from auth.app import create_app
    from shared.testing.asgi import app_client

    gateway, url = sms_gateway
    secret_url = url.replace("http://", "http://sms-user:pa55-s3cret@") + "?api_key=k3y-s3cret"
    settings = auth_settings.model_copy(update={"otp_webhook_url": secret_url})
    gateway.fail = True
    with capture_logs() as logs:
        async with app_client(create_app(settings)) as client:
            number = await new_user(client)
            assert (await send(client, number)).status_code == 503
    failures = [line for line in logs if line["event"] == "otp.webhook_failed"]
    assert failures, logs
    assert failures[0]["webhook"] == url
    text = json.dumps(logs, default=str)
    assert "pa55-s3cret" not in text
    assert "k3y-s3cret" not in text
    assert number not in text  # numbers are masked too
