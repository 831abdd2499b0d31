"""`/api/api-keys/`: manage API keys. Thin: validate input, call a service or selector, render output."""

from datetime import timedelta

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jewelia.core.actors import Actor

from . import serializers as s
from .models import ApiKey
from .selectors import api_key_list, api_key_usage_daily, api_key_usage_summary
from .services import api_key_create, api_key_revoke, api_key_rotate, api_key_update


def _acting_key(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class ApiKeyViewSet(viewsets.GenericViewSet):
    """API keys: identifiers, scopes, limits and usage. Secrets are shown only when a key is created or rotated."""

    scope_resource = "api_keys"
    required_scopes = {"usage": "api_keys:read", "rotate": "api_keys:write"}
    queryset = ApiKey.objects.select_related("replaced_by")
    serializer_class = s.ApiKeyOut

    @extend_schema(parameters=[s.ListFiltersIn], responses=s.ApiKeyOut(many=True))
    def list(self, request):
        filters = s.ListFiltersIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(api_key_list(**filters.validated_data).select_related("replaced_by"))
        return self.get_paginated_response(s.ApiKeyOut(page, many=True).data)

    @extend_schema(request=s.ApiKeyWriteIn, responses={201: s.ApiKeyCreatedOut})
    def create(self, request):
        payload = s.ApiKeyWriteIn(data=request.data)
        payload.is_valid(raise_exception=True)
        key, raw = api_key_create(
            actor=Actor.from_request(request), acting_key=_acting_key(request), **payload.validated_data
        )
        return Response(s.ApiKeyCreatedOut(key, context={"key": raw}).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.ApiKeyDetailOut)
    def retrieve(self, request, pk=None):
        key = self.get_object()
        key.usage_summary = api_key_usage_summary(key=key)
        return Response(s.ApiKeyDetailOut(key).data)

    @extend_schema(request=s.ApiKeyWriteIn, responses=s.ApiKeyOut)
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(request=s.ApiKeyWriteIn, responses=s.ApiKeyOut)
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        key = self.get_object()
        payload = s.ApiKeyWriteIn(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        key = api_key_update(
            key=key, actor=Actor.from_request(request), acting_key=_acting_key(request), **payload.validated_data
        )
        return Response(s.ApiKeyOut(key).data)

    @extend_schema(responses={204: OpenApiResponse(description="Revoked (the row stays for audit).")})
    def destroy(self, request, pk=None):
        api_key_revoke(key=self.get_object(), actor=Actor.from_request(request), acting_key=_acting_key(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.RotateIn, responses={201: s.ApiKeyRotatedOut})
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        key = self.get_object()
        payload = s.RotateIn(data=request.data)
        payload.is_valid(raise_exception=True)
        new, raw = api_key_rotate(
            key=key,
            actor=Actor.from_request(request),
            acting_key=_acting_key(request),
            grace_period=payload.validated_data.get("grace_period", timedelta(0)),
        )
        return Response(s.ApiKeyRotatedOut(new, context={"key": raw}).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[s.UsageFiltersIn], responses=s.UsageOut)
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        key = self.get_object()
        filters = s.UsageFiltersIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        daily = api_key_usage_daily(key=key, days=filters.validated_data["days"])
        return Response(
            s.UsageOut(
                {
                    "days": len(daily),
                    "daily": daily,
                    "requests": sum(day["requests"] for day in daily),
                    "errors": sum(day["errors"] for day in daily),
                    "last_used_at": key.last_used_at,
                    "last_used_ip": key.last_used_ip,
                }
            ).data
        )
