"""Drop the royalty ledger and rebuild it from the indexed chain events alone."""

from django.core.management.base import BaseCommand

from royalties.ledger import ledger_rebuild, ledger_reconcile
from royalties.models import LedgerEntry, LedgerLine


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--reconcile", action="store_true", help="then compare every balance with creditOf on chain")

    def handle(self, *args, **options):
        written = ledger_rebuild()
        self.stdout.write(f"rebuilt the ledger: {written} entries, {LedgerLine.objects.count()} lines "
                          f"({LedgerEntry.objects.filter(kind='purchase').count()} purchases)")
        if options["reconcile"]:
            drift = ledger_reconcile()
            self.stdout.write("every balance matches the chain" if not drift else f"{len(drift)} payee(s) drift: see the admin")
