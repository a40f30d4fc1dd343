"""What reaches the upstream and what comes back: bodies, headers, errors, timeouts."""

WEBHOOK_BODY = b'{"id": "evt_1",\n  "type": "invoice.paid", "amount": 1.50}\r\n\t \xff'


async def test_webhook_body_and_signature_reach_billing_byte_for_byte(gateway, services) -> None:
    headers = {
        "Stripe-Signature": "t=1700000000,v1=5257a869e7,v0=6ffbb59b2300aa",
        "Content-Type": "application/json; charset=utf-8",
    }
    response = await gateway.post("/api/v1/webhook/stripe", content=WEBHOOK_BODY, headers=headers)
    assert response.status_code == 201
    received = services["billing"].received[-1]
    assert received.body == WEBHOOK_BODY
    assert received.headers["stripe-signature"] == headers["Stripe-Signature"]
    assert received.headers["content-type"] == headers["Content-Type"]
    assert received.headers["content-length"] == str(len(WEBHOOK_BODY))
    assert "authorization" not in received.headers


async def test_client_request_id_is_kept_sent_upstream_and_returned_once(
    gateway, services, new_user
) -> None:
    user = new_user()
    headers = {**user.headers, "X-Request-ID": "client-chose-this-1"}
    response = await gateway.get("/api/v1/usage", headers=headers)
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == ["client-chose-this-1"]
    assert services["chat"].received[-1].headers.getall("x-request-id") == ["client-chose-this-1"]


async def test_generated_request_id_is_sent_upstream_and_returned(gateway, services) -> None:
    response = await gateway.post(
        "/api/v1/auth/login", json={}, headers={"X-Request-ID": "bad id!"}
    )
    request_ids = response.headers.get_list("x-request-id")
    assert len(request_ids) == 1
    assert request_ids[0] not in ("bad id!", "set-by-the-upstream")
    assert services["auth"].received[-1].headers.getall("x-request-id") == request_ids


async def test_forwarding_headers_are_set_and_spoofable_ones_stripped(gateway, services) -> None:
    await gateway.post(
        "/api/v1/auth/signup",
        json={"mobileNumber": "7373737373"},
        headers={
            "X-Forwarded-For": "198.51.100.1",
            "X-Forwarded-Host": "evil.example",
            "X-User-Id": "someone-else",
            "Connection": "keep-alive, X-Client-Hop",
            "X-Client-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Upgrade": "h2c",
            "Proxy-Authorization": "Basic eDp5",
            "X-Custom": "kept",
        },
    )
    received = services["auth"].received[-1].headers
    assert received.getall("x-forwarded-for") == ["203.0.113.7"]
    assert received["x-forwarded-proto"] == "http"
    assert received["x-forwarded-host"] == "testserver"
    assert received["x-custom"] == "kept"
    for name in ("x-user-id", "x-client-hop", "keep-alive", "te", "upgrade", "proxy-authorization"):
        assert name not in received, name
    assert received.get("connection", "keep-alive") == "keep-alive"  # aiohttp's own, not ours


async def test_response_hop_by_hop_headers_are_dropped_and_cookies_kept(gateway, services) -> None:
    response = await gateway.post("/api/v1/auth/login", json={}, headers={"X-Fake": "hop"})
    assert response.status_code == 201
    for name in (
        "keep-alive",
        "proxy-authenticate",
        "x-upstream-hop",
        "access-control-allow-origin",
    ):
        assert name not in response.headers, name
    assert response.headers["x-kept"] == "yes"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers.get_list("x-request-id") != ["set-by-the-upstream"]
    assert response.json()["data"]["service"] == "auth"


async def test_oversized_body_is_413_and_not_forwarded(gateway_factory, services) -> None:
    async with gateway_factory(max_body_bytes=2048) as gateway:
        response = await gateway.post("/api/v1/webhook/stripe", content=b"x" * 2049)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert response.headers["x-request-id"]
    assert not services["billing"].received


async def test_upstream_down_is_503_envelope_with_request_id(
    gateway_factory, new_user, dead_url
) -> None:
    user = new_user()
    async with gateway_factory(chat_url=dead_url) as gateway:
        response = await gateway.get("/api/v1/chatroom", headers=user.headers)
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "code": "service_unavailable",
        "message": "The chat service is unavailable. Try again shortly.",
    }
    assert response.headers["x-request-id"]
    assert response.headers["retry-after"] == "2"


async def test_upstream_not_deployed_is_503_and_not_called(
    gateway_factory, services, new_user
) -> None:
    user = new_user()
    async with gateway_factory(gateway_upstreams="auth,billing") as gateway:
        response = await gateway.get("/api/v1/chatroom", headers=user.headers)
        assert (
            await gateway.get("/api/v1/subscription/status", headers=user.headers)
        ).status_code == 200
    assert response.status_code == 503
    assert response.json()["message"] == "The chat service is unavailable. Try again shortly."
    assert not services["chat"].received


async def test_slow_upstream_is_504(gateway_factory, services) -> None:
    async with gateway_factory(upstream_timeout_seconds=0.2) as gateway:
        response = await gateway.post("/api/v1/auth/login", json={}, headers={"X-Fake": "slow"})
    assert response.status_code == 504
    assert response.json()["code"] == "gateway_timeout"
    assert response.json()["status"] == "error"
    assert response.headers["x-request-id"]


async def test_upstream_status_headers_and_body_pass_through(gateway, services, new_user) -> None:
    user = new_user()
    headers = {**user.headers, "X-Fake-Status": "409"}
    response = await gateway.post("/api/v1/subscribe/pro", headers=headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["data"] == {"service": "billing", "path": "/api/v1/subscribe/pro"}
