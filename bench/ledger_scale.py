#!/usr/bin/env python
"""The royalty ledger and the catalog at scale on PostgreSQL: a vendor's monthly statement, a
buyer's licence list and a catalog search over 100,000 purchases of 1,000 models.

    .venv/bin/python bench/ledger_scale.py                          # 100,000 purchases, 1,000 models
    .venv/bin/python bench/ledger_scale.py --purchases 10000 --models 200 --runs 50   # a quick try
    .venv/bin/python bench/ledger_scale.py --keep                   # leave the database for psql

A throw-away database (`--database`, default hallmark_ledger_bench; its name must contain
"bench": it is dropped before and after) is created with createdb on `--pg-server` and migrated
(`manage.py migrate` with DATABASE_URL pointing at it). For this benchmark only, the generator
writes ledger rows directly (bulk_create in `--batch` rows), as the indexer's projections would
have written them from the chain:

- `--vendors` vendors (user, wallet, Vendor) and `--buyers` buyers (user, wallet);
- `--models` live, listed models with catalog facts (architecture, quantization, file formats,
  parameter count, latest version number) and lineages of depth 0-3 (`upstream_bps` on derived
  models), ModelCreated and VersionPublished ChainEvents (1-5 versions each over the year);
- `--purchases` purchases over `--months` months, as LedgerEntry rows with balanced LedgerLine
  rows split by royalties.rules.royalty_split (the contract's rule: a 2.5% platform fee, each
  ancestor's share, the vendor's rest; the payer's line balances them), the License mirror (the
  latest expiry per model and licensee), and the LicensePurchased / RoyaltyCredited / PlatformFeeCredited ChainEvents
  the indexer would have stored for them (skip with --no-money-events); a monthly Withdrawn for
  every other vendor;
- one heavy vendor (`--heavy-vendor-models` models, about `--heavy-vendor-share` of the sales,
  some of its models ancestors of other vendors' models) and one heavy buyer
  (`--heavy-buyer-licences` licences, each bought early and renewed in the last 25 days).

`ANALYZE` runs after loading (as autovacuum would). Then, in this process (DEBUG off, one
persistent connection), each query runs `--runs` times after 5 warm-ups; p50 and p95 are shown:

- statement: royalties.selectors.statement_build for the heavy vendor over the last full
  calendar month as the API calls it (totals summed in SQL, the first page of 100 lines); the
  same with every line, and for the median vendor (context);
- licences: royalties.selectors.licenses_held for the heavy buyer;
- catalog: marketplace.selectors.model_search(file_format="gguf", quantization="Q4_K_M",
  min_parameters=1e9, ordering="-parameters"), one page of 20 through Django's Paginator (a
  COUNT and the page, as the API does), every row's vendor slug read;
- catalog, text: model_search(q="llama", ordering="newest"), the same way (context).

Every SQL query of one run of each is captured; the slowest query shapes are shown with their
EXPLAIN (ANALYZE, BUFFERS) plan. Then the indexes this benchmark recommends (INDEXES below) are
created in the throw-away database unless the migrations already have an equal one, and
everything is measured again, then once more with the planner settings (SETTINGS below). The
statement's first page is checked against the whole statement (every line added up gives the
figures summed in SQL). Target: p95 < 50 ms for each of the three.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import os
import random
import re
import secrets
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _stack import cleanup_on_sigterm, commit_note, load_note, postgres_reachable, throwaway_postgres  # noqa: E402

TARGET_MS = 50
FEE_BPS = 250
GENESIS_BLOCK = 1_000_000
BLOCK_SECONDS = 12
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ARCHITECTURES = ["llama", "qwen2", "phi3", "gemma2", "mistral", "smollm", "bert", "whisper"]
QUANTIZATIONS = ["Q4_K_M", "Q4_0", "Q5_K_M", "Q8_0", "F16", "int8", "int4", ""]
FORMATS = [",gguf,", ",gguf,", ",gguf,", ",safetensors,", ",onnx,", ",gguf,safetensors,"]
DURATIONS = [0, 0, 30 * 86400, 90 * 86400, 365 * 86400]

# The indexes this benchmark recommends, created in the throw-away database only (see docs/benchmarks.md).
INDEXES = {
    "chainevent_name_model": (
        "the ledger projection's version attribution (royalties.ledger.version_at, once per purchase) filters ChainEvent by name and "
        "the JSON key modelId; only `name` is indexed, so each query reads every VersionPublished event",
        "CREATE INDEX chainevent_name_model ON registry_chainevent (name, (args -> 'modelId'))",
    ),
    "ledgerline_account_time_amount": (
        "statement_build's opening and closing balances sum every line of the vendor's credit account before a date: "
        "with the amount in the index they are index-only scans (it can replace ledgerline_account_time, same keys)",
        "CREATE INDEX ledgerline_account_time_amount ON royalties_ledgerline (account, occurred_at) INCLUDE (amount_wei)",
    ),
    "ledgerentry_purchase_model_time": (
        "statement_build's sales: purchases of the vendor's models in the month (the planner otherwise reads every "
        "entry of the month through the occurred_at index and filters by model)",
        "CREATE INDEX ledgerentry_purchase_model_time ON royalties_ledgerentry (model_id, occurred_at) WHERE kind = 'purchase'",
    ),
    "license_licensee": (
        "licenses_held: the licences of a wallet (the unique constraint's index leads with model_id, so this is a "
        "sequential scan of the whole mirror)",
        "CREATE INDEX license_licensee ON royalties_license (licensee)",
    ),
}

# Planner settings for the last stage: an SSD's random reads cost about as much as sequential
# ones (the default 4 is for spinning disks), and on 2 cores starting parallel workers costs more
# than these small queries save.
SETTINGS = ["SET random_page_cost = 1.1", "SET max_parallel_workers_per_gather = 0"]


def create_indexes() -> dict[str, str]:
    """Create INDEXES in the throw-away database, except where the migrations already made an
    index with the same definition (whatever its name); says which for each."""
    from django.db import connection, transaction

    def definitions(table: str) -> dict[str, str]:
        """{index name: its definition without the name}"""
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
            return {name: re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON ", "", d) for name, d in cursor.fetchall()}

    class Duplicate(Exception):
        pass

    notes = {}
    for name, (_why, sql) in INDEXES.items():
        table = re.search(r" ON (\w+) ", sql).group(1)
        before = definitions(table)
        made = f"bench_{name}" if name in before else name
        try:
            with transaction.atomic():  # rolled back if the schema already has it
                with connection.cursor() as cursor:
                    cursor.execute(sql.replace(f"CREATE INDEX {name} ", f"CREATE INDEX {made} ", 1))
                mine = definitions(table)[made]
                same = [other for other, definition in before.items() if definition == mine]
                if same:
                    raise Duplicate(same[0])
            notes[name] = "created here"
        except Duplicate as exc:
            notes[name] = f"already in the migrations as {exc}: not created again"
    return notes


def address(kind: int, i: int) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(f"0x{kind:02x}{i:038x}")


def digest(*parts) -> str:
    return "0x" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def block_at(start: datetime, t: datetime) -> int:
    return GENESIS_BLOCK + int((t - start).total_seconds()) // BLOCK_SECONDS


# ------------------------------------------------------------------------------------- generator


class Generator:
    def __init__(self, args, now: datetime):
        self.args = args
        self.rng = random.Random(args.seed)
        self.now = now
        self.start = now - timedelta(days=30 * args.months)
        self.batch = args.batch
        self.log_index: dict[int, int] = defaultdict(int)  # next log index per block
        self.events: list = []
        self.counts: dict[str, int] = defaultdict(int)

    # ---- helpers

    def next_log(self, block: int) -> int:
        i = self.log_index[block]
        self.log_index[block] += 1
        return i

    def event(self, name: str, block: int, t: datetime, tx: str, log: int, args: dict) -> None:
        from registry.models import ChainEvent

        self.events.append(ChainEvent(
            contract=CONTRACT, block_number=block, block_hash=digest("block", block), block_timestamp=t,
            tx_hash=tx, log_index=log, name=name, args=args,
        ))
        if len(self.events) >= self.batch:
            self.flush_events()

    def flush_events(self) -> None:
        from registry.models import ChainEvent

        ChainEvent.objects.bulk_create(self.events, batch_size=self.batch)
        self.counts["chain events"] += len(self.events)
        self.events = []

    # ---- people and models

    def people(self) -> None:
        from django.contrib.auth import get_user_model

        from marketplace.models import Vendor, Wallet

        User = get_user_model()
        a = self.args
        users = [User(username=f"bench-vendor-{j}", password="!") for j in range(a.vendors)]
        users += [User(username=f"bench-buyer-{k}", password="!") for k in range(a.buyers)]
        User.objects.bulk_create(users, batch_size=self.batch)
        users = list(User.objects.filter(username__startswith="bench-").order_by("pk"))
        by_name = {u.username: u for u in users}
        self.vendor_addresses = [address(0x10, j) for j in range(a.vendors)]
        self.buyer_addresses = [address(0x20, k) for k in range(a.buyers)]
        self.platform = address(0xFE, 1)
        wallets = [Wallet(user=by_name[f"bench-vendor-{j}"], address=self.vendor_addresses[j]) for j in range(a.vendors)]
        wallets += [Wallet(user=by_name[f"bench-buyer-{k}"], address=self.buyer_addresses[k]) for k in range(a.buyers)]
        Wallet.objects.bulk_create(wallets, batch_size=self.batch)
        self.vendors = Vendor.objects.bulk_create(
            [Vendor(user=by_name[f"bench-vendor-{j}"], slug=f"vendor-{j:03d}", display_name=f"Vendor {j}",
                    address=self.vendor_addresses[j]) for j in range(a.vendors)],
            batch_size=self.batch,
        )
        self.counts["users"] = len(users)
        self.counts["wallets"] = len(wallets)
        self.counts["vendors"] = len(self.vendors)

    def models(self) -> None:
        from marketplace.models import Model

        a, rng = self.args, self.rng
        heavy_every = max(1, a.models // a.heavy_vendor_models)
        owner, parent, depth, bps = [], [], [], []
        for i in range(a.models):
            heavy = i % heavy_every == 0 and sum(1 for o in owner if o == 0) < a.heavy_vendor_models
            owner.append(0 if heavy else rng.randrange(1, a.vendors))
            candidates = [j for j in range(max(0, i - 400), i) if depth[j] < 3]
            if candidates and rng.random() < 0.55:
                # a third of derived models build on the heavy vendor's models (it earns upstream royalties)
                heavy_parents = [j for j in candidates if owner[j] == 0]
                p = rng.choice(heavy_parents) if heavy_parents and rng.random() < 0.33 else rng.choice(candidates)
                parent.append(p)
                depth.append(depth[p] + 1)
                bps.append(rng.choice([500, 1000, 1500, 2000, 3000]))
            else:
                parent.append(None)
                depth.append(0)
                bps.append(0)
        self.model_owner, self.model_parent, self.model_depth, self.model_bps = owner, parent, depth, bps
        self.model_ids = [digest("model", i) for i in range(a.models)]
        self.model_price = [rng.choice([5, 10, 20, 50, 100, 250]) * 10**15 for _ in range(a.models)]
        self.model_duration = [rng.choice(DURATIONS) for _ in range(a.models)]
        self.model_versions = [rng.randint(1, 5) for _ in range(a.models)]
        # models appear during the first tenth of the period, in index order
        span = (self.now - self.start) / 10
        self.model_created = sorted(self.start + span * rng.random() for _ in range(a.models))
        rows = []
        for i in range(a.models):
            arch = rng.choice(ARCHITECTURES)
            rows.append(Model(
                vendor=self.vendors[owner[i]], slug=f"{arch}-{i:04d}", name=f"{arch.title()} model {i}",
                description=f"A {arch} model for edge devices, number {i}.", chain_model_id=self.model_ids[i],
                upstream_bps=bps[i], price_wei=self.model_price[i], license_duration=self.model_duration[i],
                listed=rng.random() < 0.95, status=Model.Status.LIVE, latest_version_number=self.model_versions[i],
                architecture=arch, quantization=rng.choice(QUANTIZATIONS), file_formats=rng.choice(FORMATS),
                parameter_count=rng.choice([135, 360, 500, 1_100, 1_500, 2_000, 3_000, 3_800, 7_000, 8_000]) * 10**6,
            ))
        rows = Model.objects.bulk_create(rows, batch_size=self.batch)
        pk = [m.pk for m in rows]
        for m, p in zip(rows, parent, strict=True):
            m.parent_id = pk[p] if p is not None else None
        Model.objects.bulk_update([m for m in rows if m.parent_id], ["parent"], batch_size=self.batch)
        # creation times spread like the chain's (auto_now_add wrote "now")
        for m, created in zip(rows, self.model_created, strict=True):
            m.created_at = created
        Model.objects.bulk_update(rows, ["created_at"], batch_size=self.batch)
        self.counts["models"] = len(rows)

        self.version_blocks: list[list[int]] = []  # per model, the block of each version (1, 2, ...)
        for i in range(a.models):
            t = self.model_created[i]
            block = block_at(self.start, t)
            tx = digest("create", i)
            self.event("ModelCreated", block, t, tx, self.next_log(block), {
                "modelId": self.model_ids[i], "vendor": self.vendor_addresses[owner[i]],
                "parentId": self.model_ids[parent[i]] if parent[i] is not None else "0x" + "00" * 32,
                "slugHash": digest("slug", i), "price": str(self.model_price[i]),
                "licenseDuration": str(self.model_duration[i]), "upstreamBps": str(bps[i]),
            })
            times = [t] + sorted(t + (self.now - t) * rng.random() for _ in range(self.model_versions[i] - 1))
            self.version_blocks.append([block_at(self.start, tv) for tv in times])
            for number, tv in enumerate(times, start=1):
                block = block_at(self.start, tv)
                self.event("VersionPublished", block, tv, digest("publish", i, number), self.next_log(block), {
                    "modelId": self.model_ids[i], "version": str(number), "rootDigest": digest("root", i, number),
                    "metadataDigest": digest("meta", i, number), "signer": self.vendor_addresses[owner[i]],
                })
        self.counts["versions"] = sum(self.model_versions)

    def lineage(self, i: int):
        from royalties.rules import LineageNode

        nodes = []
        while i is not None:
            nodes.append(LineageNode(self.model_ids[i], self.vendor_addresses[self.model_owner[i]], self.model_bps[i]))
            i = self.model_parent[i]
        return nodes

    # ---- purchases

    def plan_purchases(self) -> list[tuple[datetime, int, int]]:
        """(time, model index, buyer index), sorted by time: the heavy buyer's first."""
        a, rng = self.args, self.rng
        plan = []
        heavy_models = rng.sample(range(a.models), min(a.heavy_buyer_licences, a.models))
        for m in heavy_models:
            created = self.model_created[m]
            first = created + (self.now - timedelta(days=60) - created) * rng.random()
            renewal = self.now - timedelta(days=25) + timedelta(days=24) * rng.random()
            plan += [(first, m, 0), (renewal, m, 0)]
        heavy = [i for i in range(a.models) if self.model_owner[i] == 0]
        others = [i for i in range(a.models) if self.model_owner[i] != 0]
        popularity = [rng.lognormvariate(0, 1) for _ in others]
        remaining = a.purchases - len(plan)
        n_heavy = int(remaining * a.heavy_vendor_share)
        picks = rng.choices(heavy, k=n_heavy) + rng.choices(others, weights=popularity, k=remaining - n_heavy)
        for m in picks:
            created = self.model_created[m]
            plan.append((created + (self.now - created) * rng.random(), m, rng.randrange(1, a.buyers)))
        plan.sort()
        self.heavy_vendor_models = heavy
        return plan

    def purchases(self) -> None:
        from registry.chain import PERPETUAL
        from royalties.ledger import credit_account, wallet_account
        from royalties.models import LedgerEntry, LedgerLine, License
        from royalties.rules import royalty_split

        # the platform fee, set at deployment
        t0 = self.start
        block = block_at(self.start, t0)
        log = self.next_log(block)
        tx = digest("fee", 0)
        self.event("PlatformFeeChanged", block, t0, tx, log, {"bps": str(FEE_BPS), "recipient": self.platform})
        LedgerEntry.objects.create(kind=LedgerEntry.Kind.PLATFORM_FEE, tx_hash=tx, log_index=log, block_number=block,
                                   occurred_at=t0, memo={"bps": FEE_BPS, "recipient": self.platform})

        expiry: dict[tuple[str, str], tuple[datetime | None, int]] = {}
        balance: dict[str, int] = defaultdict(int)
        withdrawing = {self.vendor_addresses[j] for j in range(0, self.args.vendors, 2)}
        month_end = self.start + timedelta(days=30)
        pending: list[tuple] = []  # (entry, [line kwargs])
        lineages = {}

        running: dict[str, int] = defaultdict(int)  # every account's balance, for balance_after_wei
        # the version latest published at a block, as the ledger projection attributes a sale
        version_of = {
            self.model_ids[i]: (lambda blocks: lambda block: bisect.bisect_right(blocks, block) or None)(self.version_blocks[i])
            for i in range(self.args.models)
        }

        def flush() -> None:
            entries = LedgerEntry.objects.bulk_create([e for e, _ in pending], batch_size=self.batch)
            lines = []
            for e, (_, kws) in zip(entries, pending, strict=True):  # in chain order, as the projection writes them
                for kw in kws:
                    running[kw["account"]] += kw["amount_wei"]
                    purchase = e.kind == LedgerEntry.Kind.PURCHASE
                    lines.append(LedgerLine(entry=e, block_number=e.block_number, balance_after_wei=running[kw["account"]],
                                            sold_model_id=e.model_id if purchase else "",
                                            sold_version=version_of[e.model_id](e.block_number) if purchase else None, **kw))
            LedgerLine.objects.bulk_create(lines, batch_size=self.batch)
            self.counts["ledger entries"] += len(entries)
            self.counts["ledger lines"] += len(lines)
            pending.clear()

        def withdraw(at: datetime) -> None:
            for payee in sorted(withdrawing):
                amount = balance[payee]
                if amount <= 0:
                    continue
                balance[payee] = 0
                b = block_at(self.start, at)
                log = self.next_log(b)
                tx = digest("withdraw", payee, at.isoformat())
                self.event("Withdrawn", b, at, tx, log, {"payee": payee, "amount": str(amount)})
                entry = LedgerEntry(kind=LedgerEntry.Kind.WITHDRAWAL, tx_hash=tx, log_index=log, block_number=b, occurred_at=at)
                pending.append((entry, [
                    dict(account=credit_account(payee), address=payee, role=LedgerLine.Role.WITHDRAWN, model_id="",
                         amount_wei=-amount, occurred_at=at, log_index=log),
                    dict(account=wallet_account(payee), address=payee, role=LedgerLine.Role.RECEIVED, model_id="",
                         amount_wei=amount, occurred_at=at, log_index=log),
                ]))

        for n, (t, m, b) in enumerate(self.plan_purchases()):
            while t >= month_end:
                withdraw(month_end)
                month_end += timedelta(days=30)
            buyer = self.buyer_addresses[b]
            model_id = self.model_ids[m]
            price = self.model_price[m]
            duration = self.model_duration[m]
            key = (model_id, buyer)
            if duration == 0:
                expires, raw_expiry = None, PERPETUAL
            else:
                current = expiry.get(key, (None, 0))[0]
                expires = max(current or t, t) + timedelta(seconds=duration)
                raw_expiry = int(expires.timestamp())
            expiry[key] = (expires, block_at(self.start, t))
            if m not in lineages:
                lineages[m] = self.lineage(m)
            credits = royalty_split(price_wei=price, platform_fee_bps=FEE_BPS, platform_recipient=self.platform, lineage=lineages[m])
            block = block_at(self.start, t)
            tx = digest("purchase", n)
            log = self.next_log(block)
            if not self.args.no_money_events:
                self.event("LicensePurchased", block, t, tx, log, {
                    "modelId": model_id, "licensee": buyer, "payer": buyer, "price": str(price), "expiresAt": str(raw_expiry),
                })
            entry = LedgerEntry(kind=LedgerEntry.Kind.PURCHASE, tx_hash=tx, log_index=log, block_number=block, occurred_at=t,
                                model_id=model_id, licensee=buyer, payer=buyer, price_wei=price, expires_at=expires,
                                perpetual=duration == 0)
            lines = [dict(account=wallet_account(buyer), address=buyer, role=LedgerLine.Role.PAYER, model_id=model_id,
                          amount_wei=-price, occurred_at=t, log_index=log)]
            for credit in credits:
                clog = self.next_log(block)
                if not self.args.no_money_events:
                    if credit.role == "platform":  # the contract names the fee with an event of its own
                        self.event("PlatformFeeCredited", block, t, tx, clog,
                                   {"recipient": credit.payee, "modelId": credit.model_id, "amount": str(credit.amount_wei)})
                    else:
                        self.event("RoyaltyCredited", block, t, tx, clog,
                                   {"payee": credit.payee, "modelId": credit.model_id, "amount": str(credit.amount_wei)})
                lines.append(dict(account=credit_account(credit.payee), address=credit.payee, role=credit.role,
                                  model_id=credit.model_id, amount_wei=credit.amount_wei, occurred_at=t, log_index=clog))
                balance[credit.payee] += credit.amount_wei
            if sum(line["amount_wei"] for line in lines) != 0:
                raise AssertionError(f"purchase {n} does not balance")
            pending.append((entry, lines))
            if len(pending) >= self.batch:
                flush()
                if n and n % 20000 < self.batch:
                    print(f"  {n:,} purchases written", file=sys.stderr)
        if pending:
            flush()
        self.flush_events()
        License.objects.bulk_create([
            License(model_id=model_id, licensee=licensee, expires_at=expires, perpetual=expires is None,
                    source=License.Source.EVENT, observed_block=blk)
            for (model_id, licensee), (expires, blk) in expiry.items()
        ], batch_size=self.batch)
        self.counts["licences"] = len(expiry)
        self.counts["purchases"] = self.args.purchases

    def run(self) -> dict:
        self.people()
        self.models()
        self.purchases()
        return dict(self.counts)


# ------------------------------------------------------------------------------------- measurements


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered) + 0.5)) - 1))]


def measure(fn, runs: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return {"p50": percentile(samples, 50) * 1000, "p95": percentile(samples, 95) * 1000,
            "max": max(samples) * 1000, "mean": statistics.mean(samples) * 1000}


def shape(sql: str) -> str:
    """A query's text with IN lists of any length alike, to group the N of an N+1."""
    return re.sub(r"IN \((?:%s, )*%s\)", "IN (...)", sql)


def captured(fn) -> list[dict]:
    """Every SQL statement `fn` runs: text, parameters, and time in the driver (perf_counter)."""
    from django.db import connection

    queries = []

    def timer(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append({"sql": sql, "params": params, "ms": (time.perf_counter() - start) * 1000})

    with connection.execute_wrapper(timer):
        fn()
    return queries


def explain(sql: str, params) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return [row[0] for row in cursor.fetchall()]


def clip(text: str, width: int = 220) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def plan_summary(lines: list[str], limit: int = 16) -> list[str]:
    """The plan's nodes (no Buffers lines), clipped, then planning and execution time."""
    nodes = [line for line in lines if "Buffers:" not in line and not line.strip().startswith(("Planning:", "Planning Time", "Execution Time"))]
    tail = [line for line in lines if line.strip().startswith(("Planning Time", "Execution Time"))]
    return [clip(line) for line in nodes[:limit]] + (["  ..."] if len(nodes) > limit else []) + tail


def query_report(name: str, queries: list[dict], top: int) -> list[str]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for q in queries:
        groups[shape(q["sql"])].append(q)
    ranked = sorted(groups.values(), key=lambda qs: -sum(q["ms"] for q in qs))
    out = [f"{name}: {len(queries)} SQL queries, {sum(q['ms'] for q in queries):.1f} ms in the database driver "
           f"({len(groups)} distinct shapes)"]
    for qs in ranked:
        out.append(f"  {len(qs):4d} x {sum(q['ms'] for q in qs):7.1f} ms  {clip(re.sub(r'SELECT .*? FROM', 'SELECT ... FROM', shape(qs[0]['sql']), count=1), 150)}")
    for qs in ranked[:top]:
        slowest = max(qs, key=lambda q: q["ms"])
        out.append("")
        out.append(f"-- {len(qs)} x, {sum(q['ms'] for q in qs):.1f} ms in all (slowest {slowest['ms']:.1f} ms):")
        out.append(clip(re.sub(r'SELECT (DISTINCT ON \([^)]*\) )?"[^ ]+".*? FROM', r"SELECT \1... FROM", shape(slowest["sql"]), count=1), 400))
        if slowest["sql"].lstrip().upper().startswith("SELECT"):
            out += ["   " + line for line in plan_summary(explain(slowest["sql"], slowest["params"]))]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=1_000)
    parser.add_argument("--vendors", type=int, default=100)
    parser.add_argument("--buyers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=12, help="the purchases span this many 30-day months up to now (default 12)")
    parser.add_argument("--heavy-vendor-models", type=int, default=50)
    parser.add_argument("--heavy-vendor-share", type=float, default=0.15, help="share of the sales on the heavy vendor's models (default 0.15)")
    parser.add_argument("--heavy-buyer-licences", type=int, default=200)
    parser.add_argument("--no-money-events", action="store_true", help="no LicensePurchased/RoyaltyCredited ChainEvents (only the ledger)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs of each query (default 200)")
    parser.add_argument("--batch", type=int, default=5000, help="bulk_create batch size (default 5000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="hallmark_ledger_bench", help="throw-away database name; must contain 'bench'")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--top", type=int, default=3, help="query shapes explained per selector (default 3)")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--rebuild", action="store_true",
                        help="instead of the queries, time `manage.py rebuild_ledger` over the generated events "
                             "(1,000,000 events: --purchases 257000)")
    args = parser.parse_args()
    if "bench" not in args.database:
        parser.error("--database: it is dropped and created; its name must contain 'bench'")
    note = f"{commit_note()}; {load_note()}"
    cleanup_on_sigterm()
    if not postgres_reachable(args.pg_server):
        return 0
    with throwaway_postgres(args.database, args.pg_server, keep=args.keep) as url:
        if args.keep:
            print(f"keeping {url} at the end; drop it with: dropdb -h 127.0.0.1 -U postgres --force {args.database}", file=sys.stderr)
        return run(args, url, note)


def run(args, url: str, note: str) -> int:
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings", DEBUG="0", REDIS_URL="",
                      SECRET_KEY="hallmark-bench-" + secrets.token_hex(16), LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.paginator import Paginator
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from marketplace.selectors import model_search
    from royalties.models import LedgerEntry
    from royalties.selectors import licenses_held, statement_build

    print(f"migrating {url} ...", file=sys.stderr)
    call_command("migrate", interactive=False, verbosity=0)
    now = timezone.now()
    print(f"generating {args.purchases:,} purchases of {args.models:,} models ...", file=sys.stderr)
    started = time.perf_counter()
    gen = Generator(args, now)
    counts = gen.run()
    generated_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # what autovacuum does to a loaded table: statistics, visibility map
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]

    if args.rebuild:
        return rebuild(counts, generated_s, size, note)
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)
    heavy_vendor, heavy_buyer = gen.vendor_addresses[0], gen.buyer_addresses[0]
    # context: the vendor with the median number of sales that month
    owner = {gen.model_ids[i]: gen.model_owner[i] for i in range(args.models)}
    month_sales: dict[int, int] = defaultdict(int)
    for model_id, n in (LedgerEntry.objects.filter(kind="purchase", occurred_at__gte=start, occurred_at__lt=end)
                        .values_list("model_id").annotate(n=Count("id")).order_by()):
        month_sales[owner[model_id]] += n
    ranked = sorted((n, j) for j, n in month_sales.items() if j != 0)
    median_vendor = gen.vendor_addresses[ranked[len(ranked) // 2][1]]

    def catalog_page(**filters):
        def page():
            result = Paginator(model_search(**filters), 20).page(1)
            return [(m.repo_id, m.parameter_count) for m in result.object_list], result.paginator.count
        return page

    queries = {
        "statement": ("statement_build, heavy vendor, one month: totals + the first page of 100 lines (the API's default)",
                      lambda: statement_build(addresses=[heavy_vendor], start=start, end=end)),
        "statement_all": ("statement_build, heavy vendor, one month, every line (context)",
                          lambda: statement_build(addresses=[heavy_vendor], start=start, end=end, lines_limit=None)),
        "statement_median": ("statement_build, median vendor, one month (context)",
                             lambda: statement_build(addresses=[median_vendor], start=start, end=end)),
        "licences": ("licenses_held, heavy buyer", lambda: licenses_held(addresses=[heavy_buyer])),
        "catalog": ("model_search: gguf + Q4_K_M + >= 1B parameters, by parameters, page 1 of 20",
                    catalog_page(file_format="gguf", quantization="Q4_K_M", min_parameters=10**9, ordering="-parameters")),
        "catalog_text": ("model_search: q=llama, newest, page 1 of 20 (context)", catalog_page(q="llama", ordering="newest")),
    }
    targets = {"statement", "licences", "catalog"}
    explained = {"baseline": ["statement", "licences", "catalog"], "indexes": ["statement", "licences"], "settings": ["statement"]}
    stages = (("baseline", "as migrated"), ("indexes", f"with the {len(INDEXES)} indexes"),
              ("settings", "with the indexes and the planner settings"))

    page = queries["statement"][1]()
    whole = queries["statement_all"][1]()
    median = queries["statement_median"][1]()
    figures = ("opening_balance_wei", "closing_balance_wei", "line_count", "sales", "royalties_from_downstream",
               "platform_fees_wei", "withdrawals_wei", "earned_wei")
    consistent = (all(getattr(page, f) == getattr(whole, f) for f in figures) and page.lines == whole.lines[:100]
                  and whole.closing_balance_wei == whole.opening_balance_wei + sum(line.amount_wei for line in whole.lines))
    facts = {
        "statement": f"{page.line_count:,} credit lines, {sum(r['units'] for r in page.sales):,} sales of "
                     f"{len({r['model_id'] for r in page.sales})} models, {len(page.royalties_from_downstream)} upstream royalty rows; "
                     f"same figures as every line added up: {consistent}",
        "statement_all": f"{len(whole.lines):,} lines",
        "statement_median": f"{median.line_count:,} credit lines, {sum(r['units'] for r in median.sales):,} sales",
        "licences": f"{len(queries['licences'][1]()):,} licences",
        "catalog": f"{queries['catalog'][1]()[1]:,} matches",
        "catalog_text": f"{queries['catalog_text'][1]()[1]:,} matches",
    }

    results: dict[str, dict[str, dict]] = {}
    reports: dict[str, list[str]] = {}
    index_notes: dict[str, str] = {}
    for stage, _title in stages:
        if stage == "indexes":
            index_notes = create_indexes()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        if stage == "settings":
            with connection.cursor() as cursor:
                for sql in SETTINGS:
                    cursor.execute(sql)
        print(f"measuring {stage} ({args.runs} runs each) ...", file=sys.stderr)
        results[stage] = {key: measure(fn, args.runs) for key, (_, fn) in queries.items()}
        reports[stage] = [line for key in explained[stage]
                          for line in [*query_report(queries[key][0], captured(queries[key][1]), args.top), ""]]

    # ---------------------------------------------------------------------------------- report
    print(f"{note}; {os.cpu_count()} cores; PostgreSQL {connection.pg_version // 10000}, database {size} after loading; "
          f"DEBUG off, one persistent connection; {args.runs} runs each after 5 warm-ups")
    print(f"generated in {generated_s:.0f}s: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    print(f"statement month: {start:%Y-%m-%d} to {end:%Y-%m-%d} (exclusive)\n")
    print(f"| query (ms) | result | as migrated: p50 | p95 | + the {len(INDEXES)} indexes: p50 | p95 "
          "| + planner settings: p50 | p95 | target |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, (label, _) in queries.items():
        cells = " | ".join(f"{results[stage][key]['p50']:.1f} | {results[stage][key]['p95']:.1f}" for stage, _ in stages)
        print(f"| {label} | {facts[key]} | {cells} | {'p95 < 50' if key in targets else '-'} |")
    print()
    print("Indexes recommended, created in the throw-away database unless the migrations already have an equal one:\n")
    print("```sql")
    for name, (why, sql) in INDEXES.items():
        print(f"-- {why}\n-- {index_notes.get(name, '')}\n{sql};")
    print("```\n")
    print("Planner settings of the last stage (session settings here; postgresql.conf on a server):\n")
    print("```sql\n" + ";\n".join(SETTINGS) + ";\n```\n")
    for stage, title in stages:
        print(f"Query plans, {title}: every query of one run grouped by shape, the costliest explained "
              "(EXPLAIN (ANALYZE, BUFFERS), Buffers lines left out):\n")
        print("```")
        print("\n".join(reports[stage]).rstrip())
        print("```\n")
    for stage, title in stages:
        for key in queries:
            if key not in targets:
                continue
            p95 = results[stage][key]["p95"]
            checked = key == "statement"
            ok = p95 < TARGET_MS and (not checked or consistent)
            same = f"; same figures as every line added up: {consistent}" if checked else ""
            print(f"{'PASS' if ok else 'MISS'}  {queries[key][0]}, {title}: p95 {p95:.1f} ms < {TARGET_MS} ms{same}")
    connection.close()
    return 0


def rebuild(counts: dict, generated_s: float, size: str, note: str) -> int:
    """`manage.py rebuild_ledger` over the mirrored events: its rate, and the same balances as the
    ledger the generator wrote (every account's sum and last running balance, line count)."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count, Sum

    from registry.models import ChainEvent
    from royalties.ledger import MONEY_EVENTS
    from royalties.models import LedgerLine

    def balances() -> tuple[dict, dict]:
        sums = {a: (int(s), n) for a, s, n in LedgerLine.objects.values_list("account").annotate(s=Sum("amount_wei"), n=Count("id")).order_by()}
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT ON (account) account, balance_after_wei FROM royalties_ledgerline "
                           "ORDER BY account, occurred_at DESC, block_number DESC, log_index DESC, id DESC")
            last = {a: int(b) for a, b in cursor.fetchall()}
        return sums, last

    events = ChainEvent.objects.filter(name__in=MONEY_EVENTS).count()
    before = balances()
    print(f"rebuilding the ledger from {events:,} money events ...", file=sys.stderr)
    started = time.perf_counter()
    call_command("rebuild_ledger", stdout=open(os.devnull, "w"))
    seconds = time.perf_counter() - started
    after = balances()
    # the generator's order of lines need not be chain order: the sums must agree, and the rebuilt
    # ledger's last running balance of each account must be its sum
    same = before[0] == after[0] and all(after[1][account] == total for account, (total, _) in after[0].items())
    print(f"{note}; {os.cpu_count()} cores; PostgreSQL {connection.pg_version // 10000}, database {size} after loading")
    print(f"generated in {generated_s:.0f}s: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()) + "\n")
    print("| rebuild_ledger | mirrored events | ledger lines | seconds | events/s |")
    print("|---|---:|---:|---:|---:|")
    lines = sum(n for _, n in after[0].values())
    print(f"| `manage.py rebuild_ledger` (one transaction) | {events:,} | {lines:,} | {seconds:.1f} | {events / seconds:,.0f} |\n")
    print(f"{'PASS' if same else 'MISS'}  the rebuilt ledger has the generated one's {len(after[0]):,} accounts, "
          "line counts and sums; each account's last running balance is its sum")
    connection.close()
    return 0 if same else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
