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


def test_eager_task_keeps_the_request_id_of_its_request():
    from jewelia.core.logging import current_request_id, reset_request_id, set_request_id

    token = set_request_id("req-outer")
    try:
        heartbeat.delay("x")
        assert current_request_id() == "req-outer"
    finally:
        reset_request_id(token)
