import io

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream

from .exceptions import payload_too_large_response
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
    """Refuse API bodies over `API_MAX_BODY_BYTES` from the declared length, before anything reads them; and read
    chunked bodies (no Content-Length) up to the limit, so they are seen at all.

    Django reads a WSGI body only up to its Content-Length, so a `Transfer-Encoding: chunked` request (which
    gunicorn decodes and marks with `wsgi.input_terminated`) would look empty: a signed webhook would fail its
    verification and an API write would lose its data. Such bodies are buffered here, at most the limit + 1
    bytes, and given the Content-Length they turned out to have. Webhook paths get their receiver's limit
    (`WEBHOOKS_MAX_BODY_BYTES`); the receiver applies the declared-length check itself, so it can answer with its
    own error before looking up the integration.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        webhook = request.path.startswith("/api/webhooks/")
        limit = settings.WEBHOOKS_MAX_BODY_BYTES if webhook else settings.API_MAX_BODY_BYTES
        if _is_unsized_stream(request.META):
            body = request.META["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return payload_too_large_response(request=request, limit=limit)
            request.META["CONTENT_LENGTH"] = str(len(body))
            request._stream = LimitedStream(io.BytesIO(body), len(body))
        elif request.path.startswith("/api/") and not webhook and _declared_length(request.META) > limit:
            return payload_too_large_response(request=request, limit=limit)
        return self.get_response(request)


def _is_unsized_stream(meta) -> bool:
    """A request whose body ends where the server says (chunked), not at a declared Content-Length."""
    return (
        not meta.get("CONTENT_LENGTH")
        and bool(meta.get("wsgi.input_terminated"))
        and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def _declared_length(meta) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
