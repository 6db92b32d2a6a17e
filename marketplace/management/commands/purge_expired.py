"""`manage.py purge_expired`: delete expired SIWE nonces and old refused anonymous download records."""

from django.core.management.base import BaseCommand

from marketplace import services


class Command(BaseCommand):
    help = (
        "Delete Sign-In with Ethereum nonces expired more than SIWE_NONCE_RETENTION_HOURS ago and refused anonymous "
        "download records older than REFUSED_DOWNLOAD_RETENTION_DAYS (Celery beat runs the same every hour)."
    )

    def handle(self, *args, **options):
        result = services.expired_records_purge()
        self.stdout.write(f"deleted {result.siwe_nonces} expired SIWE nonces and {result.refused_downloads} refused anonymous downloads")
