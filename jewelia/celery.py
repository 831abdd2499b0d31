"""The Celery app. Settings come from Django's (`CELERY_` namespace); tasks are found in each app's `tasks.py`."""

import contextlib
import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jewelia.settings.local")

app = Celery("jewelia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _carry_request_id(headers=None, **_kwargs):
    """Carry the current request id into the task so its log lines can be joined with the request's."""
    from jewelia.core.logging import current_request_id

    if headers is not None and current_request_id():
        headers.setdefault("request_id", current_request_id())


_task_tokens: dict = {}


@task_prerun.connect
def _restore_request_id(task_id=None, task=None, **_kwargs):
    """Log a task's lines under the id of the request that enqueued it (or its own task id)."""
    from jewelia.core.logging import current_request_id, set_request_id

    inherited = getattr(task.request, "request_id", None) or current_request_id()
    _task_tokens[task_id] = set_request_id(inherited or f"task-{task_id}")


@task_postrun.connect
def _reset_request_id(task_id=None, **_kwargs):
    """Put the previous id back, so an eager task inside a request does not relabel the request's later lines."""
    from jewelia.core.logging import reset_request_id

    token = _task_tokens.pop(task_id, None)
    if token is not None:
        # A token set in another context (a worker thread) has nothing to restore here.
        with contextlib.suppress(ValueError):
            reset_request_id(token)
