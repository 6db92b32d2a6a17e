"""Retention: expired SIWE nonces and refused anonymous download records are purged on a schedule;
every other record stays."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from marketplace import services
from marketplace.models import Download, SiweNonce

pytestmark = pytest.mark.django_db


def aged(row, **delta):
    """Move a row's creation back in time (auto_now_add ignores a value given on create)."""
    type(row).objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(**delta))
    return row


def download(user=None, status=403, **age):
    row = Download.objects.create(
        user=user, repo_id="acme/tiny", revision="main", path="model.gguf", method="GET", status_code=status,
        error_code="" if status < 400 else "GatedRepo",
    )
    return aged(row, **age) if age else row


def test_purge_deletes_expired_nonces_past_their_retention_only(settings):
    settings.SIWE_NONCE_RETENTION_HOURS = 24
    now = timezone.now()
    long_expired = SiweNonce.objects.create(nonce="old", expires_at=now - timedelta(hours=25))
    used_long_ago = SiweNonce.objects.create(nonce="used", expires_at=now - timedelta(hours=30), used_at=now - timedelta(hours=31))
    recently_expired = SiweNonce.objects.create(nonce="recent", expires_at=now - timedelta(hours=23))
    live = services.siwe_nonce_create()

    result = services.expired_records_purge()

    assert result.siwe_nonces == 2
    assert set(SiweNonce.objects.values_list("nonce", flat=True)) == {recently_expired.nonce, live.nonce}
    assert not SiweNonce.objects.filter(pk__in=[long_expired.pk, used_long_ago.pk]).exists()


def test_purge_deletes_old_refused_anonymous_downloads_and_keeps_every_other_record(settings, django_user_model):
    settings.REFUSED_DOWNLOAD_RETENTION_DAYS = 30
    buyer = django_user_model.objects.create_user("buyer")
    old_anonymous_refusals = [download(status=401, days=31), download(status=429, days=40), download(status=404, days=31)]
    kept = [
        download(status=401, days=29),  # refused, anonymous, but recent
        download(user=buyer, status=403, days=90),  # refused, but whose it was is known
        download(status=200, days=90),  # granted
        download(status=206, days=90),
    ]

    result = services.expired_records_purge()

    assert result.refused_downloads == len(old_anonymous_refusals)
    assert set(Download.objects.values_list("pk", flat=True)) == {row.pk for row in kept}


def test_purge_deletes_a_backlog_larger_than_one_batch():
    rows = [download(status=401) for _ in range(7)]
    Download.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=timezone.now() - timedelta(days=31))
    assert services.expired_records_purge(batch=3).refused_downloads == 7
    assert not Download.objects.exists()


def test_the_command_and_the_periodic_task_run_the_purge(settings, capsys):
    from marketplace.tasks import purge_expired_task

    assert settings.CELERY_BEAT_SCHEDULE["purge-expired"]["task"] == purge_expired_task.name
    SiweNonce.objects.create(nonce="old", expires_at=timezone.now() - timedelta(days=2))
    download(status=401, days=31)
    call_command("purge_expired")
    assert "deleted 1 expired SIWE nonces and 1 refused anonymous downloads" in capsys.readouterr().out
    SiweNonce.objects.create(nonce="old-again", expires_at=timezone.now() - timedelta(days=2))
    assert purge_expired_task.apply().get() == 1
    assert not SiweNonce.objects.exists() and not Download.objects.exists()
