from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        checks.register(check_retention)
        from integrations import extensions

        extensions.register(extensions.health_sources, _health_figures)
        extensions.register(extensions.retention_jobs, _prune)
        extensions.register(extensions.on_resumed, _release_held)
        extensions.register(extensions.admin_summaries, _admin_summary)
        from webhooks.secrets import PREVIOUS, ROTATED_AT, SECRET

        extensions.kept_credential_keys.update({SECRET, PREVIOUS, ROTATED_AT})


def _health_figures(*, integration, now):
    """Webhook figures for integration health: dead events or a high failure rate need a person; a missing secret
    is mentioned in the reason."""
    from webhooks.selectors import webhook_health_figures

    figures = webhook_health_figures(integration=integration, now=now)
    problems = []
    if figures and not figures["secret_configured"]:
        # Polling still works, so this is said, not counted as degraded.
        figures["note"] = "No webhook secret is set: every delivery is refused."
    if figures.get("dead"):
        problems.append(f"{figures['dead']} webhook events are dead (replay them once the cause is fixed).")
    if figures.get("received_24h", 0) >= 4 and figures.get("error_rate_24h", 0) >= 0.5:
        problems.append(f"{figures['failed_24h']} of {figures['received_24h']} webhook events failed in 24 h.")
    if problems:
        figures["problem"] = " ".join(problems)
    return "webhooks", figures


def _admin_summary(*, integration, request):
    """The integration admin page's webhook line: the URL to enter in the provider's dashboard, whether a secret
    is set, and a link to the events."""
    from django.urls import reverse
    from django.utils.html import format_html

    from webhooks.selectors import webhook_endpoint_get, webhook_secret_configured

    endpoint = webhook_endpoint_get(integration=integration)
    if endpoint is None:
        return None
    if webhook_secret_configured(integration=integration):
        secret = "signing secret set"
    elif endpoint.app_level:
        secret = f"no app secret: set {endpoint.secret_setting}, every delivery is refused until then"
    else:
        secret = "no signing secret: set one with POST .../webhooks/secret/, every delivery is refused until then"
    events = reverse("admin:webhooks_webhookevent_changelist") + f"?integration__id__exact={integration.pk}"
    return "Webhooks", format_html(
        '<code>{}</code>{} ({}; <a href="{}">events</a>)',
        request.build_absolute_uri(endpoint.path),
        " (one URL for every company of the app)" if endpoint.app_level else "",
        secret,
        events,
    )


def _prune():
    from webhooks.services.inbox import webhook_events_prune

    return webhook_events_prune()


def _release_held(*, integration):
    from webhooks.services.inbox import webhook_events_release_held

    webhook_events_release_held(integration=integration)


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
