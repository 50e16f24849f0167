"""A real site for the browser tests: `ehass serve` processes over a committed database of
their own, Debian's Chromium driven by Playwright, and axe-core from tests/web/node_modules.

The browser tests skip only when /usr/bin/chromium is missing (`.ci/run` installs it); a
missing axe-core is a failure that says to run `npm ci` in tests/web.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ehass.config import Settings
from ehass.core.clock import SystemClock
from tests.factories import PASSWORD, Factories
from tests.mail import Inbox
from tests.servers import (
    Server,
    database_of_its_own,
    free_port,
    running_servers,
    server_env,
    wait_ready,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SECRET_KEY = "browser-test-secret-key-that-is-long-enough-0123456789"
# `make screenshots` sets this; otherwise no screenshots are written.
SCREENSHOTS = os.environ.get("EHASS_SCREENSHOTS")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
T = TypeVar("T")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's Chromium at /usr/bin/chromium "
            "(apt-get install chromium; .ci/run installs it)"
        )


def require_axe() -> str:
    if not AXE.exists():
        pytest.fail(
            f"axe-core is missing at {AXE}: run `npm ci` in tests/web (.ci/run does)",
            pytrace=False,
        )
    return AXE.read_text()


@dataclass
class Site:
    servers: list[Server]
    sessionmaker: async_sessionmaker[AsyncSession]
    # What the servers' workers mailed (password reset links, confirmations...).
    inbox: Inbox
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def url(self, path: str, *, server: int = 0) -> str:
        return self.servers[server % len(self.servers)].base_url + path

    async def seed(self, build: Callable[[Factories], Awaitable[T]]) -> T:
        """Runs `build` with factories on a session of the site's database, then commits."""
        async with self._lock, self.sessionmaker() as session:
            factories = Factories(session=session, client=None, clock=SystemClock())  # type: ignore[arg-type]
            built = await build(factories)
            await session.commit()
            return built

    def logs(self) -> str:
        return "\n".join(f"--- {s.base_url}\n{s.log_tail(3000)}" for s in self.servers)


@pytest.fixture(scope="session")
async def site(
    settings: Settings, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    require_chromium()
    tmp_dir = tmp_path_factory.mktemp("web")
    inbox = Inbox()
    mail_server = Controller(inbox, hostname="127.0.0.1", port=free_port())
    mail_server.start()
    async with database_of_its_own(settings, tmp_dir, "web") as (url, engine):
        env = server_env(
            {
                "EHASS_DATABASE_URL": url,
                # Each server delivers mail itself, to the test's SMTP server, at once.
                "EHASS_SMTP_URL": f"smtp://127.0.0.1:{mail_server.port}",
                "EHASS_EMBEDDED_WORKER": "true",
                "EHASS_WORKER_POLL_SECONDS": "0.2",
                "EHASS_SECRET_KEY": SECRET_KEY,
                "EHASS_RATE_LIMIT_ENABLED": "false",
                "EHASS_REDIS_KEY_PREFIX": f"ehass-web-{uuid.uuid4().hex[:8]}",
                "EHASS_ENV": "test",
                "EHASS_LOG_LEVEL": "WARNING",
                **({"EHASS_REDIS_URL": redis_url} if redis_url else {}),
            }
        )
        # Two processes when Redis can carry live changes between them; one otherwise.
        with running_servers(2 if redis_url else 1, env=env, log_dir=tmp_dir) as servers:
            await asyncio.gather(*(wait_ready(server) for server in servers))
            yield Site(servers, async_sessionmaker(engine, expire_on_commit=False), inbox)
    mail_server.stop()


@pytest.fixture(scope="session")
async def browser(site: Site) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright, expect

    # Two cores shared with the rest of the suite: give assertions as long as actions.
    expect.set_options(timeout=15_000)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


@pytest.fixture
async def new_context(browser: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """`await new_context(timezone_id="Europe/Berlin")`: a fresh browser profile; each
    page of it fails the test on a CSP violation or a script error."""
    contexts: list[Any] = []
    problems: list[str] = []

    async def make(**options: Any) -> Any:
        options.setdefault("viewport", PHONE)
        options.setdefault("locale", "en-GB")
        context = await browser.new_context(**options)
        context.set_default_timeout(15_000)

        def watch(page: Any) -> None:
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" and "Content Security Policy" in m.text
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(str(e)))

        context.on("page", watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        await context.close()
    assert not problems, problems


async def sign_in(page: Any, site: Site, email: str, *, server: int = 0) -> None:
    await page.goto(site.url("/signin", server=server))
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/signin" not in url)


async def screenshot(page: Any, name: str) -> None:
    """Phone and desktop screenshots of the page, when `make screenshots` asks for them."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=folder / f"{name}-{label}.png", full_page=True)
    await page.set_viewport_size(PHONE)
