import time
import uuid

import pytest
from django.core.cache import cache

from jewelia.core.tasks import heartbeat


@pytest.mark.services
def test_real_worker_consumes_tasks_from_redis(celery_worker_process):
    token = uuid.uuid4().hex
    heartbeat.delay(token)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and cache.get(f"heartbeat:{token}") != "seen":
        time.sleep(0.1)
    assert cache.get(f"heartbeat:{token}") == "seen"
