"""Run the chain indexer once, or keep running it (`--loop`): what Celery beat does when Redis
is available, for setups without a worker (e.g. `make run` with no Redis)."""

import time

from django.core.management.base import BaseCommand

from registry.chain import ChainError
from registry.indexer import indexer_run


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep indexing until interrupted")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between runs with --loop")

    def handle(self, *args, **options):
        while True:
            try:
                run = indexer_run()
                if run.events or run.rolled_back_to is not None or not options["loop"]:
                    self.stdout.write(
                        f"indexed to block {run.to_block}: {run.events} new event(s)"
                        + (f", rolled back to {run.rolled_back_to}" if run.rolled_back_to is not None else "")
                    )
            except ChainError as exc:
                self.stderr.write(f"[{exc.code}] {exc}")
                if not options["loop"]:
                    raise SystemExit(7) from exc
            if not options["loop"]:
                return
            time.sleep(options["interval"])
