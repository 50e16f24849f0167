"""Form handling shared by the pages: typed values back, errors beside their fields.

A service refusal (a DomainError) becomes a message on the form instead of an error
page; the transaction is rolled back first, exactly as the request's session dependency
would have done, unless the error asks for its changes to be kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from ehass.audit import service as audit
from ehass.errors import DomainError, UnprocessableError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass
class Problems:
    """What went wrong with a form: per field, and for the form as a whole."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def add(self, loc: tuple[Any, ...] | list[Any], message: str, known: set[str]) -> None:
        names = [str(part) for part in loc if str(part) in known]
        if names:
            self.fields.setdefault(names[0], message)
        else:
            self.general.append(message)


def values_of(form: FormData, *names: str) -> dict[str, str]:
    """The submitted text of each named field ("" when absent), for re-filling the form."""
    values = {}
    for name in names:
        raw = form.get(name)
        values[name] = raw.strip() if isinstance(raw, str) else ""
    return values


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "Not valid."))
    return message.removeprefix("Value error, ")


def parse(model: type[M], data: Mapping[str, Any], problems: Problems) -> M | None:
    """The validated request model, or None with the reasons added to `problems`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        known = set(data)
        for error in exc.errors():
            problems.add(error["loc"], _message(error), known)
        return None


async def attempt(
    session: AsyncSession,
    call: Callable[[], Awaitable[T]],
    problems: Problems,
    *,
    known: set[str] = frozenset(),  # type: ignore[assignment]
) -> T | None:
    """Runs a service call; a refusal lands in `problems` and the attempt is undone."""
    try:
        return await call()
    except DomainError as exc:
        if isinstance(exc, UnprocessableError):
            for error in exc.errors:
                problems.add(error["loc"], error["msg"], known)
        else:
            problems.general.append(exc.detail)
        await undo(session, exc)
        return None


async def undo(session: AsyncSession, exc: DomainError) -> None:
    """What the request's session dependency does with a refusal it sees."""
    if not exc.keep_changes:
        audit.discard(session)
        await session.rollback()
