"""The Celery app: Redis broker from REDIS_URL; without one, tasks run eagerly in-process."""

import os

from celery import Celery

from telemetry.logs import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("hallmark")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery_signals()  # the request id travels with a task; the worker keeps Django's LOGGING
