"""Verify a directory of model files against the chain: `manage.py verify_model DIR REPO_ID REVISION`.

DIR is the folder as downloaded: a `hf download --local-dir` / `snapshot_download(local_dir=...)`
folder, or a huggingface_hub cache's `snapshots/<commit>/` folder (the same rule as
`hallmark verify`, in `hallmark.verify.verify_directory`).

Exit codes: 0 verified, 2 DIR is not a directory, 3 tampered file, 4 extra or missing files (or a
symbolic link that is not the cache's own, an unsafe name, an unreadable file), 5 revoked,
6 unknown model or version, 7 chain unreachable, 8 published by someone other than the vendor."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from hallmark.verify import Outcome
from marketplace import selectors
from marketplace.errors import NotFound
from registry.verification import verify_local_files


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("repo_id", help="<vendor>/<model>")
        parser.add_argument("revision", help="main, v<N> or the 40-hex commit id")
        parser.add_argument("--json", action="store_true")

    def handle(self, directory, repo_id, revision, **options):
        vendor_slug, _, model_slug = repo_id.partition("/")
        try:
            model = selectors.model_get_by_repo(vendor_slug=vendor_slug, model_slug=model_slug)
            version = selectors.version_resolve(model=model, revision=revision)
        except NotFound as exc:
            self._finish({"outcome": "unknown_version", "exit_code": int(Outcome.UNKNOWN_VERSION), "message": exc.message}, options)
            return
        try:
            result = verify_local_files(
                directory=directory, model_id=model.chain_model_id, version=version.number,
                manifest=version.manifest, metadata=version.metadata,
            )
        except FileNotFoundError as exc:
            raise CommandError(f"{exc.filename} is not a directory: give the folder the files were downloaded to", returncode=2) from exc
        self._finish(result.as_dict(), options)

    def _finish(self, report: dict, options) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(f"{report['outcome']}: {report['message']}")
        sys.exit(report["exit_code"])
