"""Helpers for driving the pages over HTTP as a browser would (forms, cookies, CSRF)."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from ehass.users.models import User
from tests.factories import PASSWORD

HTML = {"Accept": "text/html,application/xhtml+xml"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, f"no CSRF field on {page.url}"
    return html.unescape(found.group(1))


async def get(client: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    return await client.get(path, headers=HTML, **kwargs)


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, str], *, from_page: str | None = None
) -> httpx.Response:
    """Posts `data` with the CSRF token of `from_page` (default: `path` itself)."""
    page = await get(client, from_page or path)
    return await client.post(path, data={**data, "csrf_token": csrf_of(page)}, headers=HTML)


async def sign_in(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> None:
    response = await post_form(client, "/signin", {"email": user.email, "password": password})
    assert response.status_code == 303, response.text
