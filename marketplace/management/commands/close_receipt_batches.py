"""Close due download-receipt batches and anchor them, once or in a loop (`--loop`): what Celery
beat's `marketplace.close_receipt_batches` does, for setups without a worker (`make run` with no
Redis) or by hand. A batch the chain cannot take now waits for the next run (docs/recorder.md)."""

import time

from django.core.management.base import BaseCommand

from marketplace.services import receipt_batches_run


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running until interrupted")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between runs with --loop")

    def handle(self, *args, **options):
        while True:
            run = receipt_batches_run()
            if run.closed or run.anchored or not options["loop"]:
                self.stdout.write(f"{run.closed} batch(es) closed, {run.anchored} anchored, {run.waiting} waiting")
            if not options["loop"]:
                return
            time.sleep(options["interval"])
