"""The Postman collection and environment in ``postman/``, written by this file.

    python -m dev.postman      # writes postman/*.json after a change here

The requests follow one user from sign-up to log-out, then the error cases; their test
scripts assert the status and what they capture, and the collection's own test script
checks every response of the API against the OpenAPI document of the stack it runs
against (fetched once per run), so a schema change never needs an edit here.
tests/e2e/test_postman.py checks that the committed files are what this writes, that the
OpenAPI document has no operation without a request, and runs them with newman.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

POSTMAN_DIR = Path(__file__).resolve().parent.parent / "postman"
COLLECTION_FILE = POSTMAN_DIR / "gemini-backend.postman_collection.json"
ENVIRONMENT_FILE = POSTMAN_DIR / "gemini-backend.postman_environment.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
ENVIRONMENT_NAME = "Gemini Backend (local)"
API = "/api/v1"

Item = dict[str, Any]


def js(source: str) -> list[str]:
    """A script as Postman stores it: one string per line."""
    return textwrap.dedent(source).strip("\n").splitlines()


def event(listen: str, source: str) -> Item:
    return {"listen": listen, "script": {"type": "text/javascript", "exec": js(source)}}


def bearer(variable: str) -> Item:
    return {"type": "bearer", "bearer": [{"key": "token", "value": f"{{{{{variable}}}}}"}]}


def request(
    name: str,
    method: str,
    path: str,
    *,
    status: int | None,
    body: dict[str, Any] | None = None,
    test: str = "",
    pre: str = "",
    token: str | None = "token",
    headers: dict[str, str] | None = None,
    follow_redirects: bool = True,
    doc: str = "",
) -> Item:
    """A request to ``{{baseUrl}}`` + ``path`` (or to ``path`` itself when it starts with
    a variable, as the Stripe simulator's page does). ``status``: the one expected, asserted
    before ``test`` runs; None when ``test`` decides. ``token``: the variable holding the
    bearer token, None for no Authorization header."""
    path, _, query = path.partition("?")
    host, segments = ("{{baseUrl}}", path) if path.startswith("/") else path.split("/", 1)
    url: Item = {"raw": host + "/" + segments.strip("/"), "host": [host]}
    url["path"] = segments.strip("/").split("/")
    if query:
        url["raw"] += "?" + query
        url["query"] = [
            dict(zip(("key", "value"), p.split("="), strict=True)) for p in query.split("&")
        ]
    req: Item = {"method": method, "header": [], "url": url}
    if doc:
        req["description"] = doc
    for key, value in (headers or {}).items():
        req["header"].append({"key": key, "value": value})
    if body is not None:
        req["header"].append({"key": "Content-Type", "value": "application/json"})
        req["body"] = {
            "mode": "raw",
            "raw": json.dumps(body, indent=2),
            "options": {"raw": {"language": "json"}},
        }
    if token is None:
        req["auth"] = {"type": "noauth"}
    elif token != "token":  # the collection's own auth is {{token}}
        req["auth"] = bearer(token)
    if status is not None:
        check = f"pm.test('{status}', () => pm.response.to.have.status({status}));"
        test = check + "\n" + textwrap.dedent(test).strip("\n")
    item: Item = {"name": name, "event": [], "request": req}
    if pre:
        item["event"].append(event("prerequest", pre))
    if test.strip():
        item["event"].append(event("test", test))
    if not follow_redirects:
        item["protocolProfileBehavior"] = {"followRedirects": False}
    return item


def folder(name: str, doc: str, *items: Item) -> Item:
    return {"name": name, "description": doc, "item": list(items)}


def poll(what: str, until: str, then: str, setup: str = "") -> str:
    """A test script that sends its request again, every 250 ms for at most 10 s, until
    the expression ``until`` holds; then asserts it (as ``what``) and runs ``then``."""
    setup, then = textwrap.dedent(setup).strip("\n"), textwrap.dedent(then).strip("\n")
    return f"""
{setup}
const pollKey = 'polls of ' + pm.info.requestName;
const polls = (pm.variables.get(pollKey) || 0) + 1;
if (!({until}) && polls < 40) {{
    pm.variables.set(pollKey, polls);
    setTimeout(() => {{}}, 250);
    pm.execution.setNextRequest(pm.info.requestName);
}} else {{
    pm.variables.set(pollKey, 0);
    pm.test(`{what} (request ${{polls}})`, () => pm.expect({until}).to.be.true);
{textwrap.indent(then, "    ")}
}}"""


def expect_error(code: str) -> str:
    return f"pm.test('code {code}', () => pm.expect(pm.response.json().code).to.equal('{code}'));"


# Before every request: a clear error without baseUrl, and the OpenAPI document of the stack
# (once per run, in a run-scoped variable) for the checks after every request.
COLLECTION_PRE = r"""
if (!pm.variables.get('baseUrl')) {
    pm.execution.setNextRequest(null);
    throw new Error('baseUrl is not set: select the environment "Gemini Backend (local)", '
        + 'or set baseUrl to the gateway (http://localhost:8000 for make run).');
}
if (!pm.variables.get('openapi')) {
    pm.sendRequest(pm.variables.get('baseUrl') + '/openapi.json', (err, res) => {
        pm.test('GET /openapi.json', () => {
            pm.expect(err).to.equal(null);
            pm.expect(res.code).to.equal(200);
        });
        if (!err && res.code === 200) pm.variables.set('openapi', res.text());
    });
}
"""

# After every request to the API (not to the Stripe simulator's page): a request id, a
# status the OpenAPI document lists for the operation, a body of a media type it lists, and
# a JSON body matching its schema.
COLLECTION_TEST = r"""
const url = pm.variables.replaceIn(pm.request.url.toString());
if (url.startsWith(pm.variables.get('baseUrl'))) {
    pm.test('X-Request-ID', () => pm.response.to.have.header('X-Request-ID'));
    const doc = JSON.parse(pm.variables.get('openapi') || '{"paths": {}}');
    const method = pm.request.method.toLowerCase();
    const path = url.slice(pm.variables.get('baseUrl').length).split('?')[0];
    const template = Object.keys(doc.paths).find((t) => doc.paths[t][method]
        && new RegExp('^' + t.replace(/{[^}]+}/g, '[^/]+') + '$').test(path));
    const operation = `${method.toUpperCase()} ${template || path}`;
    const code = String(pm.response.code);
    const documented = template && doc.paths[template][method].responses[code];
    pm.test(`${operation}: ${code} is in the OpenAPI document`,
        () => pm.expect(documented).to.be.an('object'));
    // The body's own media type (export answers Markdown or JSON) must be documented.
    const media = (pm.response.headers.get('Content-Type') || '').split(';')[0].trim();
    if (documented?.content) {
        pm.test(`${operation}: ${media} is documented for ${code}`,
            () => pm.expect(documented.content).to.have.property(media));
    }
    const schema = media === 'application/json' && documented?.content?.[media]?.schema;
    if (schema) {
        pm.test(`${operation}: the body matches the OpenAPI schema of ${code}`,
            () => pm.response.to.have.jsonSchema({ ...schema, components: doc.components }));
    }
}
"""

RANDOM_NUMBER = "'+919' + String(Math.floor(Math.random() * 1e9)).padStart(9, '0')"

VARIABLES = {
    # Chosen by the run (a new number each time, so the collection can run again).
    "mobileNumber": "",
    "otherMobileNumber": "",
    "password": "correct horse battery",
    "newPassword": "second horse battery",
    "resetPassword": "third horse battery",
    # Captured from responses.
    "userId": "",
    "otp": "",
    "token": "",
    "oldToken": "",
    "chatroomId": "",
    "scratchChatroomId": "",
    "promptId": "",
    "replyId": "",
    "shareToken": "",
    "promptsLeft": "",
    "checkoutUrl": "",
    "checkoutSessionId": "",
    "resetCode": "",
    "otherOtp": "",
    "otherToken": "",
}

FINAL = "['completed', 'failed', 'blocked', 'cancelled']"


def health() -> Item:
    return folder(
        "0 Health",
        "Liveness and readiness of the gateway (and, for readiness, of what it needs).",
        request("Liveness", "GET", "/healthz", status=200, token=None),
        request("Readiness", "GET", "/readyz", status=200, token=None),
    )


def sign_up() -> Item:
    number = {"mobileNumber": "{{mobileNumber}}"}
    return folder(
        "1 Sign up and log in",
        "A new number, a one-time code (returned by the API in development:"
        " `OTP_DELIVERY=response`), a token.",
        request(
            "Sign up",
            "POST",
            f"{API}/auth/signup",
            status=201,
            token=None,
            body=number | {"password": "{{password}}"},
            pre=f"pm.collectionVariables.set('mobileNumber', {RANDOM_NUMBER});",
            test="""
            const body = pm.response.json();
            pm.collectionVariables.set('userId', body.userId);
            pm.test('the number in E.164', () => pm.expect(body.mobileNumber)
                .to.equal(pm.collectionVariables.get('mobileNumber')));
            """,
            doc="The password stays pending until a code proves the number (verify-otp).",
        ),
        request(
            "Send a login code",
            "POST",
            f"{API}/auth/send-otp",
            status=200,
            token=None,
            body=number,
            test="""
            const otp = pm.response.json().otp;
            pm.test('the code is in the response (development only)',
                () => pm.expect(otp).to.match(/^\\d{6}$/));
            pm.collectionVariables.set('otp', otp);
            """,
        ),
        request(
            "Verify the code: a token",
            "POST",
            f"{API}/auth/verify-otp",
            status=200,
            token=None,
            body=number | {"otp": "{{otp}}", "password": "{{password}}"},
            test="""
            const body = pm.response.json();
            pm.test('a bearer token', () => pm.expect(body.data.token).to.equal(body.token));
            pm.collectionVariables.set('token', body.token);
            """,
            doc="`password` confirms the one chosen at sign-up: it can log in from now on.",
        ),
        request(
            "Me",
            "GET",
            f"{API}/auth/me",
            status=200,
            test="""
            const user = pm.response.json().data.user;
            pm.test('this user', () => pm.expect(user.id)
                .to.equal(pm.collectionVariables.get('userId')));
            pm.test('on Basic', () => pm.expect(user.currentSubscription.tier).to.equal('BASIC'));
            """,
        ),
    )


def chatrooms() -> Item:
    room = f"{API}/chatroom/{{{{chatroomId}}}}"
    scratch = f"{API}/chatroom/{{{{scratchChatroomId}}}}"
    return folder(
        "2 Chatrooms",
        "Create, list, open and rename a chatroom; create and delete another.",
        request(
            "Create a chatroom",
            "POST",
            f"{API}/chatroom",
            status=201,
            body={"name": "Postman run"},
            test="""
            const chatroom = pm.response.json().data.chatroom;
            pm.test('named', () => pm.expect(chatroom.name).to.equal('Postman run'));
            pm.collectionVariables.set('chatroomId', chatroom.id);
            """,
        ),
        request(
            "List chatrooms",
            "GET",
            f"{API}/chatroom?limit=20",
            status=200,
            test="""
            const ids = pm.response.json().data.chatrooms.map((c) => c.id);
            pm.test('the new chatroom first', () => pm.expect(ids[0])
                .to.equal(pm.collectionVariables.get('chatroomId')));
            """,
        ),
        request(
            "Open the chatroom",
            "GET",
            room,
            status=200,
            test="""
            const chatroom = pm.response.json().data.chatroom;
            pm.test('no messages yet', () => pm.expect(chatroom.messages).to.be.empty);
            """,
        ),
        request(
            "Rename the chatroom",
            "PATCH",
            room,
            status=200,
            body={"name": "Renamed by Postman"},
            test="""
            pm.test('renamed', () => pm.expect(pm.response.json().data.chatroom.name)
                .to.equal('Renamed by Postman'));
            """,
        ),
        request(
            "Create a chatroom without a name",
            "POST",
            f"{API}/chatroom",
            status=201,
            body={},
            test="""
            const chatroom = pm.response.json().data.chatroom;
            pm.test('"New chat" (titled after its first reply)',
                () => pm.expect(chatroom.name).to.equal('New chat'));
            pm.collectionVariables.set('scratchChatroomId', chatroom.id);
            """,
        ),
        request("Delete it", "DELETE", scratch, status=204),
        request(
            "Open the deleted chatroom: 404",
            "GET",
            scratch,
            status=404,
            test=expect_error("chatroom_not_found"),
        ),
    )


def share_and_export(room: str) -> list[Item]:
    """The room with its completed reply: shared, read without logging in, exported,
    revoked."""
    return [
        request(
            "Share the chatroom",
            "POST",
            f"{room}/share",
            status=201,
            test="""
            const share = pm.response.json().data.share;
            pm.test('a long random token', () => pm.expect(share.token).to.match(/^[\\w-]{43}$/));
            pm.test('the page of the link',
                () => pm.expect(share.path).to.equal(`/s/${share.token}`));
            pm.collectionVariables.set('shareToken', share.token);
            """,
            doc="A read-only snapshot at `/s/{token}`: open `{{baseUrl}}/s/{{shareToken}}` in"
            " a browser. The token is shown only here; sharing again replaces the link.",
        ),
        request(
            "Read the shared chat without logging in",
            "GET",
            f"{API}/shared/{{{{shareToken}}}}",
            status=200,
            token=None,
            test="""
            const share = pm.response.json().data.share;
            pm.test('the prompt and its reply', () => pm.expect(share.messages.map((m) => m.role))
                .to.eql(['USER', 'GEMINI']));
            pm.test('no user id or phone number', () => {
                pm.expect(pm.response.text()).not.to.include(pm.collectionVariables.get('userId'));
                pm.expect(pm.response.text()).not.to.include(pm.collectionVariables.get('mobileNumber'));
            });
            """,
        ),
        request(
            "Export the chatroom as Markdown",
            "GET",
            f"{room}/export?format=md",
            status=200,
            test="""
            pm.test('a Markdown attachment', () => {
                pm.expect(pm.response.headers.get('Content-Type')).to.include('text/markdown');
                pm.expect(pm.response.headers.get('Content-Disposition')).to.include('attachment');
            });
            pm.test('a heading per turn', () => pm.expect(pm.response.text()).to.match(/^## You/m));
            """,
        ),
        request(
            "Export the chatroom as JSON",
            "GET",
            f"{room}/export?format=json",
            status=200,
            test="""
            pm.test('the room and its messages', () => pm.expect(pm.response.json().chatroom.id)
                .to.equal(pm.collectionVariables.get('chatroomId')));
            """,
        ),
        request("Revoke the share link", "DELETE", f"{room}/share", status=204),
        request(
            "The revoked link is gone",
            "GET",
            f"{API}/shared/{{{{shareToken}}}}",
            status=404,
            token=None,
            test=expect_error("share_not_found"),
        ),
    ]


def messages() -> Item:
    room = f"{API}/chatroom/{{{{chatroomId}}}}"
    reply = f"{room}/message/{{{{replyId}}}}"
    return folder(
        "3 Messages",
        "A prompt; its reply streamed (newman reads the whole stream once the reply is"
        " done) and polled; the chat shared, exported and unshared; a regenerated reply,"
        " stopped.",
        request(
            "Send a message",
            "POST",
            f"{room}/message",
            status=201,
            body={"content": "What is yoga?"},
            test="""
            const sent = pm.response.json().data;
            pm.collectionVariables.set('promptId', sent.message.id);
            pm.collectionVariables.set('replyId', sent.reply.id);
            pm.test('the reply is queued', () => pm.expect(sent.reply.status).to.equal('queued'));
            pm.test('its stream URL', () => pm.expect(sent.reply.streamUrl).to.equal(
                `/api/v1/chatroom/${sent.message.chatroomId}/message/${sent.reply.id}/stream`));
            pm.test('the quota in the headers', () => {
                pm.response.to.have.header('X-RateLimit-Limit');
                pm.response.to.have.header('X-RateLimit-Remaining');
            });
            """,
        ),
        request(
            "Stream the reply",
            "GET",
            f"{reply}/stream",
            status=200,
            headers={"Accept": "text/event-stream"},
            test="""
            pm.test('an event stream', () => pm.expect(pm.response.headers.get('Content-Type'))
                .to.include('text/event-stream'));
            const text = pm.response.text();
            pm.test('token events, then done: completed', () => {
                pm.expect(text).to.include('event: token');
                pm.expect(text).to.include('event: done');
                const done = JSON.parse(text.split('event: done')[1].match(/data: (.*)/)[1]);
                pm.expect(done.status).to.equal('completed');
            });
            """,
            doc="`text/event-stream`: `token` events as Gemini produces the reply, then `done`."
            " Postman shows the events as they arrive; newman reads the stream to its end.",
        ),
        request(
            "Poll the chatroom until the reply is final",
            "GET",
            room,
            status=200,
            test=poll(
                "the reply is final",
                setup="""
                const reply = pm.response.json().data.chatroom.messages
                    .find((m) => m.id === pm.collectionVariables.get('replyId'));
                """,
                until=f"{FINAL}.includes(reply?.status)",
                then="""
                pm.test('completed', () => pm.expect(reply.status).to.equal('completed'));
                pm.test('in reply to the prompt', () => pm.expect(reply.replyTo)
                    .to.equal(pm.collectionVariables.get('promptId')));
                pm.test('some text', () => pm.expect(reply.content).not.to.be.empty);
                """,
            ),
            doc="What a client that cannot stream does: repeats until the reply is final.",
        ),
        *share_and_export(room),
        request(
            "Search across chats",
            "GET",
            f"{API}/search?q=yoga&limit=20",
            status=200,
            test="""
            const found = pm.response.json().data;
            const prompt = found.hits.find(
                (h) => h.messageId === pm.collectionVariables.get('promptId'));
            pm.test('the prompt is found', () => pm.expect(prompt.kind).to.equal('prompt'));
            pm.test('its matched word is marked', () => pm.expect(
                prompt.snippet.filter((p) => p.match).map((p) => p.text)).to.include('yoga'));
            """,
            doc="The user's own prompts, replies and chat titles, best match first; the"
            " snippet's pieces with `match: true` are the words found.",
        ),
        request(
            "Regenerate the reply",
            "POST",
            f"{reply}/regenerate",
            status=201,
            test="""
            const regenerated = pm.response.json().data;
            pm.test('the old reply points to the new one',
                () => pm.expect(regenerated.previous.supersededBy).to.equal(regenerated.reply.id));
            pm.collectionVariables.set('replyId', regenerated.reply.id);
            """,
            doc="A new reply to the same prompt; it counts against the daily quota.",
        ),
        request(
            "Stop the new reply",
            "POST",
            f"{reply}/stop",
            status=200,
            test=f"""
            const reply = pm.response.json().data.reply;
            pm.test('final (cancelled, or completed if it was quicker)',
                () => pm.expect({FINAL}).to.include(reply.status));
            """,
        ),
    )


def usage_and_limit() -> Item:
    room = f"{API}/chatroom/{{{{chatroomId}}}}"
    return folder(
        "4 Usage and the Basic limit",
        "Prompts left today; prompts until the limit (each stopped at once, so the room"
        " takes the next), then 429. Works with any `BASIC_TIER_DAILY_PROMPT_LIMIT` of 2 or more.",
        request(
            "Usage",
            "GET",
            f"{API}/usage",
            status=200,
            test="""
            const usage = pm.response.json().data;
            pm.test('Basic: two prompts used (the message and the regenerated reply)', () => {
                pm.expect(usage.tier).to.equal('BASIC');
                pm.expect(usage.used).to.equal(2);
                pm.expect(usage.remaining).to.equal(usage.limit - usage.used);
            });
            pm.collectionVariables.set('promptsLeft', usage.remaining);
            """,
        ),
        request(
            "Models of the plan",
            "GET",
            f"{API}/models",
            status=200,
            test="""
            const models = pm.response.json().data;
            pm.test('Basic: its own model, nothing else to choose', () => {
                pm.expect(models.tier).to.equal('BASIC');
                pm.expect(models.allowed).to.eql([models.default]);
            });
            pm.collectionVariables.set('defaultModel', models.default);
            """,
        ),
        request(
            "Choose the chatroom's model",
            "PUT",
            f"{room}/model",
            status=200,
            body={"model": "{{defaultModel}}"},
            test="""
            const chatroom = pm.response.json().data.chatroom;
            pm.test('chosen', () => pm.expect(chatroom.model)
                .to.equal(pm.collectionVariables.get('defaultModel')));
            """,
        ),
        request(
            "Prompt until the daily limit",
            "POST",
            f"{room}/message",
            status=None,
            body={"content": "One more question"},
            test="""
            const left = Number(pm.collectionVariables.get('promptsLeft'));
            const expected = left > 0 ? 201 : 429;
            pm.test(`${expected} with ${left} prompt(s) left`,
                () => pm.response.to.have.status(expected));
            if (left > 0 && pm.response.code === 201) {
                pm.collectionVariables.set('promptsLeft', left - 1);
                pm.collectionVariables.set('replyId', pm.response.json().data.reply.id);
                pm.execution.setNextRequest('Stop that reply');
            } else {
                const body = pm.response.json();
                pm.test('code daily_limit_reached, with the limit', () => {
                    pm.expect(body.code).to.equal('daily_limit_reached');
                    pm.expect(body.used).to.equal(body.limit);
                    pm.expect(body.resetsAt).to.be.a('string');
                });
                pm.test('Retry-After', () => pm.response.to.have.header('Retry-After'));
                pm.execution.setNextRequest('Start Pro checkout');
            }
            """,
        ),
        request(
            "Stop that reply",
            "POST",
            f"{room}/message/{{{{replyId}}}}/stop",
            status=200,
            test="pm.execution.setNextRequest('Prompt until the daily limit');",
        ),
    )


def pro() -> Item:
    return folder(
        "5 Pro",
        "Checkout, paid on the Stripe simulator's page (development: no STRIPE_SECRET_KEY),"
        " then Pro: no daily limit; the billing portal.",
        request(
            "Start Pro checkout",
            "POST",
            f"{API}/subscribe/pro",
            status=200,
            test="""
            const checkout = pm.response.json().data;
            pm.test('a checkout URL',
                () => pm.expect(checkout.checkoutUrl).to.match(/^https?:\\/\\//));
            pm.collectionVariables.set('checkoutUrl', checkout.checkoutUrl);
            pm.collectionVariables.set('checkoutSessionId', checkout.sessionId);
            """,
        ),
        request(
            "Pay on the Stripe simulator",
            "POST",
            "{{checkoutUrl}}/pay",
            status=303,
            token=None,
            follow_redirects=False,
            test="""
            pm.test('back to the client\\'s success page', () => pm.expect(pm.response.headers
                .get('Location')).to.include(pm.collectionVariables.get('checkoutSessionId')));
            """,
            doc="Not our API: the Pay button of the simulator's checkout page, which sends"
            " Stripe's signed webhooks to the gateway. With real Stripe test keys, open"
            " `checkoutUrl` in a browser instead and pay with 4242 4242 4242 4242.",
        ),
        request(
            "Subscription status until Pro",
            "GET",
            f"{API}/subscription/status",
            status=200,
            test=poll(
                "Pro",
                setup="const status = pm.response.json().data;",
                until="status.tier === 'PRO'",
                then="""
                pm.test('active, renewing', () => {
                    pm.expect(status.status).to.equal('active');
                    pm.expect(status.cancelAtPeriodEnd).to.equal(false);
                    pm.expect(status.currentPeriodEnd).to.be.a('string');
                });
                """,
            ),
        ),
        request(
            "Usage as Pro",
            "GET",
            f"{API}/usage",
            status=200,
            test=poll(
                "Pro in chat too",
                setup="const usage = pm.response.json().data;",
                until="usage.tier === 'PRO'",
                then="pm.test('no limit', () => pm.expect(usage.limit).to.equal(null));",
            ),
            doc="Chat learns of the change from billing's event within a second: repeats"
            " until then.",
        ),
        request(
            "A prompt past the Basic limit",
            "POST",
            f"{API}/chatroom/{{{{chatroomId}}}}/message",
            status=201,
            body={"content": "Thanks, Pro!"},
        ),
        request(
            "Edit the first prompt",
            "PUT",
            f"{API}/chatroom/{{{{chatroomId}}}}/message/{{{{promptId}}}}",
            status=None,
            body={"content": "What is yoga, in one line?"},
            test="""
            // 409 while the reply to the prompt just sent is still being generated.
            pm.test('201, or 409 reply_pending', () => pm.expect([201, 409])
                .to.include(pm.response.code));
            if (pm.response.code === 201) {
                const edited = pm.response.json().data.message;
                pm.test('a new version of the prompt',
                    () => pm.expect(edited.content).to.equal('What is yoga, in one line?'));
            }
            """,
            doc="Edit and resend: a new version of the prompt and a new reply; the earlier"
            " version and what followed it stay, as a branch.",
        ),
        request(
            "Show the branch of the first version",
            "PUT",
            f"{API}/chatroom/{{{{chatroomId}}}}/branch",
            status=200,
            body={"messageId": "{{promptId}}"},
            test="""
            const messages = pm.response.json().data.chatroom.messages;
            pm.test('the path goes through it', () => pm.expect(messages.map((m) => m.id))
                .to.include(pm.collectionVariables.get('promptId')));
            """,
        ),
        request(
            "Checkout again: 409",
            "POST",
            f"{API}/subscribe/pro",
            status=409,
            test=expect_error("already_pro"),
        ),
        request(
            "Billing portal",
            "POST",
            f"{API}/subscription/portal",
            status=200,
            test="""
            pm.test('a portal URL', () => pm.expect(pm.response.json().data.url)
                .to.match(/^https?:\\/\\//));
            """,
        ),
    )


def passwords() -> Item:
    number = {"mobileNumber": "{{mobileNumber}}"}
    capture_token = "pm.collectionVariables.set('token', pm.response.json().token);"
    return folder(
        "6 Passwords",
        "Log in with the password confirmed at verify-otp; change it (earlier tokens stop"
        " working); forget it, reset it with a code; log in with the new one.",
        request(
            "Log in with the password",
            "POST",
            f"{API}/auth/login",
            status=200,
            token=None,
            body=number | {"password": "{{password}}"},
            test=capture_token,
        ),
        request(
            "Change the password",
            "POST",
            f"{API}/auth/change-password",
            status=200,
            body={"currentPassword": "{{password}}", "newPassword": "{{newPassword}}"},
            test="""
            pm.collectionVariables.set('oldToken', pm.collectionVariables.get('token'));
            pm.collectionVariables.set('token', pm.response.json().token);
            """,
            doc="Answers a new token: every earlier one is revoked.",
        ),
        request(
            "Me with the token from before the change: 401",
            "GET",
            f"{API}/auth/me",
            status=401,
            token="oldToken",
            test=expect_error("token_revoked"),
        ),
        request(
            "Forgot the password: a reset code",
            "POST",
            f"{API}/auth/forgot-password",
            status=None,
            token=None,
            body=number,
            test=code_after_cooldown("resetCode"),
            doc="A reset code: it cannot log in, only set the password.",
        ),
        request(
            "Reset the password",
            "POST",
            f"{API}/auth/reset-password",
            status=200,
            token=None,
            body=number | {"otp": "{{resetCode}}", "newPassword": "{{resetPassword}}"},
        ),
        request(
            "Log in with the new password",
            "POST",
            f"{API}/auth/login",
            status=200,
            token=None,
            body=number | {"password": "{{resetPassword}}"},
            test=capture_token,
        ),
        request(
            "Me (the /user/me alias)",
            "GET",
            f"{API}/user/me",
            status=200,
            test="""
            pm.test('Pro', () => pm.expect(pm.response.json().data.user.currentSubscription.tier)
                .to.equal('PRO'));
            """,
        ),
    )


def code_after_cooldown(variable: str) -> str:
    """A test script for a request that sends a code: the code into ``variable``. `make run`
    allows one code a number every OTP_RESEND_COOLDOWN_SECONDS (30 s), and the number had
    one just before: wait as Retry-After says, once, and ask again."""
    return f"""
    const wait = Number(pm.response.headers.get('Retry-After'));
    const waited = 'cooldown waited: ' + pm.info.requestName;
    if (pm.response.code === 429 && wait <= 60 && !pm.variables.get(waited)) {{
        pm.variables.set(waited, true);
        setTimeout(() => {{}}, wait * 1000);
        pm.execution.setNextRequest(pm.info.requestName);
    }} else {{
        pm.test('200', () => pm.response.to.have.status(200));
        const otp = pm.response.json().otp;
        pm.test('the code is in the response (development only)',
            () => pm.expect(otp).to.match(/^\\d{{6}}$/));
        pm.collectionVariables.set('{variable}', otp);
    }}
    """


def delete_account() -> Item:
    other = {"mobileNumber": "{{otherMobileNumber}}"}
    return folder(
        "9 Delete an account",
        "The other user deletes their account with a fresh code: every service erases"
        " them (UserDeleted), and their token stops working at once.",
        request(
            "A code to confirm the deletion",
            "POST",
            f"{API}/auth/send-otp",
            status=None,
            token=None,
            body=other,
            test=code_after_cooldown("deletionCode"),
        ),
        request(
            "Delete the account",
            "DELETE",
            f"{API}/user/me",
            status=200,
            token="otherToken",
            body={"otp": "{{deletionCode}}"},
        ),
        request(
            "The deleted account's token: 401",
            "GET",
            f"{API}/user/me",
            status=401,
            token="otherToken",
        ),
    )


def log_out() -> Item:
    return folder(
        "7 Log out",
        "Signs out everywhere: every token issued so far stops working.",
        request("Log out", "POST", f"{API}/auth/logout", status=200),
        request(
            "Me after logging out: 401",
            "GET",
            f"{API}/auth/me",
            status=401,
            test=expect_error("token_revoked"),
        ),
    )


def errors() -> Item:
    other = {"mobileNumber": "{{otherMobileNumber}}"}
    return folder(
        "8 Errors",
        "Every error is the JSON envelope `{status, message, code}`.",
        request(
            "Sign up with a bad number: 400",
            "POST",
            f"{API}/auth/signup",
            status=400,
            token=None,
            body={"mobileNumber": "12345"},
            test="""
            const body = pm.response.json();
            pm.test('fail, with the field', () => {
                pm.expect(body.status).to.equal('fail');
                pm.expect(body.errors.map((e) => e.field)).to.include('mobileNumber');
            });
            """,
        ),
        request(
            "Chatrooms without a token: 401",
            "GET",
            f"{API}/chatroom",
            status=401,
            token=None,
        ),
        request(
            "A wrong code: 401",
            "POST",
            f"{API}/auth/verify-otp",
            status=401,
            token=None,
            body={"mobileNumber": "{{mobileNumber}}", "otp": "000000"},
        ),
        request(
            "Another user signs up",
            "POST",
            f"{API}/auth/signup",
            status=201,
            token=None,
            body=other,
            pre=f"pm.collectionVariables.set('otherMobileNumber', {RANDOM_NUMBER});",
        ),
        request(
            "Another user's code",
            "POST",
            f"{API}/auth/send-otp",
            status=200,
            token=None,
            body=other,
            test="pm.collectionVariables.set('otherOtp', pm.response.json().otp);",
        ),
        request(
            "Another user's token",
            "POST",
            f"{API}/auth/verify-otp",
            status=200,
            token=None,
            body=other | {"otp": "{{otherOtp}}"},
            test="pm.collectionVariables.set('otherToken', pm.response.json().token);",
        ),
        request(
            "Another user opens the first user's chatroom: 404",
            "GET",
            f"{API}/chatroom/{{{{chatroomId}}}}",
            status=404,
            token="otherToken",
            test=expect_error("chatroom_not_found"),
            doc="Another user's chatroom is a 404, like one that does not exist.",
        ),
        request(
            "A Stripe webhook without a signature: 400",
            "POST",
            f"{API}/webhook/stripe",
            status=400,
            token=None,
            body={"type": "checkout.session.completed"},
        ),
    )


def collection() -> Item:
    return {
        "info": {
            "name": "Gemini Backend",
            "description": (
                "Every public route of the gateway, following one user from sign-up to"
                " log-out, then the error cases. Import this collection and the environment"
                f" {ENVIRONMENT_FILE.name}, set `baseUrl` (http://localhost:8000 for"
                " `make run`), Run. Needs development mode (codes in responses) and the"
                " Stripe simulator. Generated by dev/postman.py: change it there."
            ),
            "schema": SCHEMA,
        },
        "auth": bearer("token"),
        "event": [event("prerequest", COLLECTION_PRE), event("test", COLLECTION_TEST)],
        "variable": [{"key": key, "value": value} for key, value in VARIABLES.items()],
        "item": [
            health(),
            sign_up(),
            chatrooms(),
            messages(),
            usage_and_limit(),
            pro(),
            passwords(),
            log_out(),
            errors(),
            delete_account(),
        ],
    }


def environment() -> Item:
    return {
        "name": ENVIRONMENT_NAME,
        "values": [
            {"key": "baseUrl", "value": "http://localhost:8000", "type": "default", "enabled": True}
        ],
        "_postman_variable_scope": "environment",
    }


def requests(item: Item) -> list[Item]:
    """Every request of a collection or folder, in order."""
    if "request" in item:
        return [item]
    return [r for child in item.get("item", []) for r in requests(child)]


def render(document: Item) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# Globals of Postman's old script API: a script that declares one of these names fails.
SANDBOX_GLOBALS = {"data", "environment", "globals", "iteration", "postman", "request", "tests"}


def check(document: Item) -> None:
    names = [r["name"] for r in requests(document)]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"setNextRequest finds a request by its name: {duplicates} twice"
    items = [document]
    while items:
        item = items.pop()
        items.extend(item.get("item", []))
        for e in item.get("event", []):
            declared = set(
                re.findall(r"\b(?:const|let|var)\s+(\w+)", "\n".join(e["script"]["exec"]))
            )
            clash = declared & SANDBOX_GLOBALS
            assert not clash, (
                f"{item.get('name', 'collection')}: {clash} is a global of Postman's sandbox"
            )


def files() -> dict[Path, str]:
    document = collection()
    check(document)
    return {COLLECTION_FILE: render(document), ENVIRONMENT_FILE: render(environment())}


def main() -> None:
    POSTMAN_DIR.mkdir(exist_ok=True)
    for path, text in files().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(POSTMAN_DIR.parent)}")


if __name__ == "__main__":
    main()
