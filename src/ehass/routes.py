"""Route templates (`/api/v1/appointments/{appointmentId}`) for logs and metrics labels.

A template, never the raw path: raw paths carry ids (unbounded label sets, and personal
identifiers in logs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi import FastAPI
from starlette.routing import BaseRoute, compile_path
from starlette.types import Scope

UNMATCHED = "unmatched"


def _routes_with_templates(routes: list[BaseRoute]) -> Iterator[tuple[BaseRoute, str]]:
    """Every route of the app with its full path template, prefixes included."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI that flattens included routers: paths are already full
        for route in routes:
            template = getattr(route, "path_format", None)
            if template:
                yield route, template
        return
    for context in iter_route_contexts(routes):
        if context.path_format:
            yield context.original_route, context.path_format


class RouteTemplates:
    """The route template of a request (`/api/v1/appointments/{appointmentId}`).

    `scope["route"]` is the matched route object, but a route of an included router may
    know only the path relative to that router. So the app's routes are listed once with
    their full templates, and the request's path picks among the templates of its route.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._table: dict[int, list[tuple[re.Pattern[str], str]]] | None = None

    def _build(self) -> dict[int, list[tuple[re.Pattern[str], str]]]:
        table: dict[int, list[tuple[re.Pattern[str], str]]] = {}
        for route, template in _routes_with_templates(self.app.routes):
            regex = compile_path(template)[0]
            table.setdefault(id(route), []).append((regex, template))
        return table

    def label(self, scope: Scope, path: str, root_path: str) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        if self._table is None or id(route) not in self._table:
            self._table = self._build()  # routes added since: list them again, once
            self._table.setdefault(id(route), [])
        for regex, template in self._table[id(route)]:
            if regex.match(path):
                return template
        # A route the app does not list (a mounted sub-application's own route): the mount
        # prefix is what routing added to root_path.
        own = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not own:
            return UNMATCHED
        return scope.get("root_path", "")[len(root_path) :] + own


def templates_of(app: FastAPI) -> RouteTemplates:
    """The app's one RouteTemplates table, made on first use."""
    templates: RouteTemplates | None = getattr(app.state, "route_templates", None)
    if templates is None:
        templates = app.state.route_templates = RouteTemplates(app)
    return templates
