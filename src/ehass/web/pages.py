"""Rendering: one Jinja2 environment, the headers every page carries, and the viewer's zone."""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, available_timezones

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from ehass.core.principal import Principal
from ehass.web.security import CSRF_FIELD, csrf_token, remember_anonymous

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
# No inline script or style anywhere: every script and sheet is a file under /static.
WEB_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
ZONE_COOKIE = "ehass_tz"


@cache
def zones() -> frozenset[str]:
    return frozenset(available_timezones())


def viewer_zone(request: Request) -> str:
    """The zone times are shown in: `?tz=`, else the browser's (a cookie app.js sets)."""
    cookie = unquote(request.cookies.get(ZONE_COOKIE, ""))
    for candidate in (request.query_params.get("tz"), cookie):
        if candidate and candidate in zones():
            return candidate
    return "UTC"


def local(value: datetime, zone: str | tzinfo, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    return value.astimezone(tz).strftime(fmt)


TEMPLATES.env.filters["local"] = local
TEMPLATES.env.globals["CSRF_FIELD"] = CSRF_FIELD


def web_headers(response: HTMLResponse | RedirectResponse) -> None:
    response.headers["Content-Security-Policy"] = WEB_CSP
    # Pages show health data: never kept in a shared or back/forward cache.
    response.headers["Cache-Control"] = "no-store"


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    context = {
        "principal": principal,
        "csrf": csrf_token(request),
        "zone": viewer_zone(request),
        "path": request.url.path,
        **values,
    }
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    web_headers(response)
    remember_anonymous(request, response)
    return response


def redirect(url: str) -> RedirectResponse:
    """After a POST, always 303: the browser follows with a GET (post/redirect/get)."""
    response = RedirectResponse(url, status_code=303)
    web_headers(response)
    return response


def safe_next(value: str | None, default: str = "/") -> str:
    """Only a path of this site: never `//elsewhere` or `https://elsewhere`."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default
