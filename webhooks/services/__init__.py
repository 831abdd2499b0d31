"""Writes of the webhooks app. Import from here: `from webhooks.services import webhook_events_release_held`.

- `receiving`: the receivers' hot path (verify, parse, store once, nudge), per integration;
- `app_receiving`: the provider-level receiver (one URL per developer app), routing each account's part;
- `processing`: claiming, handling through the provider and the sync engine's writers, retries, the sweeper;
- `inbox`: hand-made events, replays, held events, webhook secrets, pruning, the counters flush.
"""

from webhooks.services.app_receiving import app_delivery_accept, app_webhook_provider_get
from webhooks.services.inbox import (
    webhook_counters_flush,
    webhook_event_create_manual,
    webhook_event_replay,
    webhook_events_prune,
    webhook_events_release_held,
    webhook_events_replay_bulk,
    webhook_secret_set,
)
from webhooks.services.processing import (
    drain_nudge,
    webhook_event_process,
    webhook_event_process_claimed,
    webhook_events_drain,
    webhook_events_sweep,
)
from webhooks.services.receiving import delivery_accept, webhook_target_get

__all__ = [
    "app_delivery_accept",
    "app_webhook_provider_get",
    "delivery_accept",
    "drain_nudge",
    "webhook_counters_flush",
    "webhook_event_create_manual",
    "webhook_event_process",
    "webhook_event_process_claimed",
    "webhook_event_replay",
    "webhook_events_drain",
    "webhook_events_prune",
    "webhook_events_release_held",
    "webhook_events_replay_bulk",
    "webhook_events_sweep",
    "webhook_secret_set",
    "webhook_target_get",
]
