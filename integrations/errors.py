"""The small family of provider errors (DESIGN.md rule 4). The shared HTTP layer raises them; nothing else
should need to look at a status code to decide whether to retry.

- `TransientError` (and its `RateLimitedError`): retry later, honouring `retry_after` when known.
- `AuthError`: credentials rejected after one refresh attempt; the integration becomes `disconnected`.
- `PermanentError`: the provider refused the request for good (4xx other than 401/429); no retry.
- `BadRecordError`: one record could not be transformed or written; it fails alone, the run goes on.
"""


class ProviderError(Exception):
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None, details=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.details = details or {}


class TransientError(ProviderError):
    retryable = True


class RateLimitedError(TransientError):
    pass


class AuthError(ProviderError):
    pass


class PermanentError(ProviderError):
    pass


class BadRecordError(ProviderError):
    def __init__(self, message: str, *, external_id: str = "", payload=None, **kwargs):
        super().__init__(message, **kwargs)
        self.external_id = external_id
        self.payload = payload
