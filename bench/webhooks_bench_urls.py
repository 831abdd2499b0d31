"""The bench URLconf: the project's URLs plus the two views the webhook receiver is measured against.

- `api/bench/minimal/<integration uuid>/`: the least a durable receiver can do. Check the Stripe signature (the
  same scheme: `t=...,v1=...`, HMAC-SHA256 of `t.body`, constant-time, 300 s tolerance) with a secret known in
  advance, read the event id, and store the raw body with one raw-SQL `INSERT ... ON CONFLICT DO NOTHING`.
  No integration lookup, no parsed payload, no headers, no processing nudge.
- `api/bench/bare/`: a bare Django view answering 200: the ceiling of the server itself.

Both run behind the same middleware, in the same gunicorn workers, as the real receiver, and are routed the
same way: under `api/`, after every API route (URL resolution tries the project's routes in order, so a view
listed first would skip work the receiver cannot).
"""

import hashlib
import hmac
import json
import os
import time

from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from jewelia.urls import api_patterns
from jewelia.urls import urlpatterns as project_urlpatterns

SECRET = os.environ["BENCH_WEBHOOK_SECRET"].encode()
TABLE = "bench_minimal_webhook_events"


def _authentic(header: str, body: bytes) -> bool:
    pairs = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for key, value in pairs if key == "t"]
    if not timestamps or not timestamps[0].isdigit() or int(timestamps[0]) < time.time() - 300:
        return False
    expected = hmac.new(SECRET, timestamps[0].encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, value.encode()) for key, value in pairs if key == "v1")


@csrf_exempt
def minimal_durable(request, integration_id):
    body = request.body
    if not _authentic(request.headers.get("Stripe-Signature", ""), body):
        return JsonResponse({"error": "invalid signature"}, status=401)
    event_id = json.loads(body)["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (integration_id, event_id, body) VALUES (%s, %s, %s) "
            "ON CONFLICT (integration_id, event_id) DO NOTHING",
            [integration_id, event_id, body],
        )
    return JsonResponse({"received": True})


@csrf_exempt
def bare(request):
    return JsonResponse({"received": True})


bench_api_patterns = [
    *api_patterns,
    path("bench/minimal/<uuid:integration_id>/", minimal_durable),
    path("bench/bare/", bare),
]
urlpatterns = [
    *(pattern for pattern in project_urlpatterns if str(pattern.pattern) != "api/"),
    path("api/", include(bench_api_patterns)),
]
