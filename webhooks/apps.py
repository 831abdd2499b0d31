from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        checks.register(check_retention)


def check_retention(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The retention period is also the de-duplication window: shorter than 7 days, a provider retrying for its
    full window (Stripe: 3 days) could get an event processed twice."""
    from webhooks.models import MIN_RETENTION_DAYS

    errors = []
    for name in ("WEBHOOKS_RETENTION_DAYS", "WEBHOOKS_FAILED_RETENTION_DAYS"):
        if getattr(settings, name) < MIN_RETENTION_DAYS:
            errors.append(
                checks.Error(
                    f"{name} must be at least {MIN_RETENTION_DAYS} days (it is the de-duplication window).",
                    id="webhooks.E001",
                )
            )
    return errors
