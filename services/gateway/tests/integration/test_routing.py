"""Route matching through the whole gateway: 404/405 before authentication, path params."""

import httpx

from shared.tokens import token_state_key


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == ("fail" if status < 500 else "error")
    assert body["code"] == code
    assert response.headers["x-request-id"]
    return body


async def test_unknown_path_is_404_without_a_token(gateway, services) -> None:
    response = await gateway.get("/api/v1/nothing/here")
    body = assert_envelope(response, 404, "not_found")
    assert body["message"] == "Cannot find GET /api/v1/nothing/here"
    assert all(not fake.received for fake in services.values())


async def test_unknown_path_is_404_with_a_valid_or_a_bad_token(gateway, new_user) -> None:
    user = new_user()
    assert_envelope(await gateway.get("/api/v1/nothing", headers=user.headers), 404, "not_found")
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert_envelope(await gateway.post("/api/v1/chatroom/1/x", headers=bad), 404, "not_found")


async def test_wrong_method_is_405_with_allow(gateway, services) -> None:
    response = await gateway.put("/api/v1/chatroom/abc")
    body = assert_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert "PUT" in body["message"]
    assert not services["chat"].received


async def test_path_params_and_raw_query_reach_the_upstream(gateway, services, new_user) -> None:
    user = new_user()
    url = "/api/v1/chatroom/room%20one/message/r-1/stream?limit=5&cursor=a%2Fb&x=%7E"
    response = await gateway.get(url, headers=user.headers)
    assert response.status_code == 200
    assert services["chat"].received[-1].raw_path == url


async def test_trailing_slash_routes_and_forwards_without_it(gateway, services, new_user) -> None:
    user = new_user()
    response = await gateway.get("/api/v1/chatroom/?limit=2", headers=user.headers)
    assert response.status_code == 200
    assert services["chat"].received[-1].raw_path == "/api/v1/chatroom?limit=2"


async def test_public_route_is_forwarded_without_a_token(gateway, services) -> None:
    response = await gateway.post("/api/v1/auth/send-otp", json={"mobileNumber": "7373737373"})
    assert response.status_code == 201
    assert response.json()["data"]["service"] == "auth"
    received = services["auth"].received[-1]
    assert received.method == "POST"
    assert received.raw_path == "/api/v1/auth/send-otp"
    assert "authorization" not in received.headers
    assert services["auth"].token_state_calls == []


async def test_protected_route_forwards_the_authorization_header(
    gateway, services, new_user, redis
) -> None:
    user = new_user()
    response = await gateway.get("/api/v1/subscription/status", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["data"]["service"] == "billing"
    assert services["billing"].received[-1].headers["authorization"] == f"Bearer {user.token}"
    assert await redis.get(token_state_key(user.id)) == "0"
