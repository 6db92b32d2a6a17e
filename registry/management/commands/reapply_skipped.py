"""Apply the events projections skipped (poison events) again, after the fault is fixed."""

from django.core.management.base import BaseCommand

from registry.indexer import indexer_reapply_skipped


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--projection", help="only this projection's skipped events (its module path)")

    def handle(self, *args, **options):
        applied, failing = indexer_reapply_skipped(projection=options["projection"])
        self.stdout.write(f"{applied} skipped event(s) applied, {failing} still skipped")
        if failing:
            raise SystemExit(1)
