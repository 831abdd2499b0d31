"""Walk every route under /api/ and fail for any action that declares no scope (it would be closed to everyone,
or, with its own permission classes, open to everyone). Public endpoints must say so with `public_endpoint`,
plain Django views included."""

from types import SimpleNamespace

from django.urls import URLResolver, get_resolver
from drf_spectacular import views as spectacular

from apikeys.permissions import ScopedPermission, required_scope
from apikeys.scopes import SCOPES

# drf-spectacular's schema and documentation views are public by design and are not ours to subclass in place.
PUBLIC_THIRD_PARTY_VIEWS = {
    spectacular.SpectacularAPIView,
    spectacular.SpectacularJSONAPIView,
    spectacular.SpectacularYAMLAPIView,
    spectacular.SpectacularSwaggerView,
    spectacular.SpectacularSwaggerSplitView,
    spectacular.SpectacularRedocView,
}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        else:
            yield route, pattern.callback


def _actions(callback):
    """(method, view instance) for every action a route serves, set up as DRF would for a request."""
    actions = getattr(callback, "actions", None)
    if actions:  # a viewset route: one action per method
        for method, action in actions.items():
            view = callback.cls(**callback.initkwargs)
            view.action_map, view.action = actions, action
            yield method, view
    else:
        for method in HTTP_METHODS:
            if hasattr(callback.cls, method):
                yield method, callback.cls(**getattr(callback, "initkwargs", {}))


def scope_problems(urlconf: str) -> list[str]:
    problems = []
    for route, callback in _routes(get_resolver(urlconf).url_patterns):
        if not route.startswith("api/"):
            continue
        cls = getattr(callback, "cls", None)
        if cls is None:  # a plain Django view: fine only when it says it is public (the webhook receiver)
            if not getattr(getattr(callback, "view_class", callback), "public_endpoint", False):
                problems.append(f"{route}: not a DRF view, so no scope can be checked")
            continue
        if cls in PUBLIC_THIRD_PARTY_VIEWS:
            continue
        for method, view in _actions(callback):
            if getattr(view, "public_endpoint", False):
                continue
            label = f"{method.upper()} /{route} ({cls.__name__}.{getattr(view, 'action', None) or method})"
            scope = required_scope(view, SimpleNamespace(method=method.upper()))
            if scope is None:
                problems.append(f"{label}: declares no scope")
            elif scope not in SCOPES:
                problems.append(f"{label}: declares {scope!r}, which is not in apikeys.scopes.SCOPES")
            if not any(isinstance(permission, ScopedPermission) for permission in view.get_permissions()):
                problems.append(f"{label}: does not use ScopedPermission")
    return problems


def test_every_api_action_declares_a_registered_scope():
    assert scope_problems("jewelia.urls") == []


def test_the_walk_covers_the_api_key_endpoints():
    routes = {route for route, _ in _routes(get_resolver("jewelia.urls").url_patterns)}
    assert {"api/api-keys/?", "api/api-keys/(?P<pk>[^/.]+)/rotate/?"} <= routes


def test_the_walk_reports_a_view_without_a_scope():
    assert scope_problems("apikeys.tests.urls") == ["GET /api/test/undeclared/ (UndeclaredView.get): declares no scope"]


def test_the_walk_reports_a_view_that_replaces_the_permission_class(monkeypatch):
    from rest_framework.permissions import AllowAny

    from apikeys.tests.urls import ExplicitScopesView

    monkeypatch.setattr(ExplicitScopesView, "permission_classes", [AllowAny])
    assert "GET /api/test/explicit/ (ExplicitScopesView.get): does not use ScopedPermission" in scope_problems(
        "apikeys.tests.urls"
    )
