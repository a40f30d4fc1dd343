"""``/s/{token}``: the read-only page of a shared chat, for anyone holding the link.

The gateway reads the snapshot from chat's public route (``GET /api/v1/shared/{token}``)
and renders it here, every text escaped, so an unknown or revoked link is a real 404 and
the page needs no script to be read; ``share.js`` then renders the replies' Markdown as
DOM nodes (``markdown.js``, text as text). The page has its own Content-Security-Policy:
only the gateway's own script and styles, and no requests at all. No Referer leaves it
and no cache or search engine keeps it. It shows the title, the turns and their times:
no user, phone number or id.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from html import escape
from typing import Any

import aiohttp
import structlog
from asgi_correlation_id.context import correlation_id
from fastapi import Request
from starlette.responses import HTMLResponse

from shared.http import redact_path

log = structlog.get_logger(__name__)

SHARE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SHARE_HEADERS = {
    "Content-Security-Policy": SHARE_CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}
# A token as chat makes them, with room to spare; anything else is not looked up.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <meta name="robots" content="noindex, nofollow">
  <title>{title} - Gemini</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/app.css">
  <link rel="stylesheet" href="/static/share.css">
  <script type="module" src="/static/share.js"></script>
</head>
<body>
  <main class="shared column">
    <header class="shared-head">
      <p class="brand">Gemini</p>
      <h1>{heading}</h1>
      <p class="shared-lead">{lead}</p>
    </header>
{body}
  </main>
</body>
</html>
"""


def _turn(message: dict[str, Any]) -> str:
    text = escape(str(message["content"]))
    if message["role"] == "USER":
        return f'      <div class="msg user"><div class="bubble">{text}</div></div>'
    return (
        '      <article class="msg model" aria-label="Gemini"><div class="msg-body">'
        f'<div class="md shared-text">{text}</div></div></article>'
    )


def render_snapshot(snapshot: dict[str, Any]) -> str:
    """The page of a snapshot (``data.share`` of chat's answer), every value escaped."""
    title = escape(str(snapshot["title"]))
    created = datetime.fromisoformat(str(snapshot["createdAt"]).replace("Z", "+00:00"))
    lead = (
        f'A shared chat, as it was on <time datetime="{escape(created.isoformat())}">'
        f"{created:%d %B %Y, %H:%M} UTC</time>. Read-only: later messages are not in it."
    )
    turns = "\n".join(_turn(m) for m in snapshot["messages"])
    body = f'    <div class="messages" role="log" aria-label="Messages">\n{turns}\n    </div>'
    return _PAGE.format(title=title, heading=title, lead=lead, body=body)


def render_message(status: int, heading: str, lead: str) -> HTMLResponse:
    page = _PAGE.format(title=escape(heading), heading=escape(heading), lead=escape(lead), body="")
    return HTMLResponse(page, status_code=status, headers=SHARE_HEADERS)


def not_found() -> HTMLResponse:
    return render_message(
        404,
        "This link doesn't work",
        "The chat it pointed to was unshared or deleted, or the link is not complete.",
    )


async def share_page(request: Request) -> HTMLResponse:
    redact_path(request.scope, "/s/{token}")
    token = request.path_params["token"]
    if not _TOKEN.fullmatch(token):
        return not_found()
    state = request.app.state
    chat_url = state.proxy.urls.get("chat")
    if chat_url is None:
        return render_message(503, "Unavailable", "Shared chats cannot be read right now.")
    request_id = correlation_id.get()
    headers = {"X-Request-ID": request_id} if request_id else {}
    try:
        async with asyncio.timeout(state.settings.upstream_timeout_seconds):
            async with state.session.get(
                f"{chat_url}/api/v1/shared/{token}", headers=headers, timeout=state.proxy.timeout
            ) as resp:
                status = resp.status
                body = await resp.json(content_type=None) if status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        log.warning("share_page.upstream_error", error=repr(exc))
        body, status = None, 503
    if status == 404:
        return not_found()
    if body is None:
        return render_message(503, "Unavailable", "Shared chats cannot be read right now.")
    return HTMLResponse(render_snapshot(body["data"]["share"]), headers=SHARE_HEADERS)
