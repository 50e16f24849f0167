"""Text filters: case-insensitive substring matches in which %, _ and \\ are literal."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func
from sqlalchemy.orm import InstrumentedAttribute

LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    escaped = (
        text.lower()
        .replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


def icontains(column: InstrumentedAttribute[str], text: str) -> ColumnElement[bool]:
    return func.lower(column).like(contains_pattern(text), escape=LIKE_ESCAPE)
