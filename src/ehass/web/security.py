"""The browser's session cookie and the CSRF tokens of the forms.

The cookie names a row of the `auth` domain's sessions (the same ones access tokens name),
so signing out, a password change or a deactivation ends a browser sign-in exactly as it
ends an API login. The session id travels with an HMAC of it: ids show up in the audit
trail and in `GET /auth/sessions`, and knowing one must not be enough to wear it.

CSRF: every state-changing form carries a token derived from the session (or, before
sign-in, from a random pre-session cookie) with the server's secret; a POST without the
matching token is refused. SameSite=Lax on both cookies is the second line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "ehass_session"
ANONYMOUS_COOKIE = "ehass_presession"
CSRF_FIELD = "csrf_token"


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _secret(request: Request) -> str:
    return request.app.state.settings.secret_key.get_secret_value()


def session_cookie_value(request: Request, session_id: str) -> str:
    return f"{session_id}.{_mac(_secret(request), 'web-session', session_id)}"


def session_id_of(request: Request) -> str | None:
    """The session id the cookie names, when its MAC is right; None otherwise."""
    raw = request.cookies.get(SESSION_COOKIE, "")
    session_id, _, mac = raw.partition(".")
    if not session_id or len(session_id) > 64 or not mac:
        return None
    expected = _mac(_secret(request), "web-session", session_id)
    return session_id if hmac.compare_digest(mac, expected) else None


def _cookie_flags(request: Request) -> dict[str, Any]:
    # Secure whenever the browser reached us over TLS (directly or via a trusted proxy).
    secure = request.url.scheme == "https"
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}


def set_session_cookie(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, session_cookie_value(request, session_id), **_cookie_flags(request)
    )
    response.delete_cookie(ANONYMOUS_COOKIE, path="/")


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags(request))


def csrf_token(request: Request) -> str:
    """The token a form of this page must send back.

    Signed in: derived from the session. Not yet: derived from a random pre-session
    cookie (so sign-in and sign-up are protected too); a new one is left in
    `request.state.new_anonymous_id` for `remember_anonymous` to set on the response.
    """
    session_id = session_id_of(request)
    if session_id is not None:
        return _mac(_secret(request), "csrf", session_id)
    anonymous = getattr(request.state, "new_anonymous_id", None) or request.cookies.get(
        ANONYMOUS_COOKIE
    )
    if not anonymous or len(anonymous) > 64:
        anonymous = secrets.token_urlsafe(24)
        request.state.new_anonymous_id = anonymous
    return _mac(_secret(request), "csrf-anonymous", anonymous)


def remember_anonymous(request: Request, response: Response) -> None:
    anonymous = getattr(request.state, "new_anonymous_id", None)
    if anonymous:
        response.set_cookie(ANONYMOUS_COOKIE, anonymous, **_cookie_flags(request))


def csrf_valid(request: Request, sent: str | None) -> bool:
    if not sent:
        return False
    session_id = session_id_of(request)
    if session_id is not None:
        expected = _mac(_secret(request), "csrf", session_id)
    else:
        anonymous = request.cookies.get(ANONYMOUS_COOKIE)
        if not anonymous:
            return False
        expected = _mac(_secret(request), "csrf-anonymous", anonymous)
    return hmac.compare_digest(sent, expected)
