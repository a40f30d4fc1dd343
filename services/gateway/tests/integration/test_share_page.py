"""The shared-chat page /s/{token}: rendered from chat's public snapshot route without a
token, every text escaped, under its own strict CSP, uncached; an unknown, revoked or
malformed link is a 404 page, chat down a 503 page."""

import pytest

from gateway.app import STATIC_DIR
from gateway.share_page import SHARE_CONTENT_SECURITY_POLICY

TOKEN = "q3V8fJx2L0bM7cR1tY9wN4sK6hD5gA0zE2uP8iO3lXy"
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def snapshot(title: str = "Yoga notes", content: str = "What is yoga?") -> dict:
    return {
        "status": "success",
        "data": {
            "share": {
                "title": title,
                "createdAt": "2026-12-01T09:00:00Z",
                "messages": [
                    {"role": "USER", "content": content, "createdAt": "2026-12-01T09:00:00Z"},
                    {
                        "role": "GEMINI",
                        "content": "**Yoga** is a practice.",
                        "createdAt": "2026-12-01T09:00:01Z",
                    },
                ],
            }
        },
    }


def assert_share_headers(response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == SHARE_CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert response.headers["x-request-id"]


async def test_the_page_shows_the_snapshot_without_a_token(gateway, services) -> None:
    chat = services["chat"]
    chat.canned[f"/api/v1/shared/{TOKEN}"] = (200, snapshot())
    response = await gateway.get(f"/s/{TOKEN}")
    assert response.status_code == 200
    assert_share_headers(response)
    assert "<h1>Yoga notes</h1>" in response.text
    assert '<div class="bubble">What is yoga?</div>' in response.text
    assert "**Yoga** is a practice." in response.text  # share.js renders the Markdown
    assert '<script type="module" src="/static/share.js"></script>' in response.text
    [asked] = chat.received
    assert (asked.method, asked.raw_path) == ("GET", f"/api/v1/shared/{TOKEN}")
    assert "authorization" not in {name.lower() for name in asked.headers}


async def test_every_text_on_the_page_is_escaped(gateway, services) -> None:
    services["chat"].canned[f"/api/v1/shared/{TOKEN}"] = (200, snapshot(HOSTILE, HOSTILE))
    response = await gateway.get(f"/s/{TOKEN}")
    assert response.status_code == 200
    assert "<script>alert" not in response.text
    assert "<img" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert response.text.count("<script") == 1  # share.js only


async def test_an_unknown_or_revoked_link_is_a_404_page(gateway, services) -> None:
    gone = {"status": "fail", "message": "gone", "code": "share_not_found"}
    services["chat"].canned[f"/api/v1/shared/{TOKEN}"] = (404, gone)
    response = await gateway.get(f"/s/{TOKEN}")
    assert response.status_code == 404
    assert_share_headers(response)
    assert "This link doesn&#x27;t work" in response.text


@pytest.mark.parametrize("token", ["a.b", "x" * 65, "%3Cscript%3E"])
async def test_a_malformed_link_is_a_404_page_without_asking_chat(gateway, services, token) -> None:
    response = await gateway.get(f"/s/{token}")
    assert response.status_code == 404
    assert_share_headers(response)
    assert not services["chat"].received


async def test_chat_down_is_a_503_page(gateway_factory, dead_url) -> None:
    async with gateway_factory(chat_url=dead_url) as gateway:
        response = await gateway.get(f"/s/{TOKEN}")
    assert response.status_code == 503
    assert_share_headers(response)


async def test_the_pages_csp_allows_only_its_own_script_and_no_requests(gateway) -> None:
    directives = dict(d.strip().split(" ", 1) for d in SHARE_CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    for name in ("share.js", "share.css"):
        served = await gateway.get(f"/static/{name}")
        assert served.status_code == 200
        assert served.content == (STATIC_DIR / name).read_bytes()


async def test_the_snapshot_route_is_public_and_the_share_routes_need_a_token(
    gateway, services
) -> None:
    public = await gateway.get(f"/api/v1/shared/{TOKEN}")
    assert public.status_code == 200
    for method, path in [
        ("POST", "/api/v1/chatroom/r1/share"),
        ("DELETE", "/api/v1/chatroom/r1/share"),
        ("GET", "/api/v1/chatroom/r1/export?format=md"),
    ]:
        response = await gateway.request(method, path)
        assert response.status_code == 401, path
    assert [r.raw_path for r in services["chat"].received] == [f"/api/v1/shared/{TOKEN}"]
