import logging

from .cache import key_store

logger = logging.getLogger(__name__)


class ApiKeyUsageMiddleware:
    """Count API-key requests that ended in an error (4xx/5xx) towards their key's daily usage.

    Authentication already counted the request itself; whether it failed is known only from the final
    response (a 403, a 429, a validation error or a 500 raised by the view), which only middleware sees.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        usage = getattr(request, "api_key_usage", None)
        if usage is not None and response.status_code >= 400:
            key_id, day = usage
            try:
                key_store().count_error(key_id=key_id, day=day)
            except Exception:
                # Usage statistics must never turn a served request into an error.
                logger.exception("Could not count an API-key error for key %s", key_id)
        return response
