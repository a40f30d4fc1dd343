"""Headless Chromium, driven by Playwright, on the web client the gateway serves.

The browser is Debian's ``chromium`` package (``make test`` installs it when it can);
nothing here downloads one. Each test gets a fresh browser (a fresh profile) and a page on
the running stack's gateway; whatever the page logs as an error fails the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    async_playwright,
    expect,
)

from dev.stack import Stack
from shared.testing.fixtures import random_mobile_number

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)
saved: list[str] = []  # the screenshots this session took


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if saved:
        where = SCREENSHOTS.relative_to(SCREENSHOTS.parents[1])
        terminalreporter.write_line(f"browser screenshots in {where}/: {', '.join(saved)}")


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM} and it is not there. `make test` "
            "installs Debian's package when run as root with apt-get; otherwise install it "
            "(apt-get install chromium) or point CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Playwright gives every launch a new, empty profile (--user-data-dir).
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class Console:
    """What the client's pages reported as errors: console.error lines and uncaught
    exceptions. Other sites' pages (the Stripe simulator's checkout) are not the client's.
    A server error (5xx) also brings its body and what the services logged about it, so a
    failure says why without the service logs at hand (CI prints only the test output)."""

    def __init__(self, origin: str, log_dir: Path | None = None) -> None:
        self.origin = origin
        self.log_dir = log_dir
        self.errors: list[str] = []
        # Each 5xx: what it was, and its request id (its log lines are read on a failure).
        self.server_errors: list[tuple[str, str]] = []

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            url = message.location.get("url") or page.url
            if message.type == "error" and self._ours(url):
                self.errors.append(f"console.error: {message.text} at {url}")

        def on_page_error(error: Exception) -> None:
            if self._ours(page.url):
                self.errors.append(f"uncaught: {error} at {page.url}")

        async def on_response(response: Response) -> None:
            if response.status < 500 or not self._ours(response.url):
                return
            try:
                body = (await response.text())[:300]
            except Exception as exc:  # the page went on; the status and id still say enough
                body = f"(body unreadable: {exc!r})"
            request_id = await response.header_value("x-request-id") or ""
            self.server_errors.append(
                (f"{response.status} {response.request.method} {response.url}: {body}", request_id)
            )

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("response", on_response)

    def _logged(self, request_id: str) -> str:
        """The warnings and errors the services logged under ``request_id``."""
        if not request_id or self.log_dir is None:
            return ""
        lines = [
            f"\n    {path.stem}: {line.strip()[:1000]}"
            for path in sorted(self.log_dir.glob("*.log"))
            for line in path.read_text(errors="replace").splitlines()
            if request_id in line and ('"warning"' in line or '"error"' in line)
        ]
        return "".join(lines)

    def _ours(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def assert_clean(self, *allowed: str) -> None:
        """No errors, but for those matching one of the ``allowed`` regular expressions."""
        unexpected = [e for e in self.errors if not any(re.search(a, e) for a in allowed)]
        if unexpected:
            server_errors = [
                f"{what} (request id {request_id}){self._logged(request_id)}"
                for what, request_id in self.server_errors
            ]
            raise AssertionError(
                "\n".join(
                    ["the page logged errors:", *unexpected, "server errors:", *server_errors]
                )
            )


class Person:
    """Someone using the web client in one browser context."""

    def __init__(self, context: BrowserContext, page: Page, console: Console, stack: Stack):
        self.context, self.page, self.console, self.stack = context, page, console, stack
        self.number = random_mobile_number()

    async def sign_in(self) -> None:
        page = self.page
        await page.goto("/")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        phone = page.get_by_label("Mobile number")
        await phone.fill(self.number)
        await phone.press("Enter")
        code = page.get_by_label("One-time code")
        await expect(code).to_have_value(re.compile(r"^\d{6}$"))  # the development OTP
        await expect(page.get_by_text("the code was filled in for you")).to_be_visible()
        await page.get_by_role("button", name="Verify and sign in").click()
        await expect(page.get_by_text("How can I help you today?")).to_be_visible()

    @property
    def prompt(self):
        return self.page.get_by_label("Message Gemini")

    @property
    def replies(self):
        return self.page.locator("article.msg.model")

    @property
    def last_reply(self):
        return self.replies.last

    async def send(self, text: str) -> None:
        await self.prompt.fill(text)
        await self.prompt.press("Enter")

    async def until_reply_final(self, status: str = "completed", timeout: float = 20_000) -> None:
        await expect(self.last_reply).to_have_attribute("data-status", status, timeout=timeout)
        await expect(self.page.get_by_role("button", name="Send message")).to_be_visible()

    async def ask(self, text: str) -> str:
        """Send a prompt and wait for its reply to complete; returns the reply's text."""
        before = await self.replies.count()
        await self.send(text)
        await expect(self.replies).to_have_count(before + 1)
        await self.until_reply_final()
        return await self.last_reply.locator(".md").inner_text()

    async def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png")
        saved.append(f"{name}.png")


PersonFactory = Callable[..., Awaitable[Person]]


@pytest.fixture
async def new_person(browser: Browser, stack: Stack) -> AsyncIterator[PersonFactory]:
    """``await new_person(viewport=PHONE)``: a fresh browser context and page."""
    contexts: list[BrowserContext] = []

    async def make(viewport: dict[str, int] = DESKTOP, **options: object) -> Person:
        context = await browser.new_context(
            base_url=stack.url("gateway"),
            viewport=viewport,
            locale="en-US",
            reduced_motion="reduce",  # no transitions half-way in the screenshots
            **options,
        )
        contexts.append(context)
        page = await context.new_page()
        console = Console(stack.url("gateway"), stack.log_dir)
        console.watch(page)
        return Person(context, page, console, stack)

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
async def person(new_person: PersonFactory) -> Person:
    return await new_person()


@pytest.fixture
async def phone_person(new_person: PersonFactory) -> Person:
    """On a phone-sized touch screen."""
    return await new_person(viewport=PHONE, is_mobile=True, has_touch=True)
