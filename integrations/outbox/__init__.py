"""Push sync through an outbox (DESIGN.md "Sync (push)"): local change -> outbox row in the same transaction ->
task sends it -> external id in the identity map.

- `outbox_enqueue_for(event=..., obj=...)`: what the orders services call inside their transactions;
- `services`: sending, retries, the sweeper, staff retries and the push-rule configuration;
- `rules`: which events may push to which provider resources;
- `snapshots`: the provider-independent canonical records built from local rows.
"""

from integrations.outbox.services import outbox_enqueue_for

__all__ = ["outbox_enqueue_for"]
