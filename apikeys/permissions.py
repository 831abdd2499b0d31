"""The API's one permission class.

Every API view declares the scope it needs, one of two ways:

- `scope_resource = "orders"`: safe methods need `orders:read`, everything else `orders:write`;
- `required_scopes = {"transition": "orders:write", "stats": "orders:read"}`: per viewset action (or, for a
  plain APIView, per lower-case HTTP method), overriding `scope_resource`.

A view that declares neither is refused for everyone (fail closed), and a test walks every URL to catch it.
Public endpoints (schema, docs, webhook receiver) set `public_endpoint = True`.

Staff sessions (and HTTP basic for staff) are checked against Django model permissions instead of scopes.
"""

from rest_framework import permissions

SAFE_METHODS = permissions.SAFE_METHODS


def required_scope(view, request) -> str | None:
    action = getattr(view, "action", None) or request.method.lower()
    explicit = getattr(view, "required_scopes", None) or {}
    if action in explicit:
        return explicit[action]
    resource = getattr(view, "scope_resource", None)
    if resource:
        return f"{resource}:read" if request.method in SAFE_METHODS else f"{resource}:write"
    return None


class ScopedPermission(permissions.BasePermission):
    message = "You do not have permission to perform this action."

    def has_permission(self, request, view):
        if getattr(view, "public_endpoint", False):
            return True
        scope = required_scope(view, request)
        if scope is None:
            self.message = "This endpoint declares no scope and is closed."
            return False
        user = request.user
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            return False
        return permissions.DjangoModelPermissions().has_permission(request, view) if _has_queryset(view) else True


def _has_queryset(view) -> bool:
    return getattr(view, "queryset", None) is not None or hasattr(view, "get_queryset")
