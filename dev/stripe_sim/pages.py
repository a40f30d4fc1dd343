"""The hosted pages: Checkout and the customer portal, as plain HTML forms (no JavaScript)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from dev.stripe_sim.store import money, period

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a2e}
.banner{background:#fff3cd;border:1px solid #e0c060;padding:.5rem .75rem;border-radius:6px}
.card{border:1px solid #ddd;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:6px;border:0;color:#fff}
button{background:#635bff;cursor:pointer}
button.danger{background:#c0392b} button.plain{background:#555}
form{display:inline-block;margin:.25rem .5rem .25rem 0} a{color:#635bff}
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{escape(title)}"
        f"</title><style>{_STYLE}</style></head><body>"
        "<p class=banner>Stripe <b>simulator</b>: no real payment happens here.</p>"
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )


def _date(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def checkout_page(
    session: dict[str, Any],
    items: list[tuple[dict[str, Any], int]],
    pay_action: str,
    success_href: str | None,
) -> str:
    rows = "".join(
        f"<li>{quantity} × {escape(price['nickname'] or price['id'])}: "
        f"{money(price['unit_amount'], price['currency'])} / {price['recurring']['interval']}</li>"
        for price, quantity in items
    )
    total = money(session["amount_total"], session["currency"])
    interval = items[0][0]["recurring"]["interval"]
    if session["status"] == "complete":
        action = "<p>This session is already paid.</p>"
        if success_href:
            action += f"<p><a href='{escape(success_href)}'>Continue</a></p>"
    elif session["status"] == "expired":
        action = "<p>This session has expired.</p>"
    else:
        action = (
            f"<form method=post action='{escape(pay_action)}'>"
            f"<button type=submit>Pay {total} and subscribe</button></form>"
        )
        if session["cancel_url"]:
            action += f"<a href='{escape(session['cancel_url'])}'>Cancel</a>"
    who = session["customer_email"] or session["customer"] or "a new customer"
    return page(
        "Subscribe",
        f"<div class=card><ul>{rows}</ul><p><b>Total: {total} / {interval}</b></p>"
        f"<p>For {escape(str(who))}</p></div>{action}",
    )


def portal_page(portal: dict[str, Any], subscriptions: list[dict[str, Any]]) -> str:
    base = f"/portal/{escape(portal['id'])}/subscriptions"
    cards = []
    for sub in subscriptions:
        start, end = period(sub)
        price = sub["items"]["data"][0]["price"]
        lines = [
            f"<b>{escape(price['nickname'] or price['id'])}</b>: "
            f"{money(price['unit_amount'], price['currency'])} / {price['recurring']['interval']}",
            f"Status: <b>{escape(sub['status'])}</b>",
            f"Current period: {_date(start)} to {_date(end)}",
        ]
        action = f"{base}/{escape(sub['id'])}"
        forms = ""
        if sub["status"] == "canceled":
            lines.append(f"Ended {_date(sub['ended_at'])}")
        elif sub["cancel_at_period_end"]:
            lines.append(f"Cancels at the end of the period ({_date(end)})")
            forms = (
                f"<form method=post action='{action}/resume'>"
                "<button type=submit class=plain>Don't cancel</button></form>"
            )
        if sub["status"] != "canceled":
            if not sub["cancel_at_period_end"]:
                forms += (
                    f"<form method=post action='{action}/cancel'>"
                    "<input type=hidden name=at_period_end value=true>"
                    "<button type=submit class=plain>Cancel at period end</button></form>"
                )
            forms += (
                f"<form method=post action='{action}/cancel'>"
                "<input type=hidden name=at_period_end value=false>"
                "<button type=submit class=danger>Cancel now</button></form>"
            )
        cards.append(
            f"<div class=card id='{escape(sub['id'])}'><p>{'<br>'.join(lines)}</p>{forms}</div>"
        )
    body = "".join(cards) or "<p>No subscriptions.</p>"
    if portal["return_url"]:
        body += f"<p><a href='{escape(portal['return_url'])}'>Return</a></p>"
    return page("Your subscription", body)


def message_page(title: str, text: str) -> str:
    return page(title, f"<p>{escape(text)}</p>")
