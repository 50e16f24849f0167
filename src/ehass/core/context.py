"""The ambient facts of the current request: who acts, from where, under which request id.

Set by the request middleware and the authentication dependency; read by the audit trail,
so services need not thread them through every call.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, replace

from ehass.core.principal import ClientInfo, Principal


@dataclass(frozen=True, slots=True)
class RequestContext:
    client: ClientInfo
    principal: Principal | None = None


_current: ContextVar[RequestContext | None] = ContextVar("ehass_request", default=None)
_NO_CLIENT = ClientInfo(ip=None, user_agent=None, request_id=None)


def current() -> RequestContext:
    return _current.get() or RequestContext(client=_NO_CLIENT)


def begin(client: ClientInfo) -> object:
    return _current.set(RequestContext(client=client))


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def set_principal(principal: Principal) -> None:
    _current.set(replace(current(), principal=principal))
