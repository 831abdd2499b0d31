"""One error hierarchy and one renderer for the API's single error shape (DESIGN.md rule 6).

Every error leaves the API as::

    {"error": {"code": "...", "message": "...", "details": {...}, "request_id": "..."}}

Services raise `JeweliaError` subclasses; DRF and Django exceptions are translated here, once.
"""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status as http_status

from .logging import current_request_id

logger = logging.getLogger("jewelia.api")


class JeweliaError(Exception):
    """Base of the errors that services raise on purpose; each maps to one HTTP status and code."""

    status_code = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, details: dict | None = None, code: str | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        if code:
            self.code = code
        super().__init__(self.message)


class ValidationFailed(JeweliaError):
    status_code = 400
    code = "validation_error"
    default_message = "The request contains invalid data."


class NotFound(JeweliaError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(JeweliaError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state of the resource."


class RateLimited(JeweliaError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int, details: dict | None = None):
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, details={"retry_after": self.retry_after, **(details or {})})


def error_body(*, code: str, message: str, details: dict | None = None, request_id: str | None = None) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": request_id or current_request_id(),
        }
    }


def error_response(*, status: int, code: str, message: str, details: dict | None = None, request=None, headers=None):
    """A plain Django response with the error shape, for middleware and views outside DRF."""
    request_id = getattr(request, "request_id", None)
    response = JsonResponse(
        error_body(code=code, message=message, details=details, request_id=request_id), status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def payload_too_large_response(*, request, limit: int, what: str = "Request bodies"):
    """413 in the error shape, naming the limit (the API's body-size middleware and the webhook receivers)."""
    return error_response(
        status=413,
        code="payload_too_large",
        message=f"{what} are limited to {limit} bytes.",
        details={"limit_bytes": limit},
        request=request,
    )


_DRF_CODES = {
    drf_exceptions.ParseError: "parse_error",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
    drf_exceptions.ValidationError: "validation_error",
}


def _drf_details(exc: drf_exceptions.APIException) -> dict:
    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            return {"fields": detail}
        return {"non_field_errors": detail if isinstance(detail, list) else [detail]}
    return getattr(exc, "error_details", None) or {}


def _drf_message(exc: drf_exceptions.APIException) -> str:
    if isinstance(exc, drf_exceptions.ValidationError):
        return "The request contains invalid data."
    detail = exc.detail
    if isinstance(detail, list | dict):
        return str(exc.default_detail)
    return str(detail)


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every exception raised in an API view becomes the error shape."""
    from rest_framework.response import Response

    request = context.get("request")
    request_id = getattr(request, "request_id", None) or current_request_id()
    headers = {}

    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, RequestDataTooBig):
        exc = JeweliaError("Request body is too large.", code="payload_too_large")
        exc.status_code = 413

    if isinstance(exc, JeweliaError):
        status, code, message, details = exc.status_code, exc.code, exc.message, exc.details
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, drf_exceptions.APIException):
        status = exc.status_code
        code = getattr(exc, "error_code", None) or next(
            (name for cls, name in _DRF_CODES.items() if isinstance(exc, cls)), "error"
        )
        message, details = _drf_message(exc), _drf_details(exc)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait:
            details = {"retry_after": int(exc.wait)}
    else:
        logger.exception("Unhandled error in API view %s", context.get("view").__class__.__name__)
        status, code = http_status.HTTP_500_INTERNAL_SERVER_ERROR, "internal_error"
        message, details = "An unexpected error occurred. Quote the request id when reporting it.", {}

    response = Response(error_body(code=code, message=message, details=details, request_id=request_id), status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def handler404(request, exception=None):
    if _wants_json(request):
        return error_response(status=404, code="not_found", message="Not found.", request=request)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _wants_json(request):
        return error_response(
            status=500,
            code="internal_error",
            message="An unexpected error occurred. Quote the request id when reporting it.",
            request=request,
        )
    from django.views.defaults import server_error

    return server_error(request)
