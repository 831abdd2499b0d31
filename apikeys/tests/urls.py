"""The project's URLs plus views that exist only to test authentication, scopes and usage counting."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict


class OrdersScopedView(APIView):
    """Reads need orders:read, writes orders:write; answers with who the request acted as."""

    scope_resource = "orders"

    def get(self, request):
        actor = Actor.from_request(request)
        return Response({"actor": [actor.kind, actor.id, actor.label], "user": str(request.user)})

    def post(self, request):
        raise Conflict("Always conflicts.")


class ExplicitScopesView(APIView):
    required_scopes = {"get": "customers:read", "post": "integrations:sync"}

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


class UndeclaredView(APIView):
    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("api/test/orders-scoped/", OrdersScopedView.as_view()),
    path("api/test/explicit/", ExplicitScopesView.as_view()),
    path("api/test/undeclared/", UndeclaredView.as_view()),
    path("", include("jewelia.urls")),
]
