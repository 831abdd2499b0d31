import logging

from django.utils import timezone

from .cache import counters

logger = logging.getLogger(__name__)


class ApiKeyUsageMiddleware:
    """Count every request made with a verified API key, and whether it ended in an error (4xx/5xx).

    Authentication marks the request; the count is taken here because only middleware sees the final status of
    every response (including 403s, 429s and errors raised by views). One pipelined cache write per request;
    `api_key_usage_flush` moves the counts to the database.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        usage = getattr(request, "api_key_usage", None)
        if usage is not None:
            key_id, ip, accepted = usage
            now = timezone.now()
            try:
                counters().record(
                    key_id=key_id,
                    day=now.date(),
                    error=response.status_code >= 400,
                    used=(now, ip) if accepted else None,
                )
            except Exception:
                # Usage statistics must never turn a served request into an error.
                logger.exception("Could not record API-key usage for key %s", key_id)
        return response
