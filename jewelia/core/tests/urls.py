"""A tiny URLconf that raises each kind of error, to test the one error shape in isolation."""

from django.urls import path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from jewelia.core.exceptions import Conflict, RateLimited


class _Payload(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1)


class ErrorsView(APIView):
    public_endpoint = True

    def get(self, request, kind):
        if kind == "conflict":
            raise Conflict("Order is shipped.", details={"allowed": ["delivered"]})
        if kind == "throttled":
            raise RateLimited(retry_after=7)
        if kind == "boom":
            raise RuntimeError("secret internal detail: password=hunter2")
        return Response({"ok": True})

    def post(self, request, kind):
        payload = _Payload(data=request.data)
        payload.is_valid(raise_exception=True)
        return Response(payload.validated_data)


class StaffOnlyView(APIView):
    scope_resource = "orders"

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("api/errors/<str:kind>/", ErrorsView.as_view()),
    path("api/staff-only/", StaffOnlyView.as_view()),
]
