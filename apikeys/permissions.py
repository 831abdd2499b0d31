"""The API's one permission class.

Every API view declares the scope it needs, one of two ways:

- `scope_resource = "orders"`: safe methods need `orders:read`, everything else `orders:write`;
- `required_scopes = {"transition": "orders:write", "stats": "orders:read"}`: per viewset action (or, for a
  plain APIView, per lower-case HTTP method; HEAD falls back to GET's entry), overriding `scope_resource`.

A view that declares neither is refused for everyone (fail closed), and a test walks every URL to catch it.
Public endpoints (schema, docs, webhook receiver) set `public_endpoint = True`.

API-key requests are checked against the key's scopes (403 naming the missing scope) and its per-minute rate
limit (429). Staff sessions (and HTTP basic for staff) are checked against Django model permissions instead,
including the view permission for reads.
"""

from rest_framework import exceptions, permissions

from jewelia.core.exceptions import RateLimited

from .models import ApiKey

SAFE_METHODS = permissions.SAFE_METHODS


def required_scope(view, request) -> str | None:
    method = request.method.lower()
    action = getattr(view, "action", None) or method
    explicit = getattr(view, "required_scopes", None) or {}
    if action in explicit:
        return explicit[action]
    if method == "head" and "get" in explicit:
        return explicit["get"]
    resource = getattr(view, "scope_resource", None)
    if resource:
        return f"{resource}:read" if request.method in SAFE_METHODS else f"{resource}:write"
    return None


class MissingScope(exceptions.PermissionDenied):
    def __init__(self, scope: str):
        super().__init__(f"This API key lacks the {scope} scope.")
        self.error_details = {"missing_scope": scope}


class ModelPermissions(permissions.DjangoModelPermissions):
    """Django model permissions, with reads needing the model's view permission."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


def enforce_rate_limit(request) -> None:
    """429 when authentication refused this request under the key's per-minute limit (`ratelimit`).

    The verdict was reached, across processes, in authentication's cache round trip; a refused request was not
    counted. `Retry-After` is the whole seconds (at least 1) until a request would be admitted if the key sends
    nothing meanwhile.
    """
    decision = getattr(request, "api_key_rate", None)
    if decision is None:  # not authenticated by ApiKeyAuthentication (a test's force_authenticate): nothing counted
        return
    if not decision.admitted:
        raise RateLimited(
            f"This API key is limited to {decision.limit} requests per minute.",
            retry_after=decision.retry_after,
            details={"limit_per_minute": decision.limit},
        )


class ScopedPermission(permissions.BasePermission):
    message = "You do not have permission to perform this action."

    def has_permission(self, request, view):
        if getattr(view, "public_endpoint", False):
            return True
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is not None:
            enforce_rate_limit(request)
        scope = required_scope(view, request)
        if scope is None:
            self.message = "This endpoint declares no scope and is closed."
            return False
        if key is not None:
            if scope not in key.scopes:
                raise MissingScope(scope)
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            return False
        return ModelPermissions().has_permission(request, view) if _has_queryset(view) else True


def _has_queryset(view) -> bool:
    return getattr(view, "queryset", None) is not None or hasattr(view, "get_queryset")
