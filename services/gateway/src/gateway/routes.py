"""The route table: every public route, the service behind it, whether it needs a JWT and
whether it streams (server-sent events).

Adding a route is one line in ``ROUTES``. A template's ``{param}`` matches one non-empty
path segment. A path that matches no template is a 404 (never a 401, token or not); a path
that matches with another method is a 405 with ``Allow``. A trailing slash is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import AppError, NotFound

PREFIX = "/api/v1"
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
# A parameter is one non-empty segment, and never "." or ".." (a path the gateway matched
# must not mean another path to anything behind it that resolves dot segments).
_SEGMENT = r"(?!\.\.?(?:/|$))[^/]+"


class MethodNotAllowed(AppError):
    status_code = 405
    code = "method_not_allowed"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    upstream: str
    requires_auth: bool
    # Server-sent events: forwarded through the stream pool (STREAM_POOL_SIZE), so open
    # streams never hold the connections ordinary requests need.
    stream: bool = False
    # The path holds a secret (a share link's token): logged and traced as the template.
    secret_path: bool = False


def public(method: str, path: str, upstream: str) -> Route:
    return Route(method, PREFIX + path, upstream, requires_auth=False)


def public_link(method: str, path: str, upstream: str) -> Route:
    """A route anyone holding the link may call: the path's token is the credential."""
    return Route(method, PREFIX + path, upstream, requires_auth=False, secret_path=True)


def protected(method: str, path: str, upstream: str) -> Route:
    return Route(method, PREFIX + path, upstream, requires_auth=True)


def protected_stream(method: str, path: str, upstream: str) -> Route:
    return Route(method, PREFIX + path, upstream, requires_auth=True, stream=True)


ROUTES: tuple[Route, ...] = (
    public("POST", "/auth/signup", "auth"),
    public("POST", "/auth/send-otp", "auth"),
    public("POST", "/auth/verify-otp", "auth"),
    public("POST", "/auth/login", "auth"),
    public("POST", "/auth/forgot-password", "auth"),
    public("POST", "/auth/reset-password", "auth"),
    protected("POST", "/auth/change-password", "auth"),
    protected("POST", "/auth/logout", "auth"),
    protected("GET", "/auth/me", "auth"),
    protected("GET", "/user/me", "auth"),
    protected("DELETE", "/user/me", "auth"),
    protected("POST", "/chatroom", "chat"),
    protected("GET", "/chatroom", "chat"),
    protected("GET", "/chatroom/{id}", "chat"),
    protected("PATCH", "/chatroom/{id}", "chat"),
    protected("DELETE", "/chatroom/{id}", "chat"),
    protected("PUT", "/chatroom/{id}/model", "chat"),
    protected("POST", "/chatroom/{id}/message", "chat"),
    protected("PUT", "/chatroom/{id}/message/{messageId}", "chat"),
    protected("PUT", "/chatroom/{id}/branch", "chat"),
    protected_stream("GET", "/chatroom/{id}/message/{replyId}/stream", "chat"),
    protected("POST", "/chatroom/{id}/message/{replyId}/stop", "chat"),
    protected("POST", "/chatroom/{id}/message/{replyId}/regenerate", "chat"),
    protected("POST", "/chatroom/{id}/share", "chat"),
    protected("DELETE", "/chatroom/{id}/share", "chat"),
    protected("GET", "/chatroom/{id}/export", "chat"),
    # Read by whoever holds the link; chat looks the token up by its hash.
    public_link("GET", "/shared/{token}", "chat"),
    protected("GET", "/usage", "chat"),
    protected("GET", "/search", "chat"),
    protected("GET", "/models", "chat"),
    protected("POST", "/subscribe/pro", "billing"),
    protected("GET", "/subscription/status", "billing"),
    protected("POST", "/subscription/portal", "billing"),
    # Authenticated by its Stripe-Signature header, which billing verifies over the raw body.
    public("POST", "/webhook/stripe", "billing"),
)


def _compile(template: str) -> re.Pattern[str]:
    return re.compile(_SEGMENT.join(re.escape(literal) for literal in _PARAM.split(template)))


def _normalize(path: str) -> str:
    """``/api/v1/chatroom/`` is ``/api/v1/chatroom``."""
    return path.rstrip("/") or "/"


class RouteTable:
    def __init__(self, routes: tuple[Route, ...]) -> None:
        by_template: dict[str, dict[str, Route]] = {}
        for route in routes:
            methods = by_template.setdefault(route.path, {})
            if route.method in methods:
                raise ValueError(f"duplicate route {route.method} {route.path}")
            methods[route.method] = route
        self._templates = [(_compile(path), methods) for path, methods in by_template.items()]

    def lookup(self, method: str, path: str) -> tuple[Route | None, list[str]]:
        """The route for ``method`` and ``path``, else None and the methods the path allows."""
        path = _normalize(path)
        allowed: list[str] = []
        for pattern, methods in self._templates:
            if pattern.fullmatch(path):
                route = methods.get(method)
                if route is not None:
                    return route, []
                allowed.extend(methods)
        return None, allowed

    def resolve(self, method: str, path: str) -> Route:
        """The route for ``method`` and ``path``; raises the 404 or 405 the client gets."""
        route, allowed = self.lookup(method, path)
        if route is not None:
            return route
        if allowed:
            raise MethodNotAllowed(
                f"Method {method} is not allowed on {path}",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise NotFound(f"Cannot find {method} {path}")


ROUTE_TABLE = RouteTable(ROUTES)
