import pytest

from gateway.routes import ROUTE_TABLE, ROUTES, MethodNotAllowed, Route, RouteTable, protected
from gateway.settings import KNOWN_UPSTREAMS
from shared.errors import NotFound


@pytest.mark.parametrize(
    ("method", "path", "upstream", "requires_auth"),
    [
        ("POST", "/api/v1/auth/signup", "auth", False),
        ("POST", "/api/v1/auth/verify-otp", "auth", False),
        ("POST", "/api/v1/auth/logout", "auth", True),
        ("GET", "/api/v1/user/me", "auth", True),
        ("GET", "/api/v1/chatroom", "chat", True),
        ("DELETE", "/api/v1/chatroom/3f2a", "chat", True),
        ("POST", "/api/v1/chatroom/3f2a/message", "chat", True),
        ("GET", "/api/v1/chatroom/3f2a/message/r-9/stream", "chat", True),
        ("GET", "/api/v1/usage", "chat", True),
        ("POST", "/api/v1/subscribe/pro", "billing", True),
        ("POST", "/api/v1/webhook/stripe", "billing", False),
    ],
)
def test_routes_resolve_to_their_upstream_and_auth_requirement(
    method: str, path: str, upstream: str, requires_auth: bool
) -> None:
    route = ROUTE_TABLE.resolve(method, path)
    assert (route.upstream, route.requires_auth) == (upstream, requires_auth)


def test_dots_inside_a_parameter_are_fine() -> None:
    assert ROUTE_TABLE.resolve("GET", "/api/v1/chatroom/a.b").path == "/api/v1/chatroom/{id}"
    assert ROUTE_TABLE.resolve("GET", "/api/v1/chatroom/...").path == "/api/v1/chatroom/{id}"


def test_trailing_slash_is_ignored() -> None:
    assert ROUTE_TABLE.resolve("GET", "/api/v1/chatroom/").path == "/api/v1/chatroom"
    assert ROUTE_TABLE.resolve("GET", "/api/v1/chatroom/7/").path == "/api/v1/chatroom/{id}"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/v1/chatroom//message",  # a parameter is one non-empty segment
        "/api/v1/chatroom/a/b",
        "/api/v1/chatroom/1/message/2/stream/extra",
        "/api/v2/chatroom",
        "/api/v1/auth/signupx",
        "/api/v1/chatroom/..",  # nor a dot segment
        "/api/v1/chatroom/x/message/../stream",
        "/api/v1/chatroom/./message",
        "/internal/users/1/token-state",  # auth's internal route is never public
        "/",
    ],
)
def test_unknown_paths_are_404(path: str) -> None:
    with pytest.raises(NotFound) as info:
        ROUTE_TABLE.resolve("GET", path)
    assert info.value.message == f"Cannot find GET {path}"


def test_known_path_with_other_method_is_405_listing_allowed_methods() -> None:
    with pytest.raises(MethodNotAllowed) as info:
        ROUTE_TABLE.resolve("PUT", "/api/v1/chatroom/42")
    assert info.value.status_code == 405
    assert info.value.headers == {"Allow": "DELETE, GET, PATCH"}


def test_head_is_not_routed() -> None:
    with pytest.raises(MethodNotAllowed) as info:
        ROUTE_TABLE.resolve("HEAD", "/api/v1/usage")
    assert info.value.headers == {"Allow": "GET"}


def test_regex_characters_in_templates_are_literal() -> None:
    table = RouteTable((protected("GET", "/a.b/{x}", "chat"),))
    assert table.lookup("GET", "/api/v1/a.b/1")[0] is not None
    assert table.lookup("GET", "/api/v1/aXb/1") == (None, [])


def test_table_rejects_duplicate_routes() -> None:
    with pytest.raises(ValueError, match="duplicate route"):
        RouteTable((protected("GET", "/usage", "chat"), protected("GET", "/usage", "billing")))


def test_every_route_names_a_known_upstream() -> None:
    assert {route.upstream for route in ROUTES} == set(KNOWN_UPSTREAMS)
    assert all(isinstance(route, Route) and route.path.startswith("/api/v1/") for route in ROUTES)


def test_only_the_reply_stream_goes_through_the_stream_pool() -> None:
    streams = [(route.method, route.path) for route in ROUTES if route.stream]
    assert streams == [("GET", "/api/v1/chatroom/{id}/message/{replyId}/stream")]
