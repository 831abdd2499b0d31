from django.conf import settings

from .exceptions import error_response
from .logging import new_request_id, reset_request_id, set_request_id


class RequestIdMiddleware:
    """Give every request an id (the caller's `X-Request-ID` when sane), echo it, and log with it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = new_request_id(request.headers.get("X-Request-ID"))
        token = set_request_id(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-ID"] = request.request_id
        return response


class ApiBodySizeLimitMiddleware:
    """Refuse API bodies over `API_MAX_BODY_BYTES` from the declared length, before anything reads them.

    Webhook paths are skipped: the webhook receiver applies its own, per-endpoint limit.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and not request.path.startswith("/api/webhooks/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.API_MAX_BODY_BYTES:
                return error_response(
                    status=413,
                    code="payload_too_large",
                    message=f"Request body is larger than the {settings.API_MAX_BODY_BYTES}-byte limit.",
                    details={"limit_bytes": settings.API_MAX_BODY_BYTES},
                    request=request,
                )
        return self.get_response(request)
