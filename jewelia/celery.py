"""The Celery app. Settings come from Django's (`CELERY_` namespace); tasks are found in each app's `tasks.py`."""

import os

from celery import Celery
from celery.signals import before_task_publish, task_prerun

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


@task_prerun.connect
def _restore_request_id(task=None, **_kwargs):
    from jewelia.core.logging import set_request_id

    set_request_id(getattr(task.request, "request_id", None) or f"task-{task.request.id}")
