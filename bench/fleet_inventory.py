#!/usr/bin/env python
"""The server's cost of a fleet reporting in: 1,000 devices each POSTing its signed inventory
(`POST /api/v1/devices/<address>/inventory`), beside the floor of any JSON POST served the same
way (the anchor: `/bench/bare-post`, a plain Django view that parses the same body).

    .venv/bin/python bench/fleet_inventory.py                    # 1,000 devices, 5 models each
    .venv/bin/python bench/fleet_inventory.py --devices 200 --models-per-device 20   # a quick try

A throw-away PostgreSQL database (`--database`, its name must contain "bench") is migrated and
given a catalog of live models (bench/catalog_page.py's `write_catalog`). One owner registers
`--devices` devices through the real services (a `register` challenge each, signed with the
device's own key), and each device gets a device token (a `token` challenge). Then, in this
process (DEBUG off, the Django test client, one persistent connection), every device reports an
inventory of `--models-per-device` entries from that catalog (some on an outdated version),
signed with its key (EIP-191 over the canonical JSON). Measured per report: the whole request
(token, signature recovery, validation, the device's rows replaced in one transaction, the
answer's revoked/outdated comparison), and the same bodies posted to the anchor.

Printed: p50, p95 and total of each, the ratio, reports per second, SQL queries per report, and
the signature recovery alone (the cryptography's share of a report).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stack import cleanup_on_sigterm, commit_note, load_note, postgres_reachable, throwaway_postgres  # noqa: E402
from bench.catalog_page import percentile, write_catalog  # noqa: E402


def canonical(inventory: dict) -> str:
    return json.dumps(inventory, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--models-per-device", type=int, default=5)
    parser.add_argument("--catalog", type=int, default=50, help="live models in the catalog the inventories name")
    parser.add_argument("--database", default="hallmark_fleet_bench", help="throw-away database name; must contain 'bench'")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    if "bench" not in args.database:
        parser.error("--database: it is dropped and created; its name must contain 'bench'")
    note = f"{commit_note()}; {load_note()}"
    cleanup_on_sigterm()
    if not postgres_reachable(args.pg_server):
        return 0
    with throwaway_postgres(args.database, args.pg_server) as url:
        return run(args, url, note)


def run(args, url: str, note: str) -> int:  # noqa: C901 - one straight script
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="bench.settings_bench", DEBUG="0", REDIS_URL="",
                      SECRET_KEY="hallmark-bench-" + secrets.token_hex(16), LOG_LEVEL="WARNING",
                      ALLOWED_HOSTS="testserver", API_RATE_LIMIT="100000000/min", DEVICE_AUTH_RATE_LIMIT="100000000/min",
                      SECURE_SSL_REDIRECT="0")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_utils import keccak

    from fleet import services as fleet_services

    print(f"migrating {url} ...", file=sys.stderr)
    call_command("migrate", interactive=False, verbosity=0)
    catalog = write_catalog(models=args.catalog, vendors=5, prefix="fleet")
    owner = get_user_model().objects.create_user(username="fleet-owner", password=None)

    print(f"registering {args.devices:,} devices and issuing their tokens ...", file=sys.stderr)
    keys = [Account.from_key(keccak(text=f"hallmark fleet bench device {i}")) for i in range(args.devices)]
    started = time.perf_counter()
    tokens = []
    for i, key in enumerate(keys):
        challenge = fleet_services.challenge_create(address=key.address, purpose="register", domain="testserver")
        signature = key.sign_message(encode_defunct(text=challenge.message)).signature.hex()
        fleet_services.device_register(owner=owner, address=key.address, name=f"device-{i}", message=challenge.message,
                                       signature="0x" + signature.removeprefix("0x"))
        challenge = fleet_services.challenge_create(address=key.address, purpose="token", domain="testserver")
        signature = key.sign_message(encode_defunct(text=challenge.message)).signature.hex()
        _, plaintext = fleet_services.device_token_issue(address=key.address, message=challenge.message,
                                                         signature="0x" + signature.removeprefix("0x"))
        tokens.append(plaintext)
    enrol_seconds = time.perf_counter() - started

    def body_for(i: int, moment: str) -> bytes:
        entries = []
        for k in range(args.models_per_device):
            model = catalog[(i * 7 + k) % len(catalog)]
            latest = model.latest_version_number
            version = latest if (i + k) % 4 else max(1, latest - 1)  # a quarter outdated (when there is an older one)
            entries.append({"repo_id": f"{model.vendor.slug}/{model.slug}", "model_id": model.chain_model_id,
                            "version": version, "root_digest": "0x" + keccak(text=f"{model.pk}:{version}").hex().removeprefix("0x"),
                            "status": "installed", "reason": ""})
        inventory = {"device": keys[i].address, "reported_at": moment, "models": entries}
        signature = keys[i].sign_message(encode_defunct(text=canonical(inventory))).signature.hex()
        return json.dumps({"inventory": inventory, "signature": "0x" + signature.removeprefix("0x")}).encode()

    from django.utils import timezone

    moment = timezone.now().isoformat(timespec="seconds").replace("+00:00", "Z")
    bodies = [body_for(i, moment) for i in range(args.devices)]
    client = Client()

    # warm-up: a few of each (they are not counted)
    for i in range(min(5, args.devices)):
        client.post("/bench/bare-post", bodies[i], content_type="application/json")

    ours, anchor = [], []
    with CaptureQueriesContext(connection) as queries:
        first = client.post(f"/api/v1/devices/{keys[0].address}/inventory", bodies[0], content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {tokens[0]}")
    assert first.status_code == 200, first.content[:300]
    queries_per_report = len(queries.captured_queries)
    for i in range(args.devices):
        start = time.perf_counter()
        response = client.post(f"/api/v1/devices/{keys[i].address}/inventory", bodies[i], content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {tokens[i]}")
        ours.append(time.perf_counter() - start)
        assert response.status_code == 200, (i, response.status_code, response.content[:300])
        assert response.json()["received"] == args.models_per_device
        start = time.perf_counter()
        response = client.post("/bench/bare-post", bodies[i], content_type="application/json")
        anchor.append(time.perf_counter() - start)
        assert response.status_code == 200

    inventory = json.loads(bodies[0])
    text = canonical(inventory["inventory"])
    recover = []
    for _ in range(200):
        start = time.perf_counter()
        Account.recover_message(encode_defunct(text=text), signature=inventory["signature"])
        recover.append(time.perf_counter() - start)

    def ms(samples, pct):
        return percentile(samples, pct) * 1000

    print(f"# {args.devices:,} devices reporting {args.models_per_device} models each; PostgreSQL, one process ({note})")
    print(f"enrolment (register + token, both challenge-signed): {enrol_seconds:.1f} s, {enrol_seconds / args.devices * 1000:.1f} ms a device")
    print(f"{'':<26} {'p50':>8} {'p95':>8} {'total':>9} {'per second':>11}")
    print(f"{'inventory report (ours)':<26} {ms(ours, 50):>6.2f}ms {ms(ours, 95):>6.2f}ms {sum(ours):>8.2f}s {len(ours) / sum(ours):>10.0f}")
    print(f"{'bare JSON POST (anchor)':<26} {ms(anchor, 50):>6.2f}ms {ms(anchor, 95):>6.2f}ms {sum(anchor):>8.2f}s {len(anchor) / sum(anchor):>10.0f}")
    print(f"ratio ours / anchor: p50 {percentile(ours, 50) / percentile(anchor, 50):.1f}x, total {sum(ours) / sum(anchor):.1f}x")
    print(f"SQL queries per report: {queries_per_report}; signature recovery alone: p50 {ms(recover, 50):.2f}ms "
          f"({statistics.fmean(recover) / statistics.fmean(ours) * 100:.0f}% of a report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
